package room

import "encoding/json"

// Error codes sent to clients in {"type":"error","code":…}.
const (
	CodeBadRequest         = "bad_request"
	CodeBadChannel         = "bad_channel"
	CodeUnknownNamespace   = "unknown_namespace"
	CodePermissionDenied   = "permission_denied"
	CodeIntegrityRequired  = "integrity_unsigned"
	CodePublishDisabled    = "publish_disabled"
	CodeChannelFull        = "channel_full"
	CodeTooManyChannels    = "too_many_channels"
	CodeNotSubscribed      = "not_subscribed"
	CodeAlreadySubscribed  = "already_subscribed"
	CodePresenceDisabled   = "presence_disabled"
	CodeRecoveryFailed     = "recovery_failed"
	CodeUnknownType        = "unknown_type"
	CodeInternal           = "internal"
	CodeCommandUnavailable = "command_unavailable"
	CodeCommandTimeout     = "command_timeout"
	CodeCommandBackend     = "command_backend_error"
	CodeCommandBadResponse = "command_bad_response"
	// Codes of CheckSubscribe / CheckPublish refusals (hooks and per-room
	// limits, docs/hooks.md).
	CodeHookRefused      = "hook_refused"      // the application's hook said no; message is its reason
	CodeHookUnavailable  = "hook_unavailable"  // the hook could not answer and fails closed
	CodeRoomRateLimited  = "room_rate_limited" // the channel's or the member's publish rate
	CodeRoomMessageLarge = "message_too_large" // over the namespace's max_message_bytes
	CodeRoomSchema       = "schema_violation"  // payload fails the namespace's schema
)

// Error is a refused or failed request. Handle has already sent it to the client;
// the caller uses Strike to count misbehaviour and Err (never sent) to log.
type Error struct {
	Code    string
	Message string // short, static, safe to show to the client
	Strike  bool   // true when a well-behaved client would not have caused it
	Ref     []byte // raw JSON id of the request, nil if none
	Err     error  // internal cause, for logs only
}

func (e *Error) Error() string {
	if e.Err != nil {
		return "room: " + e.Code + ": " + e.Message + ": " + e.Err.Error()
	}
	return "room: " + e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Reply encodes {"type":"error","code":…,"message":…,"ref":…}.
func (e *Error) Reply() []byte {
	msg, _ := json.Marshal(e.Message) // a string always marshals
	b := make([]byte, 0, 64+len(msg)+len(e.Ref))
	b = append(b, `{"type":"error","code":"`...)
	b = append(b, e.Code...) // codes are constants without special characters
	b = append(b, `","message":`...)
	b = append(b, msg...)
	if len(e.Ref) > 0 {
		b = append(b, `,"ref":`...)
		b = append(b, e.Ref...)
	}
	return append(b, '}')
}

func newErr(code, msg string, strike bool) *Error {
	return &Error{Code: code, Message: msg, Strike: strike}
}
