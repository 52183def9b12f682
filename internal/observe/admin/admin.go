package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/wsgate/wsgate/internal/defaults"
	"github.com/wsgate/wsgate/internal/observe/alert"
	"github.com/wsgate/wsgate/internal/observe/audit"
	"github.com/wsgate/wsgate/internal/observe/metrics"
	"github.com/wsgate/wsgate/internal/state/ban"
)

// Conn describes one live connection for the API and the dashboard.
type Conn struct {
	ID          string    `json:"id"`
	User        string    `json:"user"`
	IP          string    `json:"ip"`
	Route       string    `json:"route"`
	Subprotocol string    `json:"subprotocol,omitempty"`
	Since       time.Time `json:"since"`
	MessagesIn  uint64    `json:"messages_in"`
	BytesIn     uint64    `json:"bytes_in"`
	MessagesOut uint64    `json:"messages_out"`
	BytesOut    uint64    `json:"bytes_out"`
	Queued      int       `json:"queued"`   // messages waiting in the outbound queue
	Channels    []string  `json:"channels"` // channels the connection is subscribed to (empty if unknown)
}

// Connections lists and closes live connections.
type Connections interface {
	// RangeConns calls f for every live connection until f returns false. f
	// does not block.
	RangeConns(f func(Conn) bool)
	// Kick closes connection id (1008 "kicked", or 1008 "banned" when banned
	// is true) without waiting for it to end, and reports what it closed.
	Kick(id string, banned bool) (Conn, bool)
}

// Bans is the ban store; ban.List implements it.
type Bans interface {
	Ban(ctx context.Context, b ban.Ban) error
	Unban(ctx context.Context, subject string) error
	List(ctx context.Context) ([]ban.Ban, error)
}

// Alerts is the alert engine; *alert.Engine implements it.
type Alerts interface {
	Recent(n int) []alert.Alert
	Subscribe(buf int) (<-chan alert.Alert, func())
}

// Stats is the dashboard time series; *metrics.Series implements it.
type Stats interface {
	Last(d time.Duration) metrics.Snapshot
}

// Auditor records admin actions; *audit.Logger implements it.
type Auditor interface {
	Log(e audit.Event)
}

// Defaults applied by New to zero Options fields.
const (
	DefaultMaxStreams     = 16
	DefaultStreamInterval = time.Second
	DefaultMaxBodyBytes   = 64 << 10
	DefaultMaxListed      = 1000
	DefaultMaxTracked     = 5000
	DefaultStatsWindow    = 10 * time.Minute
	DefaultBanTTL         = time.Hour
)

// Options configures a Handler. Conns, Bans, Alerts and Stats are required.
type Options struct {
	// Token returns the admin token in force (it may change on reload). An
	// empty token refuses every API call with 403.
	Token func() string
	Conns Connections
	Bans  Bans
	// KickCluster, if set, is called for a ban with "kick": true after this
	// node's connections are closed, to close the subject's connections on the
	// other nodes of a cluster (the response lists this node's only). Its error
	// is logged; the ban stands.
	KickCluster func(ctx context.Context, subject string) error
	// Alerts may be nil: the alert list is then empty and the stream has no alerts.
	Alerts Alerts
	Stats  Stats
	// Reload re-reads the configuration; nil answers 501. Its error is shown to
	// the caller, so it must not carry secrets.
	Reload func(ctx context.Context) error
	// Audit receives admin actions; nil drops them.
	Audit Auditor
	// Log receives failures; nil discards.
	Log *slog.Logger
	// Done ends live event streams (the server's shutdown). Nil: streams end
	// only when their client goes.
	Done <-chan struct{}
	// MaxStreams bounds concurrent live event streams (default 16); more get 503.
	MaxStreams int
	// StreamInterval is how often a stream sends stats (default 1s).
	StreamInterval time.Duration
	// MaxBodyBytes bounds request bodies (default 64 KiB).
	MaxBodyBytes int64
	// MaxListed caps the connections one list call returns (default 1000).
	MaxListed int
	// MaxTracked is the connection count up to which streams report each
	// connection opening and closing (default 5000); above it they send counts only.
	MaxTracked int
	// StatsWindow is the history the stats call and stream cover (default 10m, at most 15m).
	StatsWindow time.Duration
	// DefaultBanTTL applies to a ban request without ttl (default 1h).
	DefaultBanTTL time.Duration
	// IPKey maps a client address onto the per-IP key the server's limits and
	// bans use (limit.IPPrefixes.Key: an IPv6 address onto its /64 by default),
	// so that banning "ip:2001:db8::5" bans what the guard checks. Nil: the
	// address itself.
	IPKey func(netip.Addr) string
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Handler serves the admin API under /api/ and the dashboard at / and /dashboard.
type Handler struct {
	o       Options
	mux     *http.ServeMux
	streams chan struct{}
}

// New checks opts, applies defaults and returns the Handler.
func New(opts Options) (*Handler, error) {
	o := opts
	switch {
	case o.Conns == nil:
		return nil, errors.New("admin: Options.Conns is required")
	case o.Bans == nil:
		return nil, errors.New("admin: Options.Bans is required")
	case o.Stats == nil:
		return nil, errors.New("admin: Options.Stats is required")
	}
	if o.Token == nil {
		o.Token = func() string { return "" }
	}
	defaults.Positive(&o.MaxStreams, DefaultMaxStreams)
	defaults.Positive(&o.StreamInterval, DefaultStreamInterval)
	defaults.Positive(&o.MaxBodyBytes, DefaultMaxBodyBytes)
	defaults.Positive(&o.MaxListed, DefaultMaxListed)
	defaults.Positive(&o.MaxTracked, DefaultMaxTracked)
	if o.StatsWindow <= 0 || o.StatsWindow > metrics.SeriesWindow {
		o.StatsWindow = DefaultStatsWindow
	}
	defaults.Positive(&o.DefaultBanTTL, DefaultBanTTL)
	defaults.Now(&o.Now)
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	h := &Handler{o: o, streams: make(chan struct{}, o.MaxStreams)}
	h.routes()
	return h, nil
}

func (h *Handler) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET /{$}", h.serveDashboard)
	m.HandleFunc("GET /dashboard", h.serveDashboard)
	m.HandleFunc("GET /dashboard/{file}", h.serveAsset)

	api := func(pattern string, f http.HandlerFunc) { m.Handle(pattern, h.authed(f)) }
	api("GET /api/v1/status", h.status)
	api("GET /api/v1/connections", h.listConns)
	api("GET /api/v1/connections/{id}", h.getConn)
	api("POST /api/v1/connections/{id}/kick", h.kick)
	api("GET /api/v1/bans", h.listBans)
	api("POST /api/v1/bans", h.ban)
	api("DELETE /api/v1/bans/{subject}", h.unban)
	api("GET /api/v1/alerts", h.listAlerts)
	api("POST /api/v1/reload", h.reload)
	api("GET /api/v1/stats", h.stats)
	api("GET /api/v1/events", h.events)
	h.mux = m
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("X-Frame-Options", "DENY")
	if strings.HasPrefix(r.URL.Path, "/api/") {
		w.Header().Set("Cache-Control", "no-store")
		// Unknown paths and wrong methods get JSON, and only after the token
		// check, so the API's shape cannot be probed without the token.
		if _, pattern := h.mux.Handler(r); pattern == "" {
			if h.checkToken(w, r) {
				h.noRoute(w, r)
			}
			return
		}
	}
	h.mux.ServeHTTP(w, r)
}

// noRoute answers 405 when the path exists for another method, else 404.
func (h *Handler) noRoute(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, p := h.mux.Handler(probe); p != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) == 0 {
		writeError(w, http.StatusNotFound, "not found")
		return
	}
	w.Header().Set("Allow", strings.Join(allow, ", "))
	writeError(w, http.StatusMethodNotAllowed, "method not allowed")
}

// authed wraps an API handler with the token check.
func (h *Handler) authed(f http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h.checkToken(w, r) {
			f(w, r)
		}
	})
}

// checkToken answers 403 when no token is configured and 401 for a missing or
// wrong one. Both sides are hashed before the compare so neither the token's
// content nor its length leaks through timing.
func (h *Handler) checkToken(w http.ResponseWriter, r *http.Request) bool {
	want := h.o.Token()
	if want == "" {
		writeError(w, http.StatusForbidden, "admin token not configured")
		return false
	}
	got, ok := bearerToken(r.Header.Get("Authorization"))
	wh, gh := sha256.Sum256([]byte(want)), sha256.Sum256([]byte(got))
	if subtle.ConstantTimeCompare(wh[:], gh[:]) != 1 || !ok {
		h.audit(r, audit.Event{Event: audit.AdminAction, Reason: "unauthorized", Status: http.StatusUnauthorized,
			Detail: map[string]any{"method": r.Method, "path": r.URL.Path}})
		w.Header().Set("WWW-Authenticate", `Bearer realm="wsgate admin"`)
		writeError(w, http.StatusUnauthorized, "unauthorized")
		return false
	}
	return true
}

// bearerToken extracts the credential of an "Authorization: Bearer x" header.
func bearerToken(h string) (string, bool) {
	const prefix = "bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	tok := strings.TrimSpace(h[len(prefix):])
	return tok, tok != ""
}

// audit records an admin action with who asked (the remote address; the admin
// API has a single shared credential, so the address is the best identity).
func (h *Handler) audit(r *http.Request, e audit.Event) {
	if h.o.Audit == nil {
		return
	}
	if e.Detail == nil {
		e.Detail = map[string]any{}
	}
	e.Detail["remote"] = r.RemoteAddr
	e.Detail["via"] = "admin_api"
	h.o.Audit.Log(e)
}
