package integrity

import "errors"

// Code classifies why a message or handshake was rejected. The values are
// stable strings: they are sent to clients in error replies and counted in
// metrics, so they must stay low-cardinality.
type Code string

// Rejection codes.
const (
	// CodeUnsigned: a well-formed JSON object without a "sig" member arrived
	// where integrity is required.
	CodeUnsigned Code = "unsigned"
	// CodeBadSignature: the MAC or signature does not verify, the key id is
	// unknown, the algorithm does not match the connection's key, or (pop) the
	// key does not match the token's thumbprint.
	CodeBadSignature Code = "bad_signature"
	// CodeReplay: the nonce was already seen within the window, on any connection.
	CodeReplay Code = "replay"
	// CodeStale: ts is outside the allowed window (too old or in the future).
	CodeStale Code = "stale"
	// CodeBadSeq: seq is not greater than the last accepted seq of the connection.
	CodeBadSeq Code = "bad_seq"
	// CodeBadEnvelope: the envelope (or handshake parameters) cannot be parsed
	// or violates the format: unknown/duplicate members, bad base64, wrong
	// lengths, body not a JSON object, and so on.
	CodeBadEnvelope Code = "bad_envelope"
	// CodeTypeMismatch: the body's "type" differs from the envelope's type.
	CodeTypeMismatch Code = "type_mismatch"
	// CodeInternal: the server could not decide (replay cache unavailable or
	// full). The message is rejected (fail closed) but the client is not at
	// fault; integrators should not count it as a strike.
	CodeInternal Code = "internal"
)

// Error is a rejection. Detail is a short static-ish explanation for logs;
// clients should only be shown Code.
type Error struct {
	Code   Code
	Detail string
	Err    error
}

func (e *Error) Error() string {
	s := "integrity: " + string(e.Code)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrReplay) and friends match on the code alone.
func (e *Error) Is(target error) bool {
	var t *Error
	if errors.As(target, &t) {
		return t.Code == e.Code && t.Detail == "" && t.Err == nil
	}
	return false
}

// Sentinels for errors.Is.
var (
	ErrUnsigned     = &Error{Code: CodeUnsigned}
	ErrBadSignature = &Error{Code: CodeBadSignature}
	ErrReplay       = &Error{Code: CodeReplay}
	ErrStale        = &Error{Code: CodeStale}
	ErrBadSeq       = &Error{Code: CodeBadSeq}
	ErrBadEnvelope  = &Error{Code: CodeBadEnvelope}
	ErrTypeMismatch = &Error{Code: CodeTypeMismatch}
	ErrInternal     = &Error{Code: CodeInternal}
)

// CodeOf returns the rejection code of err, or "" if err is nil or not an *Error.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

func reject(c Code, detail string) *Error { return &Error{Code: c, Detail: detail} }

func rejectErr(c Code, detail string, err error) *Error {
	return &Error{Code: c, Detail: detail, Err: err}
}
