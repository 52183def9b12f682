package client

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Sentinel errors, checked with errors.Is.
var (
	// ErrClosed: the Client was closed (by Close or a terminal refusal).
	ErrClosed = errors.New("client: closed")
	// ErrTimeout: a request got no reply in time. The error also matches
	// context.DeadlineExceeded when the caller's context ended it.
	ErrTimeout = errors.New("client: request timed out")
	// ErrQueueFull: the client is disconnected and its send queue is full.
	// Nothing already queued is dropped; the new message is refused.
	ErrQueueFull = errors.New("client: send queue full while disconnected")
	// ErrDisconnected: the connection a request was sent on ended before the
	// reply came. The server may or may not have acted on it.
	ErrDisconnected = errors.New("client: disconnected before the reply")
)

// HandshakeError is a refused connection attempt: the server answered the
// upgrade with an HTTP status instead of 101 (docs/protocol.md, Connecting).
type HandshakeError struct {
	Status int    // HTTP status: 401, 403, 429, 503, ...
	Code   string // the body's "error": unauthorized, banned, rate_limited, ...
	// RetryAfter is the server's Retry-After (or retry_after_s), 0 when absent.
	RetryAfter time.Duration
}

func (e *HandshakeError) Error() string {
	s := fmt.Sprintf("client: handshake refused: %d %s", e.Status, e.Code)
	if e.RetryAfter > 0 {
		s += fmt.Sprintf(" (retry after %s)", e.RetryAfter)
	}
	return s
}

// Terminal reports whether reconnecting cannot help without a change on the
// client's side: 401 (credential refused) and 403 other than a ban (which
// ends by itself after RetryAfter).
func (e *HandshakeError) Terminal() bool {
	switch e.Status {
	case 0, 401: // 0: refused before sending (a malformed token)
		return true
	case 403:
		return e.Code != "banned"
	}
	return false
}

// ServerError is an error reply to a request: {"type":"error","code":…}.
type ServerError struct {
	Code    string // invalid_message, permission_denied, rate_limited, ...
	Message string
	Path    string // the offending field, for schema violations
	// RetryAfter is set for rate_limited and unavailable.
	RetryAfter time.Duration
}

func (e *ServerError) Error() string {
	if e.Message == "" {
		return "client: server error: " + e.Code
	}
	return "client: server error: " + e.Code + ": " + e.Message
}

// CloseError is how the server ended a connection: the WebSocket close code
// and reason (docs/protocol.md, Close codes).
type CloseError struct {
	Code   uint16
	Reason string
}

func (e *CloseError) Error() string {
	return fmt.Sprintf("client: connection closed: %d %s", e.Code, e.Reason)
}

// timeoutError matches both ErrTimeout and the context's error.
type timeoutError struct{ cause error }

func (e timeoutError) Error() string        { return ErrTimeout.Error() + ": " + e.cause.Error() }
func (e timeoutError) Is(target error) bool { return target == ErrTimeout }
func (e timeoutError) Unwrap() error        { return e.cause }

// ctxError reports a context that ended: a deadline is a timeout (ErrTimeout
// and context.DeadlineExceeded), a cancellation stays context.Canceled.
func ctxError(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return timeoutError{err}
	}
	return err
}
