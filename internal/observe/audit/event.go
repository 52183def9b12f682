package audit

import "time"

// Event names. They are the "event" field of every line; see docs/audit.md.
const (
	HandshakeAccepted = "handshake_accepted"
	HandshakeRejected = "handshake_rejected"
	ConnectionClosed  = "connection_closed"
	Violation         = "violation"
	Strike            = "strike"
	Ban               = "ban"
	Unban             = "unban"
	Kick              = "kick"
	AdminAction       = "admin_action"
	ConfigReloaded    = "config_reloaded"
	ConfigRejected    = "config_rejected"
	Alert             = "alert"
	// Message is a sampled, truncated copy of a client message (LogMessage).
	Message = "message"
)

// Event is one audit record. Zero fields are omitted from the line.
type Event struct {
	// Time defaults to the logger's clock when zero.
	Time   time.Time
	Event  string // one of the constants above
	ConnID string
	IP     string
	User   string
	Route  string
	Reason string // short machine-readable cause, e.g. "origin", "jwt_expired"
	Status int    // HTTP status of a refused handshake
	Code   int    // WebSocket close code
	// Detail holds event-specific fields. It is copied and redacted (values
	// under sensitive keys are masked), so callers may reuse the map.
	Detail map[string]any
}

// line is the JSON shape of an Event; field order here is the order on disk.
type line struct {
	TS     string         `json:"ts"`
	Event  string         `json:"event"`
	ConnID string         `json:"conn_id,omitempty"`
	IP     string         `json:"ip,omitempty"`
	User   string         `json:"user,omitempty"`
	Route  string         `json:"route,omitempty"`
	Reason string         `json:"reason,omitempty"`
	Status int            `json:"status,omitempty"`
	Code   int            `json:"code,omitempty"`
	Detail map[string]any `json:"detail,omitempty"`
}
