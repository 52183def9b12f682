package transport

import (
	"errors"
	"fmt"

	"github.com/wsgate/wsgate/internal/conn/protocol"
)

// Opcode is the type of a data message.
type Opcode uint8

const (
	// Text is a UTF-8 text message (opcode 0x1).
	Text Opcode = 0x1
	// Binary is a binary message (opcode 0x2).
	Binary Opcode = 0x2
)

// String returns "text", "binary" or the number, for logs.
func (o Opcode) String() string {
	switch o {
	case Text:
		return "text"
	case Binary:
		return "binary"
	default:
		return fmt.Sprintf("opcode(%d)", uint8(o))
	}
}

// Close status codes of RFC 6455 §7.4.1 and the IANA registry. 1005 and 1006
// are never sent on the wire: they describe a close without a status and a
// connection that ended without a close frame.
// They are package protocol's codes as the plain uint16 the frame layer speaks.
const (
	StatusNormal          = uint16(protocol.CloseNormal)
	StatusGoingAway       = uint16(protocol.CloseGoingAway)
	StatusProtocolError   = uint16(protocol.CloseProtocolError)
	StatusUnsupportedData = uint16(protocol.CloseUnsupportedData)
	StatusNoStatus        = uint16(protocol.CloseNoStatus)
	StatusAbnormal        = uint16(protocol.CloseAbnormal)
	StatusInvalidPayload  = uint16(protocol.CloseInvalidPayload)
	StatusPolicyViolation = uint16(protocol.ClosePolicyViolation)
	StatusMessageTooBig   = uint16(protocol.CloseMessageTooBig)
	StatusInternalError   = uint16(protocol.CloseInternalError)
	StatusServiceRestart  = uint16(protocol.CloseServiceRestart)
	StatusTryAgainLater   = uint16(protocol.CloseTryAgainLater)
)

// CloseError is how a connection ended: the close code that was sent or
// received (StatusAbnormal when no close frame was exchanged) and its reason.
type CloseError struct {
	Code   uint16
	Reason string
	cause  error
}

// Error implements error.
func (e *CloseError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("websocket closed: status %d", e.Code)
	}
	return fmt.Sprintf("websocket closed: status %d: %s", e.Code, e.Reason)
}

// Unwrap returns the I/O error behind an abnormal close, if any.
func (e *CloseError) Unwrap() error { return e.cause }

// CloseCode extracts the close code from an error returned or reported by
// this package.
func CloseCode(err error) (uint16, bool) {
	var ce *CloseError
	if errors.As(err, &ce) {
		return ce.Code, true
	}
	return 0, false
}

// CloseStatus returns the code and reason of the *CloseError in err's chain:
// why a connection ended, as the peer (or this side) said in its close frame;
// 0 and "" when err carries none.
func CloseStatus(err error) (uint16, string) {
	var ce *CloseError
	if errors.As(err, &ce) {
		return ce.Code, ce.Reason
	}
	return 0, ""
}

// validSendCode reports whether code may appear in a close frame we send
// (RFC 6455 §7.4: 1004-1006 and 1015 are reserved, 1016-2999 unassigned).
func validSendCode(code uint16) bool {
	switch {
	case code >= 1000 && code <= 1003:
		return true
	case code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

var (
	// ErrClosed is returned by writes on a connection that is closing or closed.
	ErrClosed = errors.New("transport: connection closed")
	// ErrInvalidUTF8 is returned when a Text message to write is not valid UTF-8.
	ErrInvalidUTF8 = errors.New("transport: text message is not valid UTF-8")
	// ErrUnexpectedStatus wraps a non-101 answer to Dial; the *http.Response is returned too.
	ErrUnexpectedStatus = errors.New("transport: handshake refused")
)
