package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"strings"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/conn/protocol"
	"github.com/wsgate/wsgate/internal/conn/session"
	"github.com/wsgate/wsgate/internal/observe/admin"
	"github.com/wsgate/wsgate/internal/state/ban"
)

// WithConfigFile names the configuration file the server was started from, so the
// admin API's reload can re-read it (SIGHUP goes through ReloadFile with the path
// the command holds).
func WithConfigFile(path string) Option { return func(o *options) { o.config = path } }

// errNoConfigFile refuses an admin reload on a server built without a file.
var errNoConfigFile = errors.New("the server was not started from a configuration file")

// reloadConfigFile re-reads the configuration file (plus the environment) and
// applies it; on any error the running configuration stays in force. The error is
// redacted because it is shown to the admin caller.
func (s *Server) reloadConfigFile(_ context.Context) error {
	err := s.reloadFrom(s.configPath)
	if err != nil {
		s.log.Error("configuration reload refused; the running configuration stays in force", "err", err, "via", "admin_api")
		return errors.New(s.redactor.String(err.Error()))
	}
	return nil
}

func (s *Server) reloadFrom(path string) error {
	if path == "" {
		return errNoConfigFile
	}
	cfg, err := config.Load(path, os.Environ())
	if err != nil {
		return err
	}
	if s.override != nil {
		s.override(cfg)
	}
	if s.dev != nil {
		if cfg, err = prepareDevReload(cfg, s.dev); err != nil {
			return err
		}
	}
	// A certificate given in memory (dev mode, tests, embedding) cannot come from
	// a file: keep it, or Reload would see a TLS change and refuse.
	if old := s.config(); cfg.TLS.CertFile == "" && cfg.TLS.Certificate == nil {
		cfg.TLS.Certificate = old.TLS.Certificate
	}
	return s.Reload(cfg)
}

// adminBackend adapts the server to the admin package's interfaces.
type adminBackend Server

func (a *adminBackend) RangeConns(f func(admin.Conn) bool) {
	(*Server)(a).registry.Range(func(ss *session.Session) bool { return f((*Server)(a).connInfo(ss)) })
}

func (a *adminBackend) Kick(id string, banned bool) (admin.Conn, bool) {
	s := (*Server)(a)
	ss, ok := s.registry.Get(id)
	if !ok {
		return admin.Conn{}, false
	}
	why := protocol.ReasonKicked
	if banned {
		why = protocol.ReasonBanned
	}
	ss.CloseAsync(why)
	return s.connInfo(ss), true
}

// Ban stores an operator ban and counts it like the automatic ones; the admin
// package writes the audit line itself.
func (a *adminBackend) Ban(ctx context.Context, b ban.Ban) error {
	s := (*Server)(a)
	if err := s.bans.Ban(ctx, b); err != nil {
		return fmt.Errorf("ban %s: %w", b.Subject, err)
	}
	kind := "ip"
	if strings.HasPrefix(b.Subject, "user:") {
		kind = "user"
	}
	s.metrics.Ban(kind)
	return nil
}

func (a *adminBackend) Unban(ctx context.Context, subject string) error {
	if err := (*Server)(a).bans.Unban(ctx, subject); err != nil {
		return fmt.Errorf("unban %s: %w", subject, err)
	}
	return nil
}

func (a *adminBackend) List(ctx context.Context) ([]ban.Ban, error) {
	l, err := (*Server)(a).bans.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list bans: %w", err)
	}
	return l, nil
}

// connInfo describes a session for the admin API.
func (s *Server) connInfo(ss *session.Session) admin.Conn {
	st := ss.Stats()
	queued, _ := ss.Pending()
	return admin.Conn{
		ID: ss.ID(), User: ss.User(), IP: ss.IP().String(), Route: ss.Route(), Subprotocol: ss.Subprotocol(),
		Since: ss.Started(), MessagesIn: st.MessagesIn, BytesIn: st.BytesIn, MessagesOut: st.MessagesOut, BytesOut: st.BytesOut,
		Queued: queued, Channels: s.sessionChannels(ss),
	}
}

// sessionChannels lists the channels a session is subscribed to, for the admin
// API (the dashboard's Channels column and search by channel).
func (s *Server) sessionChannels(ss *session.Session) []string {
	if s.room == nil {
		return nil
	}
	return s.room.Channels(ss.ID())
}

// newAdminAPI builds the admin API and dashboard handler.
func (s *Server) newAdminAPI() (*admin.Handler, error) {
	return admin.New(admin.Options{
		Token: func() string { return s.config().Admin.Token },
		Conns: (*adminBackend)(s),
		Bans:  (*adminBackend)(s),
		// Redis mode: a ban with kick also closes the subject's connections on
		// the other nodes.
		KickCluster: s.state.kickCluster,
		Alerts:      s.alerts,
		Stats:       s.metrics.Series(),
		Reload:      s.reloadConfigFile,
		Audit:       s.audit,
		Log:         s.log,
		Done:        s.ctx.Done(),
		IPKey:       func(a netip.Addr) string { return s.rt.Load().policy.IPPrefixes.Key(a) },
	})
}

var (
	_ admin.Connections = (*adminBackend)(nil)
	_ admin.Bans        = (*adminBackend)(nil)
)

// mountPublish registers the server-side publish API on the admin listener.
func (s *Server) mountPublish(mux *http.ServeMux) {
	mux.Handle("/v1/publish", s.publishHandler())
}
