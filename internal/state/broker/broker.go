package broker

import (
	"context"
	"errors"
	"time"
)

// StreamPosition names a point in a channel's stream.
type StreamPosition struct {
	Offset uint64 `json:"offset"`
	Epoch  string `json:"epoch"`
}

// Publication is one message in a channel. Data is the already-encoded JSON payload
// the publisher sent; it is shared between subscribers and must never be mutated.
type Publication struct {
	Channel string    `json:"channel"`
	Offset  uint64    `json:"offset"`
	Epoch   string    `json:"epoch"`
	Data    []byte    `json:"data"`
	From    string    `json:"from,omitempty"`
	Time    time.Time `json:"time"`
}

// PublishOptions tunes history for one publication (from the channel's namespace).
type PublishOptions struct {
	HistorySize int           // 0 = no history kept
	HistoryTTL  time.Duration // 0 = no history kept
}

// ClientInfo is what presence reports about one connection in a channel.
type ClientInfo struct {
	ConnID string `json:"conn_id"`
	User   string `json:"user"`
}

// EventHandler receives what the broker delivers to this node. Publications for one
// channel arrive in offset order, from one goroutine at a time per channel.
type EventHandler interface {
	HandlePublication(pub Publication)
	HandleJoin(channel string, info ClientInfo)
	HandleLeave(channel string, info ClientInfo)
}

// ErrRecoveryFailed means the broker cannot vouch for a gap-free replay from the
// requested position (wrong epoch, position older than retained history, store down).
var ErrRecoveryFailed = errors.New("broker: recovery not possible from that position")

// Broker is shared state between nodes: publication ordering, history, presence.
// Subscribe/Unsubscribe tell the broker this node has (or no longer has) local
// subscribers for a channel; fan-out to individual connections is the caller's job.
type Broker interface {
	Run(ctx context.Context, h EventHandler) error // delivers events until ctx ends
	Publish(ctx context.Context, channel string, data []byte, from string, opts PublishOptions) (StreamPosition, error)
	Subscribe(ctx context.Context, channel string) error
	Unsubscribe(ctx context.Context, channel string) error
	// History returns publications after since (exclusive), oldest first, at most limit
	// (0 = all retained), and the channel's current position. It returns
	// ErrRecoveryFailed when since.Epoch differs or since is older than what is retained.
	// With since == nil it returns the latest limit publications. A channel without a
	// stream reports the zero StreamPosition.
	History(ctx context.Context, channel string, since *StreamPosition, limit int) ([]Publication, StreamPosition, error)
	AddPresence(ctx context.Context, channel string, info ClientInfo) error
	RemovePresence(ctx context.Context, channel string, connID string) error
	Presence(ctx context.Context, channel string) ([]ClientInfo, error)
}
