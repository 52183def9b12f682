package pipeline

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// Reject codes, as sent in the "code" field of an error reply.
const (
	// CodeInvalidJSON: the message is not JSON (RFC 8259), has invalid UTF-8 in a
	// string, or escapes a lone UTF-16 surrogate.
	CodeInvalidJSON = "invalid_json"
	// CodeInvalidMessage: JSON, but not a message: not an object, no string "type",
	// a duplicate key, a schema violation (Path says where), or a failed Verifier.
	CodeInvalidMessage = "invalid_message"
	// CodeUnknownType: no schema is registered for the message's type.
	CodeUnknownType = "unknown_type"
	// CodeTooLarge: larger than Options.MaxBytes or the type's TypeMaxBytes. Closes 1009.
	CodeTooLarge = "too_large"
	// CodeRateLimited: a message or byte budget is spent; RetryAfter says for how long.
	// Sustained abuse closes with 1008.
	CodeRateLimited = "rate_limited"
	// CodeLimitExceeded: a structure limit (depth, keys, array elements, string or
	// number length) is exceeded.
	CodeLimitExceeded = "limit_exceeded"
	// CodeUnavailable: the rate limiter could not answer and Options.FailOpen is false.
	// Not the client's fault: no strike.
	CodeUnavailable = "unavailable"
)

// WebSocket close codes a Reject may carry.
const (
	ClosePolicyViolation uint16 = 1008
	CloseMessageTooBig   uint16 = 1009
)

// Reject is the outcome of a refused message. It is an error.
type Reject struct {
	// Code is one of the Code* constants.
	Code string
	// Message is short, static or built from limits; it never quotes the message.
	Message string
	// Path is a JSON pointer to the offending value, when known.
	Path string
	// RetryAfter is set for CodeRateLimited and CodeUnavailable.
	RetryAfter time.Duration
	// CloseCode, if non-zero, asks the session to close the connection with it (after
	// sending the error reply, if it can); 0 means reply only.
	CloseCode uint16
	// Strike marks a client violation, to be counted by the strike/ban policy.
	Strike bool
}

func (r *Reject) Error() string {
	s := "pipeline: " + r.Code
	if r.Path != "" {
		s += " at " + r.Path
	}
	if r.Message != "" {
		s += ": " + r.Message
	}
	return s
}

// EncodeError renders r as the error reply
//
//	{"type":"error","code":"…","message":"…","path":"…","ref":<ref>,"retry_after_ms":N}
//
// omitting empty message, path and ref, and retry_after_ms unless r.RetryAfter > 0.
// ref is the raw JSON of the client's id (Message.ID); it is included only if it is a
// JSON string of at most 66 bytes or a number of at most 24 bytes, so a reply never
// carries more than a short piece of client data. One allocation: the result.
func EncodeError(r *Reject, ref []byte) []byte {
	n := 48 + len(r.Code) + len(r.Message) + len(r.Path) + len(ref)
	if r.RetryAfter > 0 {
		n += 40
	}
	return AppendError(make([]byte, 0, n+n/8), r, ref)
}

// AppendError is EncodeError appending to dst.
func AppendError(dst []byte, r *Reject, ref []byte) []byte {
	dst = append(dst, `{"type":"error","code":`...)
	dst = appendString(dst, r.Code)
	if r.Message != "" {
		dst = append(dst, `,"message":`...)
		dst = appendString(dst, r.Message)
	}
	if r.Path != "" {
		dst = append(dst, `,"path":`...)
		dst = appendString(dst, r.Path)
	}
	if safeRef(ref) {
		dst = append(dst, `,"ref":`...)
		dst = append(dst, ref...)
	}
	if r.RetryAfter > 0 {
		ms := (r.RetryAfter + time.Millisecond - 1) / time.Millisecond
		dst = append(dst, `,"retry_after_ms":`...)
		dst = strconv.AppendInt(dst, int64(ms), 10)
	}
	return append(dst, '}')
}

// safeRef reports whether ref is a short JSON string or number, safe to splice raw
// into a reply.
func safeRef(ref []byte) bool {
	if len(ref) == 0 {
		return false
	}
	switch c := ref[0]; {
	case c == '"':
		if len(ref) > 66 {
			return false
		}
		end, _, _, f := scanString(ref, 0)
		return f == scanOK && end == len(ref)
	case c == '-' || c >= '0' && c <= '9':
		if len(ref) > 24 {
			return false
		}
		end, f := scanNumber(ref, 0, 24)
		return f == scanOK && end == len(ref)
	}
	return false
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string, escaping what RFC 8259 requires and
// replacing invalid UTF-8 with U+FFFD.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
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
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\ufffd"...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
