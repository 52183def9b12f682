package wsgate

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/server"
)

// Server is a running wsgate: an http.Handler for the WebSocket endpoint(s) and
// the small HTTP API beside them (tickets, health, keys), plus Shutdown. The
// wiring behind it lives in internal/server; this type is its public face.
type Server struct{ s *server.Server }

// Option customises New.
type Option = server.Option

// New validates cfg and builds a Server. It starts no listener: serve it with
// ListenAndServe or mount it in your own http.Server.
func New(cfg *config.Config, opts ...Option) (*Server, error) {
	s, err := server.New(cfg, opts...)
	if err != nil {
		return nil, err
	}
	return &Server{s}, nil
}

// WithLogger sets the process logger (wsgate wraps it to redact secrets).
func WithLogger(l *slog.Logger) Option { return server.WithLogger(l) }

// WithOverride gives a function applied to every configuration a reload reads,
// before it is validated: the command line's flags (--log-level, …) keep winning
// over the file after SIGHUP or an admin reload, as they did at start.
func WithOverride(f func(*config.Config)) Option { return server.WithOverride(f) }

// WithConfigFile names the configuration file the server was started from, so the
// admin API's reload can re-read it (SIGHUP goes through ReloadFile with the path
// the command holds).
func WithConfigFile(path string) Option { return server.WithConfigFile(path) }

// ServeHTTP serves the WebSocket endpoint and the public HTTP API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.s.ServeHTTP(w, r) }

// Listening reports where a server listens, once ListenAndServe has bound its sockets.
type Listening struct {
	Addr      string // the WebSocket listener, e.g. "127.0.0.1:8443"
	AdminAddr string // "" when the admin listener is off
	TLS       bool
}

// ListenAndServe binds the configured listeners (TLS, mTLS and handshake limits
// applied), calls ready with the bound addresses, serves until ctx is done, then
// shuts down gracefully within timeouts.drain.
func (s *Server) ListenAndServe(ctx context.Context, ready func(Listening)) error {
	var f func(server.Listening)
	if ready != nil {
		f = func(l server.Listening) { ready(Listening(l)) }
	}
	return s.s.ListenAndServe(ctx, f)
}

// Shutdown stops accepting connections, sends close 1001 to every client and waits
// for them until ctx is done, then drops what is left. It returns an error when
// connections had to be dropped.
func (s *Server) Shutdown(ctx context.Context) error { return s.s.Shutdown(ctx) }

// Reload applies a new configuration without dropping connections: limits,
// origins, keys/JWKS, schemas, tiers, strike policy, quotas, hooks and per-room
// limits change for what happens next. Listener addresses, TLS files and the state backend need a restart;
// a change to them is refused. An invalid configuration is refused whole and the
// running one stays in force.
//
// Reloads are serialized: a second Reload waits for the first to finish, so the
// running configuration is always one that was loaded whole.
func (s *Server) Reload(cfg *config.Config) error { return s.s.Reload(cfg) }

// ReloadFile loads path (plus environ, the WSGATE_* variables) and applies it with
// Reload, logging the outcome; a refused file leaves the running configuration in
// force.
func (s *Server) ReloadFile(path string, environ []string) { s.s.ReloadFile(path, environ) }

// AdminHandler serves the admin listener: metrics, the admin API, the dashboard and
// the server-side publish API. Keep it on a loopback or private address.
//
// GET /metrics, GET /healthz and GET /readyz (readiness with its details: connections,
// Redis, upstream health) are open (Prometheus scrapers and probes on the private
// admin network); every /api/v1 call requires the admin token. The
// dashboard page at / is static and asks for the token itself.
func (s *Server) AdminHandler() http.Handler { return s.s.AdminHandler() }

var _ http.Handler = (*Server)(nil)
