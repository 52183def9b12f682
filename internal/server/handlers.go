package wsgate

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/limit"
	"github.com/wsgate/wsgate/internal/outbox"
	"github.com/wsgate/wsgate/internal/pipeline"
	"github.com/wsgate/wsgate/internal/protocol"
	"github.com/wsgate/wsgate/internal/room"
	"github.com/wsgate/wsgate/internal/schema"
	"github.com/wsgate/wsgate/internal/session"
	"github.com/wsgate/wsgate/internal/transport"
)

func outboxOptions(cfg *config.Config) outbox.Options {
	return outbox.Options{MaxMessages: cfg.Limits.Outbox.MaxMessages, MaxBytes: cfg.Limits.Outbox.MaxBytes}
}

func pipelineOptions(cfg *config.Config, l limit.Limiter) (pipeline.Options, error) {
	tiers := make(map[string]pipeline.Tier, len(cfg.Rate.Tiers))
	for name, t := range cfg.Rate.Tiers {
		tiers[name] = pipeline.Tier{
			Messages: lim(t.Messages), Bytes: lim(t.Bytes),
			UserMessages: lim(t.UserMessages), UserBytes: lim(t.UserBytes),
			IPMessages: lim(t.IPMessages), IPBytes: lim(t.IPBytes),
		}
	}
	j := cfg.Limits.JSON
	reg, err := schema.New(schema.Options{Dir: cfg.Schemas.Dir, Inline: cfg.Schemas.Inline})
	if err != nil {
		return pipeline.Options{}, fmt.Errorf("schemas: %w", err)
	}
	abuse := cfg.Rate.AbuseLimited
	if abuse == 0 {
		abuse = -1 // 0 in the config means "never close for rate abuse"
	}
	return pipeline.Options{
		MaxBytes:     cfg.Limits.MaxMessageBytes,
		TypeMaxBytes: cfg.Limits.TypeMaxBytes,
		MaxDepth:     j.MaxDepth,
		MaxKeys:      j.MaxKeys,
		MaxArray:     j.MaxArrayLen,
		MaxString:    j.MaxStringLen,
		Registry:     reg,
		Limiter:      l,
		Tiers:        tiers,
		FailOpen:     cfg.Rate.FailOpen,
		AbuseMax:     abuse,
		AbuseWindow:  cfg.Rate.AbuseWindow,
	}, nil
}

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
	return func(o *options) {
		if o.handlers == nil {
			o.handlers = map[string]HandlerFunc{}
		}
		o.handlers[typ] = f
	}
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
	return func(o *options) { o.rawRoutes = append(o.rawRoutes, rawRoute{route, h}) }
}

type rawRoute struct {
	route config.Route
	h     RawHandler
}

// checkHandlers refuses WithHandler types that are built in or that no schema
// describes.
func (s *Server) checkHandlers(handlers map[string]HandlerFunc) error {
	reg := s.pipeline.Load().Registry()
	for typ, f := range handlers {
		switch {
		case f == nil:
			return fmt.Errorf("WithHandler(%q): nil handler", typ)
		case typ == "ping" || typ == "refresh" || room.Handles(typ):
			return fmt.Errorf("WithHandler(%q): a built-in message type", typ)
		}
		if _, ok := reg.Lookup(typ); !ok {
			return fmt.Errorf("WithHandler(%q): no schema for the type (schemas.inline or schemas.dir)", typ)
		}
	}
	return nil
}

// runHandler calls a WithHandler function for one accepted message.
func (s *Server) runHandler(ctx context.Context, ss *session.Session, f HandlerFunc, m pipeline.Message) {
	id := ss.Identity()
	reply, err := f(ctx, Message{Type: m.Type, ID: json.RawMessage(m.ID), Raw: json.RawMessage(m.Raw), User: id.Subject, ConnID: ss.ID(), Claims: id.Claims})
	switch {
	case err != nil:
		s.log.Debug("handler failed", "conn_id", ss.ID(), "type", m.Type, "err", err)
		ss.Reject(m.ID, &protocol.Error{Code: protocol.CodeHandlerFailed, Message: "request failed"})
	case reply != nil:
		_ = ss.Reply(reply)
	}
}
