package server

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/conn/pipeline"
	"github.com/wsgate/wsgate/internal/conn/protocol"
	"github.com/wsgate/wsgate/internal/conn/session"
	"github.com/wsgate/wsgate/internal/edge/auth"
	"github.com/wsgate/wsgate/internal/edge/guard"
	"github.com/wsgate/wsgate/internal/observe/alert"
	"github.com/wsgate/wsgate/internal/observe/audit"
	"github.com/wsgate/wsgate/internal/observe/metrics"
	"github.com/wsgate/wsgate/internal/observe/redact"
	"github.com/wsgate/wsgate/internal/route/command"
	"github.com/wsgate/wsgate/internal/route/hook"
	"github.com/wsgate/wsgate/internal/route/room"
	"github.com/wsgate/wsgate/internal/state/ban"
	"github.com/wsgate/wsgate/internal/state/encrypt"
	"github.com/wsgate/wsgate/internal/state/limit"
	"github.com/wsgate/wsgate/internal/state/quota"
	"github.com/wsgate/wsgate/internal/state/ticket"
	"github.com/wsgate/wsgate/internal/tools/demo"
)

// Server is a running wsgate: an http.Handler for the WebSocket endpoint(s) and the
// small HTTP API beside them (tickets, health, keys), plus Shutdown.
type Server struct {
	// rt is the runtime in force: everything compiled from the configuration
	// (compile.go). Reload swaps it whole.
	rt       atomic.Pointer[runtime]
	log      *slog.Logger
	redactor *redact.Redactor

	tickets *ticket.Issuer
	limiter limit.Limiter
	// roomLimiter answers per-room limits exactly across nodes (stores.roomLimiter).
	roomLimiter limit.Limiter
	quotas      *quota.Quotas
	qstore      quota.Store
	bans        ban.List
	strikes     *ban.Strikes
	// pipeline is rt's pipeline, which the built-in endpoint's sessions follow
	// live (session.Deps.LivePipeline): a reload's limits apply to them too.
	pipeline atomic.Pointer[pipeline.Pipeline]
	registry *session.Registry

	state   *stores
	enc     *encrypt.Broker // around state.broker: seals at_rest, checks end_to_end namespaces
	integ   *integrityState
	room    *room.Service
	metrics *metrics.Metrics
	audit   *audit.Logger
	alerts  *alert.Engine

	rawRoutes []rawRoute // WithRawRoute, compiled with every runtime

	ctx      context.Context
	cancel   context.CancelFunc
	bg       sync.WaitGroup // background work owned by the server
	closers  []func()
	shutdown atomic.Bool
	active   atomic.Int64 // requests in ServeHTTP and sessions served by serveSession
	draining atomic.Bool

	dev        *DevInfo
	configPath string                 // the file the admin reload re-reads (WithConfigFile)
	handlers   map[string]HandlerFunc // WithHandler; read-only after New
	// goHooks are WithHooks' functions and devGame the dev demo's referee,
	// made once at New: every runtime's hooks (hooks.go) share them.
	goHooks goHooks
	devGame *hook.Hook

	// reloadMu serializes Reload: SIGHUP and the admin API may ask at the same
	// time, and two reloads swapping their parts one by one would interleave
	// into a configuration nobody wrote (and leak the loser's verifier).
	reloadMu sync.Mutex
	// logLevel is the level of the logger New built from log.level; nil when the
	// embedding program gave its own logger (WithLogger), which it then owns.
	logLevel *slog.LevelVar
	override func(*config.Config) // WithOverride: flags re-applied on every reload
}

// Option customises New.
type Option func(*options)

type options struct {
	log      *slog.Logger
	redactor *redact.Redactor
	dev      *DevInfo
	commands command.Backend
	config   string
	// handlers and rawRoutes are the embedder's (handlers.go).
	handlers  map[string]HandlerFunc
	rawRoutes []rawRoute
	override  func(*config.Config)
	// hookFuncs and hookOpts are WithHooks' (hooks.go); hookSet says it was given.
	hookFuncs hook.Funcs
	hookOpts  hook.Options
	hookSet   bool
}

// WithRedactor makes the server log through r (tests inspect what it masks).
func WithRedactor(r *redact.Redactor) Option { return func(o *options) { o.redactor = r } }

// WithOverride gives a function applied to every configuration a reload reads,
// before it is validated: the command line's flags (--log-level, …) keep winning
// over the file after SIGHUP or an admin reload, as they did at start.
func WithOverride(f func(*config.Config)) Option { return func(o *options) { o.override = f } }

// WithLogger sets the process logger (wsgate wraps it to redact secrets).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// New validates cfg and builds a Server. It starts no listener: serve it with
// ListenAndServe or mount it in your own http.Server.
func New(cfg *config.Config, opts ...Option) (*Server, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{registry: session.NewRegistry(), dev: o.dev, handlers: o.handlers}
	s.configPath = o.config
	s.rawRoutes = o.rawRoutes
	s.redactor = o.redactor
	if s.redactor == nil {
		s.redactor = redact.New(redact.Options{})
	}
	if o.log == nil {
		s.logLevel = new(slog.LevelVar)
		s.logLevel.Set(logLevel(cfg.Log.Level))
		o.log = newLogger(cfg.Log.Format, s.logLevel, os.Stderr)
	}
	s.override = o.override
	s.log = slog.New(redact.NewHandler(o.log.Handler(), s.redactor))
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if err := s.build(cfg); err != nil {
		s.cancel()
		for _, c := range s.closers {
			c()
		}
		return nil, err
	}
	var err error
	s.goHooks, err = s.newGoHooks(&o)
	if err == nil && s.dev != nil {
		s.devGame, err = hook.New(hook.KindPublish, hook.NewFunc(hook.KindPublish, hook.Funcs{Publish: demo.NewGames().Publish}), hook.Options{})
	}
	var rt *runtime
	if err == nil {
		rt, err = s.compile(cfg, nil)
	}
	if err == nil {
		s.rt.Store(rt) // closed by the closer build registered
		s.pipeline.Store(rt.pipeline)
		err = s.checkHandlers(o.handlers)
	}
	if err == nil {
		err = s.buildRealtime(rt, o.commands)
	}
	if err == nil {
		err = s.install(rt)
	}
	if err != nil {
		s.cancel()
		for _, c := range s.closers {
			c()
		}
		return nil, err
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		s.probeUpstreams()
	}()
	return s, nil
}

func newLogger(format string, lvl slog.Leveler, w *os.File) *slog.Logger {
	hopts := &slog.HandlerOptions{Level: lvl}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, hopts))
	}
	return slog.New(slog.NewJSONHandler(w, hopts))
}

// logLevel parses a validated log.level.
func logLevel(s string) slog.Level {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(s))
	return lvl
}

func (s *Server) onClose(f func()) { s.closers = append(s.closers, f) }

// build creates the parts that outlive a runtime (stores, observability,
// integrity verifier, strikes, tickets); compile builds the rest.
func (s *Server) build(cfg *config.Config) error {
	if err := s.buildVisibility(cfg); err != nil {
		return err
	}
	s.onClose(func() {
		if rt := s.rt.Load(); rt != nil {
			rt.close()
		}
	})
	s.pinSecrets(cfg)

	// Before the stores: a bad key fails the start without touching Redis
	// (compile builds the policy in force).
	if _, err := encryptionPolicy(cfg, nil); err != nil {
		return err
	}
	st, err := s.newStores(cfg)
	if err != nil {
		return err
	}
	// Always decorated, so that a reload can turn encryption on or rotate keys.
	s.enc = encrypt.NewBroker(st.broker, nil)
	s.enc.SetLogger(s.log)
	st.broker = s.enc
	s.state = st
	if st.ping != nil {
		ctx, cancel := context.WithTimeout(s.ctx, 2*time.Second)
		s.metrics.RedisUp(st.ping(ctx) == nil) // exported only when Redis is configured
		cancel()
	}
	if err := s.buildIntegrity(cfg, st.replay); err != nil {
		return err
	}
	s.limiter = st.limiter
	s.roomLimiter = st.roomLimiter
	if s.roomLimiter == nil {
		s.roomLimiter = st.limiter
	}
	s.qstore = st.quota
	s.quotas = quota.New(s.qstore, quotaLimits(cfg))
	s.bans = st.bans
	s.strikes = ban.NewStrikes(strikePolicy(cfg), s.bans, ban.StrikesOptions{OnBan: s.onBan, Counter: st.strikes, Kick: st.kick})
	s.onClose(func() { _ = s.strikes.Close() })
	if cfg.Auth.Tickets.Enabled {
		s.tickets = ticket.NewIssuer(redactedTickets{st.tickets, s.redactor}, cfg.Auth.Tickets.TTL)
	}
	return nil
}

func (s *Server) newVerifier(cfg *config.Config) (*auth.Verifier, error) {
	a := cfg.Auth
	keys := make([]auth.Key, 0, len(a.Keys))
	for _, k := range a.Keys {
		keys = append(keys, auth.Key{ID: k.ID, Algorithms: k.Algorithms, Secret: k.Secret, PublicKeyFile: k.PublicKeyFile, PublicKeyPEM: k.PublicKeyPEM})
	}
	if a.Mode == "mtls" && len(keys) == 0 && a.JWKSURL == "" {
		// Client certificates alone use no JWT key, and the verifier wants one: give
		// it a random secret that exists only in this process and is never printed,
		// so no token can verify. (Tickets and refresh still go through it and are
		// refused, as they should be without a JWT key.)
		keys = append(keys, auth.Key{ID: "mtls-only-unusable", Algorithms: []string{"HS256"}, Secret: auth.NewSecret()})
	}
	ctx, cancel := context.WithTimeout(s.ctx, 15*time.Second)
	defer cancel()
	v, err := auth.NewVerifier(ctx, auth.Options{
		Keys: keys, JWKSURL: a.JWKSURL, JWKSRefresh: a.JWKSRefresh, JWKSMinRefresh: a.JWKSMinRefresh,
		Issuer: a.Issuer, Audience: a.Audience, Leeway: a.Leeway, MaxLifetime: a.MaxLifetime, SubjectClaim: a.SubjectClaim,
	}, s.log)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	return v, nil
}

// ServeHTTP serves the WebSocket endpoints and the public HTTP API of the
// runtime in force.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.active.Add(1)
	defer s.active.Add(-1)
	s.rt.Load().mux.ServeHTTP(w, r)
}

// handleReady is the public readiness probe: the status and its HTTP code, nothing
// else. Connection counts, route names and upstream errors help an attacker map
// the deployment, so they are served only on the admin listener (handleReadyDetail).
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	status, body := s.readiness(r.Context())
	writeJSON(w, status, map[string]any{"status": body["status"]})
}

// handleReadyDetail is /readyz on the admin listener: the same status with the
// details behind it.
func (s *Server) handleReadyDetail(w http.ResponseWriter, r *http.Request) {
	status, body := s.readiness(r.Context())
	writeJSON(w, status, body)
}

// readiness computes the readiness status, its HTTP code and the details.
func (s *Server) readiness(ctx context.Context) (int, map[string]any) {
	if s.draining.Load() {
		return http.StatusServiceUnavailable, map[string]any{"status": "draining"}
	}
	body := s.withGatewayReadiness(map[string]any{"status": "ready", "connections": s.registry.Len()})
	status := http.StatusOK
	if s.state.ping != nil {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := s.state.ping(ctx)
		cancel()
		s.metrics.RedisUp(err == nil)
		if err != nil {
			// Tickets and the replay cache fail closed without Redis: send new
			// clients to a node that can serve them.
			body["redis"] = "down"
			body["status"] = "not_ready"
			status = http.StatusServiceUnavailable
		} else {
			body["redis"] = "up"
		}
	}
	return status, body
}

// serveSession runs an upgraded session to its end on a new goroutine owned by
// the Server, so that the net/http handler can return at once: its goroutine,
// with the stack the handshake grew (token checks, logging), the connection's
// bufio buffers and the *http.Request are freed for the whole life of the
// connection instead of being held by every idle one. Nothing the session keeps
// refers to the request. The caller Starts the session first, so that the
// welcome is encoded on the handler's stack, not on the new one, which an idle
// connection keeps. The goroutine counts in s.active, as the handler did (with
// transport.reader: parked the session counts until its end, not the goroutine), so
// Shutdown waits for its cleanup (quota release, room leave) before the stores
// close; registry.CloseAll still ends it.
func (s *Server) serveSession(sess *session.Session) {
	s.active.Add(1) // before the handler's own decrement: active never dips to 0 in between
	var released atomic.Bool
	release := func() {
		if !released.Swap(true) {
			s.active.Add(-1)
		}
	}
	go func() {
		defer func() {
			// net/http recovered handler panics; this goroutine must too. The
			// transport already recovers panics in message handling.
			if v := recover(); v != nil {
				s.log.Error("session panicked", "conn_id", sess.ID(), "panic", fmt.Sprint(v))
				if c := sess.Conn(); c != nil {
					_ = c.Close()
				}
				release()
			}
		}()
		// With transport.reader: parked this returns once the connection
		// is idle; the session's end (release) still counts in s.active.
		sess.ServeDetached(release)
	}()
}

func (s *Server) refresh(ctx context.Context, token string) (auth.Identity, error) {
	return s.rt.Load().verifier.Verify(ctx, token)
}

// handleTicket exchanges a valid Bearer token for a one-time ticket bound to the
// same identity, so a browser can open a WebSocket without putting a long-lived
// token in the URL.
func (s *Server) handleTicket(w http.ResponseWriter, r *http.Request) {
	if s.tickets == nil {
		writeJSON(w, http.StatusNotFound, map[string]any{"error": "tickets_disabled"})
		return
	}
	rt := s.rt.Load()
	p := &rt.policy
	ip := guard.ClientIP(r, p.TrustedProxies)
	if p.HandshakeRate.Rate > 0 {
		if ok, retry, err := s.limiter.Allow(r.Context(), "hs:"+p.IPPrefixes.Key(ip), p.HandshakeRate, 1); err != nil || !ok {
			(&guard.Rejection{Status: http.StatusTooManyRequests, Code: "rate_limited", RetryAfter: max(retry, time.Second)}).Write(w)
			return
		}
	}
	const prefix = "Bearer "
	h := r.Header.Get("Authorization")
	if len(h) <= len(prefix) || !equalFoldASCII(h[:len(prefix)], prefix) {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "unauthorized"})
		return
	}
	id, err := rt.verifier.Verify(r.Context(), h[len(prefix):])
	if err != nil {
		s.log.Info("ticket refused", "ip", ip.String(), "reason", auth.Reason(err))
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "unauthorized"})
		return
	}
	t, exp, err := s.tickets.Issue(r.Context(), id)
	if err != nil {
		s.log.Warn("ticket not issued", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": "unavailable"})
		return
	}
	// Masked in logs while it can be redeemed; redactedTickets forgets it at redemption.
	s.redactor.AddFor(t, time.Until(exp))
	out := map[string]any{"ticket": t, "expires_at": exp.UnixMilli()}
	// For hmac signing (endpoint-wide or per namespace) the client needs its per-user
	// key; it travels only here, over TLS, to the holder of a valid token for that
	// subject.
	if ring := s.integ.keys.Load(); ring != nil {
		if ck, err := ring.Issue(id.Subject); err == nil {
			s.redactor.Add(ck.Key)
			out["integrity"] = ck
		}
	}
	// The end_to_end channels' keys the token grants (encryption.end_to_end_keys),
	// on the same terms: only here, over TLS, to the holder of a valid token.
	if keys := s.ticketEncryptionKeys(id); len(keys) > 0 {
		out["encryption"] = map[string]any{"keys": keys}
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, out)
}

// pinSecrets registers every secret the configuration holds with the log
// redactor, pinned: run-time secrets (tokens, tickets) come and go in a bounded
// set, and no volume of them may evict a signing key or the admin token. A reload
// pins the new values; values it drops stay masked.
func (s *Server) pinSecrets(cfg *config.Config) {
	for _, k := range cfg.Auth.Keys {
		s.redactor.Pin(k.Secret)
	}
	s.redactor.Pin(cfg.Admin.Token)
	for _, k := range cfg.Channels.PublishAPIKeys {
		s.redactor.Pin(k)
	}
	for _, k := range cfg.Integrity.MasterKeys {
		s.redactor.Pin(k.Secret)
	}
	s.redactor.Pin(cfg.Integrity.ServerSigningKey)
	s.redactor.Pin(cfg.Hooks.SigningKey)
	for _, k := range slices.Concat(cfg.Encryption.Keys, cfg.Encryption.EndToEndKeys) {
		// The whole entry and its secret alone: either may turn up in a log line.
		s.redactor.Pin(k)
		if _, secret, ok := config.EncryptionKey(k); ok {
			s.redactor.Pin(secret)
		}
	}
	for _, r := range cfg.Routes {
		s.redactor.Pin(r.IdentityKey)
	}
	s.redactor.Pin(cfg.State.Redis.Password)
}

// redactedTickets is the ticket store as the issuer uses it: a ticket taken from
// it (redeemed, or tried after it expired) leaves the log redactor's set, where the
// ticket endpoint put it for its lifetime.
type redactedTickets struct {
	ticket.Store
	r *redact.Redactor
}

func (t redactedTickets) Take(ctx context.Context, tk string) ([]byte, error) {
	b, err := t.Store.Take(ctx, tk)
	t.r.Remove(tk)
	if err != nil {
		return nil, fmt.Errorf("ticket store: %w", err)
	}
	return b, nil
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i]|0x20, b[i]|0x20
		if x != y {
			return false
		}
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Shutdown stops accepting connections, sends close 1001 to every client and waits
// for them until ctx is done, then drops what is left. It returns an error when
// connections had to be dropped.
func (s *Server) Shutdown(ctx context.Context) error {
	if !s.shutdown.CompareAndSwap(false, true) {
		return nil
	}
	s.draining.Store(true)
	left := s.registry.CloseAll(ctx, protocol.ReasonShutdown)
	// Connections dropped at the deadline and handshakes still in flight finish
	// their cleanup (quota release, broker leave) before the stores close.
	grace := time.Now().Add(2 * time.Second)
	for s.active.Load() > 0 && time.Now().Before(grace) {
		time.Sleep(5 * time.Millisecond)
	}
	s.cancel()
	s.bg.Wait()
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	if left > 0 {
		return fmt.Errorf("shutdown: %d connections did not close within the drain timeout", left)
	}
	return nil
}

// QuotaInUse returns the global connection count held in the quota store (it
// must equal Connections once connections have settled).
func (s *Server) QuotaInUse(ctx context.Context) int {
	n, err := s.qstore.Count(ctx, quota.GlobalKey)
	if err != nil {
		return -1
	}
	return n
}

// RangeSessions calls f with the id and user of every open connection.
func (s *Server) RangeSessions(f func(connID, user string)) {
	s.registry.Range(func(ss *session.Session) bool { f(ss.ID(), ss.User()); return true })
}

// Connections returns the number of open WebSocket connections.
func (s *Server) Connections() int { return s.registry.Len() }

var _ http.Handler = (*Server)(nil)
