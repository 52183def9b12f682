package server

import (
	"context"
	"fmt"
	"net/http"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/conn/pipeline"
	"github.com/wsgate/wsgate/internal/conn/protocol"
	"github.com/wsgate/wsgate/internal/conn/session"
	"github.com/wsgate/wsgate/internal/route/command"
	"github.com/wsgate/wsgate/internal/route/room"
)

// WithCommands answers `command` messages with b instead of the configured
// command.url (the root package's WithCommandHandler).
func WithCommands(b command.Backend) Option { return func(o *options) { o.commands = b } }

// buildRealtime creates the real-time core (channels, history, presence, commands)
// over the node's broker, and starts delivering broker events.
func (s *Server) buildRealtime(rt *runtime, commands command.Backend) error {
	cfg := rt.cfg
	if commands == nil && cfg.Command.URL != "" {
		h, err := command.NewHTTP(command.HTTPOptions{URL: cfg.Command.URL, Timeout: cfg.Command.Timeout, MaxResponseBytes: int64(cfg.Command.MaxResponseBytes)})
		if err != nil {
			return fmt.Errorf("command: %w", err)
		}
		commands = h
	}
	svc, err := room.New(roomOptions(cfg, rt.ns, commands, s), s.state.broker)
	if err != nil {
		return fmt.Errorf("channels: %w", err)
	}
	svc.SetLogger(s.log)
	s.room = svc
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		if err := svc.Run(s.ctx); err != nil && s.ctx.Err() == nil {
			s.log.Error("real-time core stopped", "err", err)
		}
	}()
	return nil
}

// roomOptions are the room's settings; ns are the runtime's namespaces (with
// their hooks), which every reload replaces (install).
func roomOptions(cfg *config.Config, ns map[string]room.Namespace, commands command.Backend, s *Server) room.Options {
	o := room.Options{
		Namespaces:           ns,
		DefaultChannel:       cfg.Channels.DefaultChannel,
		ChannelClaim:         cfg.Channels.Claim,
		MaxChannelsPerClient: cfg.Channels.MaxPerClient,
		Commands:             commands,
		CommandTimeout:       cfg.Command.Timeout,
	}
	if s != nil && s.integ != nil {
		o.SignOutput = s.integ.signer.Sign
	}
	if s != nil {
		o.SubscriptionTokenVerify = func(ctx context.Context, token string) (map[string]any, error) {
			// Only a token typed as a subscription grant (typ "subscription")
			// grants a channel: an access token with a "channel" claim does not.
			id, err := s.rt.Load().verifier.VerifySubscription(ctx, token)
			if err != nil {
				return nil, err
			}
			return id.Claims, nil
		}
	}
	return o
}

// roomRouter hands accepted messages of the real-time types to the room service.
type roomRouter struct{ s *Server }

func (rr roomRouter) Handle(ctx context.Context, ss *session.Session, m pipeline.Message) {
	if f := rr.s.handlers[m.Type]; f != nil {
		rr.s.runHandler(ctx, ss, f, m)
		return
	}
	if !room.Handles(m.Type) {
		ss.Reject(m.ID, &protocol.Error{Code: protocol.CodeUnknownType, Message: "unknown message type", Strike: true})
		return
	}
	var c room.Client = ss
	if m.Signed {
		c = signedClient{ss, signedMode(ss.ConnState())}
	}
	// The pipeline's scan located the members the room reads: no second parse.
	mb := m.Members
	if rej := rr.s.checkEndToEnd(m.Type, mb.Channel, mb.Payload, mb.Text); rej != nil {
		ss.Reject(m.ID, rej)
		return
	}
	req := room.Request{Type: m.Type, ID: m.ID, Channel: mb.Channel, Payload: mb.Payload, Text: mb.Text,
		Since: mb.Since, Token: mb.Token, Limit: mb.Limit, Name: mb.Name}
	if e := rr.s.room.HandleRequest(ctx, c, req); e != nil {
		if e.Err != nil {
			rr.s.log.Debug("request failed", "conn_id", ss.ID(), "type", m.Type, "code", e.Code, "err", e.Err)
		}
		if e.Strike {
			ss.Strike(e.Code)
		}
	}
}

// signedClient is a session while it handles a signed message: the room checks
// namespaces that require signatures against it.
type signedClient struct {
	*session.Session
	mode string
}

func (c signedClient) MessageIntegrity() string { return c.mode }

func (rr roomRouter) Leave(ss *session.Session) {
	ctx, cancel := context.WithTimeout(context.Background(), room.DefaultOpTimeout)
	defer cancel()
	rr.s.room.Leave(ctx, ss)
}

// mountRealtime registers the real-time core's HTTP endpoints on the public listener.
func (s *Server) mountRealtime(mux *http.ServeMux) {
	if s.dev != nil {
		s.mountDemo(mux)
	}
}

// publishHandler serves POST /v1/publish (server-side publish) on the admin listener.
// The keys are read per request so that a reload that rotates them takes effect.
func (s *Server) publishHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.room.PublishHandler(s.config().Channels.PublishAPIKeys).ServeHTTP(w, r)
	})
}
