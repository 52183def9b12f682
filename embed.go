package wsgate

import (
	"context"
	"encoding/json"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/conn/protocol"
	"github.com/wsgate/wsgate/internal/conn/session"
	"github.com/wsgate/wsgate/internal/conn/transport"
	"github.com/wsgate/wsgate/internal/route/command"
	"github.com/wsgate/wsgate/internal/route/hook"
	"github.com/wsgate/wsgate/internal/server"
)

// Opcode is the type of a WebSocket data message: Text or Binary.
type Opcode = transport.Opcode

// Opcodes of data messages.
const (
	Text   = transport.Text
	Binary = transport.Binary
)

// Message is a client message of a type handled by a WithHandler function: it
// passed the whole pipeline (size, JSON shape, the type's schema, rate limits,
// integrity) before the function sees it.
type Message struct {
	Type   string
	ID     json.RawMessage // the message's "id", nil when it has none
	Raw    json.RawMessage // the whole message as the client sent it
	User   string
	ConnID string
	Claims map[string]any
}

// HandlerFunc answers one message of a custom type. A non-nil reply (a JSON
// message) is sent to the client in order with everything else it gets; a nil
// reply sends nothing. An error sends an error reply with code
// "handler_failed" and the message's id as ref; the error itself is logged at
// debug level, never sent. The function runs on the connection's reader: the
// client's next message waits for it, so it should not block for long.
type HandlerFunc func(ctx context.Context, m Message) (reply json.RawMessage, err error)

// WithHandler routes client messages of type typ to f (library mode). The type
// needs a schema (schemas.inline or schemas.dir), as every type does: the
// pipeline refuses types it cannot check with unknown_type before any handler
// runs. The built-in types (ping, refresh and the real-time core's subscribe,
// unsubscribe, publish, chat, data, presence, history, command) cannot be
// taken over: New fails.
func WithHandler(typ string, f HandlerFunc) Option {
	var h server.HandlerFunc
	if f != nil { // a nil f stays nil, for New to refuse
		h = func(ctx context.Context, m server.Message) (json.RawMessage, error) { return f(ctx, Message(m)) }
	}
	return server.WithHandler(typ, h)
}

// RawConn is a connection on a raw route, as its RawHandler sees it. Its
// methods are safe for concurrent use.
type RawConn struct{ s *session.Session }

// Send queues a message for the client without blocking; binary needs the
// route's allow_binary. A full queue closes the connection as a slow consumer
// (1008) and returns an error.
func (c RawConn) Send(op Opcode, data []byte) error { return c.s.SendOp(op, data) }

// Close closes the connection with code (1000, 1001, 1008, 3000-4999, …) and a
// short reason; what is queued is flushed first, for a bounded time.
func (c RawConn) Close(code uint16, reason string) { c.s.CloseWith(protocol.CloseCode(code), reason) }

// ConnID, User, Claims and Context describe the authenticated connection; the
// context ends when the connection does.
func (c RawConn) ConnID() string           { return c.s.ID() }
func (c RawConn) User() string             { return c.s.User() }
func (c RawConn) Claims() map[string]any   { return c.s.Claims() }
func (c RawConn) Context() context.Context { return c.s.Context() }

// RawHandler receives every message of a raw route's connection, unparsed,
// after the route's guard (origin, authentication, handshake rate, quotas,
// bans) and raw checks (the transport's framing, size, fragment and binary
// rules and the rate-limit tiers). It runs on the connection's reader, one
// message at a time, in order; the data is the handler's to keep.
type RawHandler func(c RawConn, op Opcode, data []byte)

// WithRawRoute mounts route (path, optional host, origins, subprotocols,
// max_message_bytes, allow_binary) as a raw WebSocket endpoint served by h in
// this process, instead of forwarding to an upstream: wsgate's guard and raw
// checks, opaque frames to Go. route.Upstream must be empty; route.Validation
// is "raw" (or empty). A rate-limited message closes the connection with 1008,
// as on a raw gateway route.
func WithRawRoute(route config.Route, h RawHandler) Option {
	var f server.RawHandler
	if h != nil { // a nil h stays nil, for New to refuse
		f = func(s *session.Session, op transport.Opcode, data []byte) { h(RawConn{s}, op, data) }
	}
	return server.WithRawRoute(route, f)
}

// CommandRequest is a `command` message as a Go handler sees it: the caller's
// verified identity and the payload it sent.
type CommandRequest struct {
	Name    string
	Payload json.RawMessage
	User    string
	ConnID  string
	Claims  map[string]any
}

// WithCommandHandler answers `command` messages with a Go function instead of the
// configured command.url (library mode). Its JSON answer is relayed to the caller
// with the request's ref; an error becomes an error reply.
func WithCommandHandler(f func(ctx context.Context, req CommandRequest) (json.RawMessage, error)) Option {
	return server.WithCommands(command.Func(func(ctx context.Context, req command.Request) (json.RawMessage, error) {
		return f(ctx, CommandRequest{Name: req.Name, Payload: req.Payload, User: req.User, ConnID: req.ConnID, Claims: req.Claims})
	}))
}

// Hook types for embedders (WithHooks): the events a hook receives and the
// replies it gives. See docs/hooks.md.
type (
	HookIdentity   = hook.Identity
	ConnectEvent   = hook.ConnectEvent
	ConnectReply   = hook.ConnectReply
	HookChannels   = hook.Channels
	SubscribeEvent = hook.SubscribeEvent
	SubscribeReply = hook.SubscribeReply
	PublishEvent   = hook.PublishEvent
	PublishReply   = hook.PublishReply
	HookFuncs      = hook.Funcs
	HookOptions    = hook.Options
)

// WithHooks makes Go functions the connect, subscribe and publish hooks of
// every namespace (library mode), under the same protections as HTTP hooks:
// opts' timeout (in the function's ctx, which it must honour), concurrency
// bound, circuit breaker and failure policy (fail closed unless
// opts.FailOpen). A function set here replaces the configured global hook of
// its kind; per-namespace HTTP hooks (channels.namespaces.X.hooks) still take
// precedence for their namespace.
func WithHooks(f HookFuncs, opts HookOptions) Option { return server.WithHooks(f, opts) }
