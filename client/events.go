package client

import (
	"encoding/json"
	"time"
)

// State is where a Client is in its life.
type State int

// States, in the order a connection goes through them.
const (
	StateDisconnected State = iota
	StateConnecting
	StateConnected
	StateClosed // terminal: Close was called or the server refused for good
)

func (s State) String() string {
	switch s {
	case StateConnecting:
		return "connecting"
	case StateConnected:
		return "connected"
	case StateClosed:
		return "closed"
	}
	return "disconnected"
}

// EventKind names a client event; the names are the same in every wsgate client.
type EventKind string

// Client events.
const (
	EventConnecting   EventKind = "connecting"
	EventConnected    EventKind = "connected"
	EventDisconnected EventKind = "disconnected"
	EventError        EventKind = "error"
	EventRefreshed    EventKind = "refreshed"
)

// Event is one client event, delivered to Options.OnEvent in order.
type Event struct {
	Kind EventKind
	// Welcome is the server's welcome (EventConnected).
	Welcome *Welcome
	// Code and Reason are the close code and reason (EventDisconnected);
	// Code is 0 when the connection attempt itself failed.
	Code   uint16
	Reason string
	// WillReconnect tells whether the client will try again (EventDisconnected);
	// Delay is how long it waits first.
	WillReconnect bool
	Delay         time.Duration
	// Err is the cause (EventError, and EventDisconnected when there is one):
	// a *HandshakeError, *CloseError, *ServerError or a network error.
	Err error
	// ExpiresAt is the new token expiry (EventRefreshed, EventConnected).
	ExpiresAt time.Time
}

// Welcome is the server's first message on each connection.
type Welcome struct {
	ConnID     string          `json:"conn_id"`
	User       string          `json:"user"`
	ServerTime int64           `json:"server_time"`
	ExpiresAt  int64           `json:"expires_at"` // ms; 0 when the credential does not expire
	Protocol   string          `json:"protocol"`
	Limits     json.RawMessage `json:"limits"`
}

// Position is where a subscription is in a channel's stream.
type Position struct {
	Offset uint64 `json:"offset"`
	Epoch  string `json:"epoch"`
}

// Message is one publication delivered to a subscription.
type Message struct {
	Channel   string          `json:"channel"`
	Offset    uint64          `json:"offset"`
	Epoch     string          `json:"epoch"`
	From      string          `json:"from"`
	Timestamp int64           `json:"timestamp"` // ms
	Payload   json.RawMessage `json:"payload"`
}

// RecoveryFailed says messages were lost for a subscription: the server could
// not replay everything since the last position (history too short, or the
// epoch changed). The subscription is live again from Position; the
// application must resync what came before (e.g. reload state).
type RecoveryFailed struct {
	Channel  string
	Position Position // where the subscription continues
	Previous Position // the last position the client had seen
}

// PresenceEvent is a joined/left push.
type PresenceEvent struct {
	Channel string `json:"channel"`
	User    string `json:"user"`
	ConnID  string `json:"conn_id"`
}

// ClientInfo is one entry of a presence reply.
type ClientInfo struct {
	ConnID string `json:"conn_id"`
	User   string `json:"user"`
}
