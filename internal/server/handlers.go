package server

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/conn/pipeline"
	"github.com/wsgate/wsgate/internal/conn/protocol"
	"github.com/wsgate/wsgate/internal/conn/session"
	"github.com/wsgate/wsgate/internal/conn/transport"
	"github.com/wsgate/wsgate/internal/route/room"
)

// Message is the root package's Message (a client message of a type handled
// by a WithHandler function, after the whole pipeline); the root converts.
type Message struct {
	Type   string
	ID     json.RawMessage
	Raw    json.RawMessage
	User   string
	ConnID string
	Claims map[string]any
}

// HandlerFunc is the root package's HandlerFunc, over this package's Message.
type HandlerFunc func(ctx context.Context, m Message) (reply json.RawMessage, err error)

// WithHandler routes client messages of type typ to f (the root package's
// WithHandler documents the contract; New refuses built-in types and types
// without a schema).
func WithHandler(typ string, f HandlerFunc) Option {
	return func(o *options) {
		if o.handlers == nil {
			o.handlers = map[string]HandlerFunc{}
		}
		o.handlers[typ] = f
	}
}

// RawHandler receives every message of a raw route's connection (the root
// package's RawHandler, given the session instead of its RawConn view).
type RawHandler func(s *session.Session, op transport.Opcode, data []byte)

// WithRawRoute mounts route as a raw WebSocket endpoint served by h in this
// process (the root package's WithRawRoute documents the contract).
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
