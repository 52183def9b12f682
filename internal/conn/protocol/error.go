package protocol

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// Error codes, sent in the "code" member of an error reply (docs/protocol.md,
// "Errors").
const (
	// Pipeline: the message itself.
	CodeInvalidJSON    = "invalid_json"    // not JSON (RFC 8259), invalid UTF-8 in a string, a lone surrogate escape
	CodeInvalidMessage = "invalid_message" // not an object, no string "type", a duplicate key, a schema violation (Path says where)
	CodeUnknownType    = "unknown_type"    // no schema (pipeline) or no handler (room) for the type
	CodeTooLarge       = "too_large"       // over limits.max_message_bytes or the type's size; closes 1009
	CodeRateLimited    = "rate_limited"    // a message or byte budget is spent (RetryAfter); sustained abuse closes 1008
	CodeLimitExceeded  = "limit_exceeded"  // depth, keys, array elements, string or number length
	CodeUnavailable    = "unavailable"     // a shared store could not answer; not the client's fault

	// Session and embedding handlers.
	CodeRefreshFailed = "refresh_failed" // refresh token invalid or for another subject
	CodeHandlerFailed = "handler_failed" // an embedding application's message handler returned an error

	// Room: channel requests.
	CodeBadRequest         = "bad_request"
	CodeBadChannel         = "bad_channel"
	CodeUnknownNamespace   = "unknown_namespace"
	CodePermissionDenied   = "permission_denied"
	CodeIntegrityRequired  = "integrity_unsigned" // a namespace that requires signed requests got an unsigned one
	CodePublishDisabled    = "publish_disabled"
	CodeChannelFull        = "channel_full"
	CodeTooManyChannels    = "too_many_channels"
	CodeNotSubscribed      = "not_subscribed"
	CodeAlreadySubscribed  = "already_subscribed"
	CodePresenceDisabled   = "presence_disabled"
	CodeRecoveryFailed     = "recovery_failed"
	CodeInternal           = "internal"
	CodeCommandUnavailable = "command_unavailable"
	CodeCommandTimeout     = "command_timeout"
	CodeCommandBackend     = "command_backend_error"
	CodeCommandBadResponse = "command_bad_response"

	// CheckSubscribe / CheckPublish refusals (hooks and per-room limits, docs/hooks.md).
	CodeHookRefused      = "hook_refused"      // the application's hook said no; Message is its reason
	CodeHookUnavailable  = "hook_unavailable"  // the hook could not answer and fails closed
	CodeRoomRateLimited  = "room_rate_limited" // the channel's or the member's publish rate
	CodeRoomMessageLarge = "message_too_large" // over the namespace's max_message_bytes
	CodeRoomSchema       = "schema_violation"  // payload fails the namespace's schema

	// CodeIntegrityPrefix prefixes the signed-message check codes
	// (integrity_bad_signature, integrity_replay, …; docs/integrity.md).
	CodeIntegrityPrefix = "integrity_"
)

// Error is a refused or failed client message: the error reply sent to the client
// and what the session does about it. It is an error.
type Error struct {
	// Code is one of the Code* constants.
	Code string
	// Message is short, static or built from limits; it never quotes the message.
	Message string
	// Path is a JSON pointer to the offending value, when known.
	Path string
	// Ref is the raw JSON of the request's id, echoed as "ref"; nil if none. The
	// encoder splices it verbatim: set it only from a validated id (see the
	// pipeline's EncodeError for unvalidated input).
	Ref []byte
	// RetryAfter is set for CodeRateLimited and CodeUnavailable.
	RetryAfter time.Duration
	// Close, if non-zero, asks the session to close the connection for this reason
	// (after sending the reply, if it can); 0 means reply only.
	Close CloseReason
	// Strike marks a client violation, to be counted by the strike/ban policy.
	Strike bool
	// Err is the internal cause, for logs only; never sent.
	Err error
}

func (e *Error) Error() string {
	s := e.Code
	if e.Path != "" {
		s += " at " + e.Path
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Encode renders e as the error reply
//
//	{"type":"error","code":"…","message":"…","path":"…","ref":<ref>,"retry_after_ms":N}
//
// omitting empty message, path and ref, and retry_after_ms unless RetryAfter > 0.
// Strings are escaped as encoding/json does (HTML-safe). One allocation: the result.
func (e *Error) Encode() []byte {
	n := 48 + len(e.Code) + len(e.Message) + len(e.Path) + len(e.Ref)
	if e.RetryAfter > 0 {
		n += 40
	}
	return e.Append(make([]byte, 0, n+n/8))
}

// Append is Encode appending to dst.
func (e *Error) Append(dst []byte) []byte {
	dst = append(dst, `{"type":"error","code":`...)
	dst = appendString(dst, e.Code)
	if e.Message != "" {
		dst = append(dst, `,"message":`...)
		dst = appendString(dst, e.Message)
	}
	if e.Path != "" {
		dst = append(dst, `,"path":`...)
		dst = appendString(dst, e.Path)
	}
	if len(e.Ref) > 0 {
		dst = append(dst, `,"ref":`...)
		dst = append(dst, e.Ref...)
	}
	if e.RetryAfter > 0 {
		ms := (e.RetryAfter + time.Millisecond - 1) / time.Millisecond
		dst = append(dst, `,"retry_after_ms":`...)
		dst = strconv.AppendInt(dst, int64(ms), 10)
	}
	return append(dst, '}')
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string the way encoding/json does: escaping what
// RFC 8259 requires plus <, >, & and U+2028/U+2029, and writing invalid UTF-8
// as \ufffd.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			if r == utf8.RuneError {
				dst = append(dst, `\ufffd`...)
			} else {
				dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			}
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
