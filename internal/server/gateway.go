package server

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/audit"
	"github.com/wsgate/wsgate/internal/auth"
	"github.com/wsgate/wsgate/internal/guard"
	"github.com/wsgate/wsgate/internal/outbox"
	"github.com/wsgate/wsgate/internal/pipeline"
	"github.com/wsgate/wsgate/internal/protocol"
	"github.com/wsgate/wsgate/internal/session"
	"github.com/wsgate/wsgate/internal/transport"
	"github.com/wsgate/wsgate/internal/upstream"
)

// gatewayProbeInterval is how often a route whose upstream is down is probed.
const gatewayProbeInterval = 5 * time.Second

// gatewayRoute is one routes[] entry with an upstream: its own guard policy,
// transport limits, message checks and dialer. Routes are built at New; a
// reload changes what they share with the core (keys, handshake rate, trusted
// proxies, quotas, bans) but not their own settings, which need a restart.
type gatewayRoute struct {
	route    config.Route
	name     string // host+path, the metrics and audit label
	pattern  string // ServeMux pattern
	guard    *guard.Guard
	base     atomic.Pointer[guard.Policy] // the core policy the route policy was derived from
	upgrader *transport.Upgrader
	pipeline *pipeline.Pipeline // nil in raw mode
	raw      *upstream.RawLimiter
	dialer   *upstream.Dialer
	sopts    session.Options
	linkWait time.Duration
	// integrity is the route's message integrity mode (JSON routes only).
	integrity string
	// handler serves a WithRawRoute route in process (no upstream, dialer nil).
	handler RawHandler
}

// buildGateways builds every route with an upstream; errors stop New.
func (s *Server) buildGateways(cfg *config.Config) error {
	s.gateways = nil
	scratch := http.NewServeMux()
	for i, r := range cfg.Routes {
		if r.Upstream == "" {
			continue
		}
		rt, err := s.newRoute(cfg, r, nil)
		if err != nil {
			return fmt.Errorf("routes[%d]: %w", i, err)
		}
		if err := tryPattern(scratch, rt.pattern); err != nil {
			return fmt.Errorf("routes[%d]: %w", i, err)
		}
		s.gateways = append(s.gateways, rt)
	}
	for i, rr := range s.rawRoutes {
		r := rr.route
		switch {
		case rr.h == nil:
			return fmt.Errorf("WithRawRoute(%q): nil handler", r.Path)
		case r.Upstream != "":
			return fmt.Errorf("WithRawRoute(%q): a raw route served in process has no upstream", r.Path)
		case r.Validation != "" && r.Validation != "raw":
			return fmt.Errorf("WithRawRoute(%q): validation must be raw", r.Path)
		case !strings.HasPrefix(r.Path, "/"):
			return fmt.Errorf("WithRawRoute(%q): path must start with /", r.Path)
		}
		r.Validation = "raw"
		rt, err := s.newRoute(cfg, r, rr.h)
		if err != nil {
			return fmt.Errorf("WithRawRoute[%d] %q: %w", i, r.Path, err)
		}
		if err := tryPattern(scratch, rt.pattern); err != nil {
			return fmt.Errorf("WithRawRoute[%d]: %w", i, err)
		}
		s.gateways = append(s.gateways, rt)
	}
	return nil
}

// tryPattern registers pattern on a scratch mux, turning ServeMux's panic on a
// malformed or conflicting pattern into an error at start.
func tryPattern(mux *http.ServeMux, pattern string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("path/host %q cannot be routed: %v", pattern, r)
		}
	}()
	if strings.ContainsAny(pattern, "{} \t") {
		return fmt.Errorf("path/host %q: wildcards and spaces are not supported", pattern)
	}
	mux.HandleFunc(pattern, func(http.ResponseWriter, *http.Request) {})
	return nil
}

// newRoute builds a route: a gateway to r.Upstream, or, with h, a raw route
// served in process.
func (s *Server) newRoute(cfg *config.Config, r config.Route, h RawHandler) (*gatewayRoute, error) {
	rt := &gatewayRoute{route: r, name: r.Host + r.Path, pattern: r.Host + r.Path, handler: h}
	maxBytes := cfg.Limits.MaxMessageBytes
	if r.MaxMessageBytes > 0 {
		maxBytes = r.MaxMessageBytes
	}
	allowBinary := r.AllowBinary || cfg.Limits.AllowBinary

	// Guard: the core's policy with the route's origins and subprotocols; it
	// shares the verifier and every store with the core.
	base := guardPolicy(cfg)
	rt.base.Store(s.guard.Policy())
	rt.guard = guard.New(routePolicy(base, r), guard.Deps{
		Verifier: s.guard.Verifier(), Limiter: s.limiter, Bans: s.bans, Quotas: s.quotas, Tickets: s.tickets,
	})

	to := transportOptions(cfg)
	to.MaxMessageBytes = maxBytes
	to.AllowBinary = allowBinary
	up, err := transport.NewUpgrader(&to)
	if err != nil {
		return nil, fmt.Errorf("transport: %w", err)
	}
	rt.upgrader = up

	rt.integrity = r.Integrity
	if rt.integrity == "" {
		rt.integrity = cfg.Integrity.Mode
	}
	if r.Validation == "raw" {
		// Signed envelopes are JSON: a raw route cannot check them.
		if r.Integrity != "" && r.Integrity != "off" {
			return nil, fmt.Errorf("integrity %q needs validation: json", r.Integrity)
		}
		rt.integrity = "off"
		tiers := make(map[string]upstream.RawTier, len(cfg.Rate.Tiers))
		for name, t := range cfg.Rate.Tiers {
			tiers[name] = upstream.RawTier{
				Messages: lim(t.Messages), Bytes: lim(t.Bytes),
				UserMessages: lim(t.UserMessages), UserBytes: lim(t.UserBytes),
				IPMessages: lim(t.IPMessages), IPBytes: lim(t.IPBytes),
			}
		}
		rt.raw = &upstream.RawLimiter{Limiter: s.limiter, Tiers: tiers, FailOpen: cfg.Rate.FailOpen}
	} else {
		popts, err := pipelineOptions(cfg, s.limiter)
		if err != nil {
			return nil, err
		}
		popts.MaxBytes = maxBytes
		popts.Verifier = integrityVerifier{s.integ.verifier}
		popts.TypeMaxBytes = maps.Clone(popts.TypeMaxBytes) // the config's map is shared
		for typ, n := range popts.TypeMaxBytes {
			popts.TypeMaxBytes[typ] = min(n, maxBytes)
		}
		p, err := pipeline.New(popts)
		if err != nil {
			return nil, fmt.Errorf("pipeline: %w", err)
		}
		rt.pipeline = p
	}

	var key []byte
	if r.IdentityKey != "" {
		if key, err = auth.ParseSecret(r.IdentityKey); err != nil {
			return nil, fmt.Errorf("identity_key: %w", err)
		}
		if len(key) < 32 {
			return nil, errors.New("identity_key: must be at least 32 bytes")
		}
		s.redactor.Add(r.IdentityKey)
	}
	so := sessionOptions(cfg)
	so.NoWelcome = true
	so.WelcomeLimits = nil
	rt.sopts = so
	if h != nil {
		return rt, nil
	}
	ob := outboxOptions(cfg)
	if ob.MaxMessages <= 0 {
		ob.MaxMessages = outbox.DefaultMaxMessages
	}
	if ob.MaxBytes <= 0 {
		ob.MaxBytes = outbox.DefaultMaxBytes
	}
	// Upstream messages may be bigger than client messages (a server wraps or
	// batches what clients send), but never bigger than the client's queue.
	upMax := min(max(4*maxBytes, upstream.DefaultMaxMessageBytes), ob.MaxBytes)
	d, err := upstream.NewDialer(upstream.Options{
		Route:           rt.name,
		URL:             r.Upstream,
		StripParams:     r.StripParams,
		Host:            r.Host,
		ConnectTimeout:  r.ConnectTimeout,
		CAFile:          r.CAFile,
		ClientCertFile:  r.ClientCertFile,
		ClientKeyFile:   r.ClientKeyFile,
		IdentityKey:     key,
		IdentityJWT:     len(key) > 0,
		MaxMessageBytes: upMax,
		MaxFragments:    cfg.Limits.MaxFragments,
		AllowBinary:     allowBinary,
		WriteTimeout:    cfg.Timeouts.Write,
		PingInterval:    cfg.Timeouts.PingInterval,
		PongTimeout:     cfg.Timeouts.PongTimeout,
		// Half the queue: room for what the core itself sends (pongs, error
		// replies) before the slow-consumer bound is reached.
		HighWaterMessages: max(ob.MaxMessages/2, 1),
		HighWaterBytes:    max(ob.MaxBytes/2, 1),
		Logger:            s.log,
	})
	if err != nil {
		return nil, err
	}
	rt.dialer = d
	rt.linkWait = d.Options().CloseTimeout + time.Second
	if rt.linkWait < 2*time.Second {
		rt.linkWait = 3 * time.Second
	}
	return rt, nil
}

// routePolicy is the core policy with the route's overrides.
func routePolicy(p guard.Policy, r config.Route) guard.Policy {
	if len(r.Origins) > 0 {
		p.Origins.Allowed = r.Origins
	}
	p.Subprotocols = r.Subprotocols
	return p
}

// guardFor returns the route's guard, following the core's policy and verifier
// after a reload.
func (rt *gatewayRoute) guardFor(s *Server) *guard.Guard {
	if v := s.guard.Verifier(); v != rt.guard.Verifier() {
		rt.guard.SetVerifier(v)
	}
	if p := s.guard.Policy(); p != rt.base.Load() {
		// Concurrent handshakes may both rebuild: they store equivalent policies.
		rt.guard.SetPolicy(routePolicy(*p, rt.route))
		rt.base.Store(p)
	}
	return rt.guard
}

// mountGateways registers the gateway routes (routes[] with an upstream) and
// starts the health prober.
func (s *Server) mountGateways(mux *http.ServeMux) {
	upstreams := 0
	for _, rt := range s.gateways {
		if rt.handler != nil {
			mux.HandleFunc(rt.pattern, func(w http.ResponseWriter, r *http.Request) { s.handleRawRoute(rt, w, r) })
			continue
		}
		upstreams++
		mux.HandleFunc(rt.pattern, func(w http.ResponseWriter, r *http.Request) { s.handleGateway(rt, w, r) })
		s.metrics.UpstreamUp(rt.name, true)
	}
	if upstreams == 0 {
		return
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		t := time.NewTicker(gatewayProbeInterval)
		defer t.Stop()
		for {
			select {
			case <-s.ctx.Done():
				return
			case <-t.C:
			}
			for _, rt := range s.gateways {
				if rt.dialer == nil || rt.dialer.Health().Up {
					continue
				}
				if err := rt.dialer.Probe(s.ctx); err == nil {
					s.metrics.UpstreamUp(rt.name, true)
					s.log.Info("upstream reachable again", "route", rt.name)
				}
			}
		}
	}()
}

// withGatewayReadiness adds each upstream's health to the /readyz body. A down
// upstream makes the status "degraded", not a 503: the outage is shared by
// every node, so taking this one out of rotation would not help and would take
// the other routes down with it. Alert on wsgate_upstream_up == 0 instead.
func (s *Server) withGatewayReadiness(body map[string]any) map[string]any {
	ups := make(map[string]any, len(s.gateways))
	degraded := false
	for _, rt := range s.gateways {
		if rt.dialer == nil {
			continue
		}
		h := rt.dialer.Health()
		e := map[string]any{"up": h.Up, "consecutive_failures": h.ConsecutiveFailures}
		if h.LastError != "" {
			e["last_error"] = h.LastError
			e["last_error_at"] = h.LastErrorAt.UTC().Format(time.RFC3339)
		}
		ups[rt.name] = e
		degraded = degraded || !h.Up
	}
	if len(ups) == 0 {
		return body
	}
	body["upstreams"] = ups
	if degraded && body["status"] == "ready" {
		body["status"] = "degraded"
	}
	return body
}

// handleGateway guards the handshake exactly as for the core, dials the
// upstream, and only then answers the client's upgrade; the session (both legs)
// then runs on a goroutine of the Server's (serveSession) and the handler returns.
func (s *Server) handleGateway(rt *gatewayRoute, w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		(&guard.Rejection{Status: http.StatusServiceUnavailable, Code: "shutting_down", Reason: "draining", RetryAfter: time.Second}).Write(w)
		return
	}
	g := rt.guardFor(s)
	adm, rej := g.Check(r.Context(), r)
	if rej != nil {
		s.observeHandshake(r, g.ClientKey(r), rej)
		rej.Write(w)
		return
	}
	cfg := s.cfg.Load()
	tier := adm.Identity.Tier(cfg.Auth.TierClaim)
	if _, ok := cfg.Rate.Tiers[tier]; !ok {
		tier = "default"
	}
	// The guard parsed the same header; here we want the whole list of
	// application subprotocols (token entries removed), not its one choice.
	cred, app, _ := auth.Extract(r, g.Policy().Extract)
	offer := app
	if len(rt.route.Subprotocols) > 0 {
		offer = slices.DeleteFunc(slices.Clone(app), func(p string) bool { return !slices.Contains(rt.route.Subprotocols, p) })
	}
	id := session.NewID()
	ip := adm.IP.String()
	verify, rej := s.connIntegrity(r, rt.integrity, adm, id)
	if rej != nil {
		adm.Lease.Release()
		s.observeHandshake(r, adm.IPKey, rej)
		rej.Write(w)
		return
	}
	link, err := rt.dialer.Dial(r.Context(), upstream.DialRequest{
		Request: r, ClientIP: ip, User: adm.Identity.Subject, Claims: adm.Identity.Claims,
		ExpiresAt: adm.Identity.ExpiresAt, ConnID: id, Subprotocols: offer,
	})
	if err != nil {
		adm.Lease.Release()
		var de *upstream.DialError
		if !errors.As(err, &de) {
			de = &upstream.DialError{Status: http.StatusBadGateway, Reason: "connect", Err: err}
		}
		s.metrics.UpstreamDialError(rt.name)
		s.metrics.UpstreamUp(rt.name, rt.dialer.Health().Up)
		s.log.Warn("upstream dial failed", "route", rt.name, "conn_id", id, "ip", ip, "user", adm.Identity.Subject,
			"reason", de.Reason, "err", err)
		rej := &guard.Rejection{Status: de.Status, Code: "upstream_unavailable", Reason: "upstream_" + de.Reason, RetryAfter: de.RetryAfter}
		s.observeHandshake(r, adm.IPKey, rej)
		rej.Write(w)
		return
	}
	s.metrics.UpstreamUp(rt.name, true)
	sub := link.Subprotocol()
	if sub == "" {
		sub = cred.EchoProtocol // browsers fail a handshake whose offer got no answer
	}
	gl := &gatewayLink{srv: s, rt: rt, link: link}
	deps := session.Deps{
		Pipeline: rt.pipeline,
		Router:   gl,
		Strikes:  s.strikes,
		Refresh:  s.refresh,
		Log:      s.log,
		Registry: s.registry,
		Observer: gl,
	}
	if rt.raw != nil {
		deps.Raw = gl
	}
	sess := session.New(session.Params{
		ID: id, IP: adm.IP, IPKey: adm.IPKey, Route: rt.name, Subprotocol: sub, Identity: adm.Identity, Lease: adm.Lease, Tier: tier, Verify: verify,
	}, rt.sopts, deps)
	conn, err := rt.upgrader.Upgrade(w, r, sub, sess)
	if err != nil {
		link.Abort()
		adm.Lease.Release()
		s.log.Info("upgrade failed", "route", rt.name, "ip", ip, "err", err)
		return
	}
	s.observeHandshake(r, adm.IPKey, nil)
	sess.Attach(conn)
	gl.sess = sess
	link.Start(gatewayClient{sess: sess}, gl.upstreamEnded)
	s.metrics.ConnOpened(rt.name)
	s.audit.Log(audit.Event{Event: audit.HandshakeAccepted, ConnID: id, IP: ip, User: adm.Identity.Subject, Route: rt.name,
		Detail: map[string]any{"credential_source": string(adm.Credential), "subprotocol": sub, "upstream": true}})
	s.log.Info("connected", "conn_id", id, "ip", ip, "user", adm.Identity.Subject, "route", rt.name,
		"subprotocol", sub, "credential_source", string(adm.Credential), "upstream", true)
	sess.Start()
	s.serveSession(sess)
}

// gatewayLink ties one session to its upstream leg: it is the session's router
// (JSON mode), raw router (raw mode) and observer (to propagate the close).
type gatewayLink struct {
	srv  *Server
	rt   *gatewayRoute
	link *upstream.Link
	sess *session.Session
}

// Handle forwards a message the pipeline accepted with the opcode it arrived
// with: a binary frame carrying JSON (allow_binary) stays binary upstream.
func (g *gatewayLink) Handle(_ context.Context, s *session.Session, m pipeline.Message) {
	// A failed write closes the upstream leg, whose end closes the client.
	_ = g.link.Forward(s.MessageOpcode(), m.Raw)
}

// HandleRaw applies the raw route's rate limits and forwards. A raw protocol
// has no error reply, and a silently dropped frame would desynchronise client
// and upstream, so a rate-limited message closes the connection (1008) instead.
func (g *gatewayLink) HandleRaw(ctx context.Context, s *session.Session, op transport.Opcode, data []byte) {
	if g.allowRaw(ctx, s, data) {
		_ = g.link.Forward(op, data)
	}
}

// allowRaw applies the route's raw rate limits to one message and observes it;
// a refused message closes the connection and returns false.
func (g *gatewayLink) allowRaw(ctx context.Context, s *session.Session, data []byte) bool {
	start := time.Now()
	st := s.ConnState()
	ok, retry, err := g.rt.raw.Allow(ctx, upstream.RawConn{ConnID: st.ConnID, User: st.User, IP: st.IP, Tier: st.Tier}, len(data))
	if ok {
		(*observer)(g.srv).Message(s, "raw", data, nil, time.Since(start))
		return true
	}
	rej := &protocol.Error{Code: protocol.CodeRateLimited, Message: "rate limit exceeded", RetryAfter: retry,
		Close: protocol.ReasonRateLimit, Strike: true}
	if err != nil {
		rej = &protocol.Error{Code: protocol.CodeUnavailable, Message: "rate limiter unavailable", RetryAfter: time.Second,
			Close: protocol.ReasonTryAgainLater}
	}
	(*observer)(g.srv).Message(s, "raw", data, rej, time.Since(start))
	s.Close(rej.Close)
	if rej.Strike {
		s.Strike(rej.Code)
	}
	return false
}

// Leave runs when the session has ended: the close was propagated by Closed;
// wait for the upstream leg so that a session's end means both legs ended.
func (g *gatewayLink) Leave(*session.Session) { g.link.Wait(g.rt.linkWait) }

func (g *gatewayLink) Message(s *session.Session, typ string, data []byte, rej *protocol.Error, took time.Duration) {
	(*observer)(g.srv).Message(s, typ, data, rej, took)
}
func (g *gatewayLink) Sent(s *session.Session, n int) { (*observer)(g.srv).Sent(s, n) }
func (g *gatewayLink) Strike(s *session.Session, reason string, banned bool) {
	(*observer)(g.srv).Strike(s, reason, banned)
}

// Closed propagates the client's close code and reason to the upstream.
func (g *gatewayLink) Closed(s *session.Session, code uint16, reason string) {
	g.link.Close(code, reason)
	(*observer)(g.srv).Closed(s, code, reason)
}

// upstreamEnded logs how the upstream leg ended.
func (g *gatewayLink) upstreamEnded(code uint16, reason string, cause upstream.End) {
	by := map[upstream.End]string{upstream.EndUpstream: "upstream", upstream.EndClient: "client", upstream.EndGateway: "gateway"}[cause]
	st := g.link.Stats()
	connID := ""
	if g.sess != nil {
		connID = g.sess.ID()
	}
	g.srv.log.Info("upstream closed", "conn_id", connID, "route", g.rt.name, "code", code, "close_reason", reason,
		"ended_by", by, "messages_from_upstream", st.MessagesIn, "messages_to_upstream", st.MessagesOut)
}

// gatewayClient adapts a session to upstream.Client.
type gatewayClient struct {
	sess *session.Session
}

// Send relays one upstream message, text or binary, from the upstream leg's
// read loop, which serves this client only: it is written inline when the
// client's queue is idle (no hand-off to a writer goroutine per message) and
// batched behind the queue otherwise, always in order and with its opcode.
func (c gatewayClient) Send(op transport.Opcode, b []byte) error {
	err := c.sess.Relay(op, b)
	if errors.Is(err, outbox.ErrTooLarge) {
		return upstream.ErrTooLargeForClient
	}
	return err
}

func (c gatewayClient) Pending() (int, int) { return c.sess.Pending() }

func (c gatewayClient) CloseWith(code uint16, reason string) {
	c.sess.CloseWith(protocol.CloseCode(code), reason)
}

// handleRawRoute serves a WithRawRoute route: the route's guard and raw checks,
// then every message to the embedder's handler. It mirrors handleGateway
// without the upstream leg.
func (s *Server) handleRawRoute(rt *gatewayRoute, w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		(&guard.Rejection{Status: http.StatusServiceUnavailable, Code: "shutting_down", Reason: "draining", RetryAfter: time.Second}).Write(w)
		return
	}
	g := rt.guardFor(s)
	adm, rej := g.Check(r.Context(), r)
	if rej != nil {
		s.observeHandshake(r, guard.ClientIP(r, g.Policy().TrustedProxies).String(), rej)
		rej.Write(w)
		return
	}
	cfg := s.cfg.Load()
	tier := adm.Identity.Tier(cfg.Auth.TierClaim)
	if _, ok := cfg.Rate.Tiers[tier]; !ok {
		tier = "default"
	}
	id := session.NewID()
	ip := adm.IP.String()
	rl := &rawLink{srv: s, rt: rt}
	sess := session.New(session.Params{
		ID: id, IP: adm.IP, Route: rt.name, Subprotocol: adm.Subprotocol, Identity: adm.Identity, Lease: adm.Lease, Tier: tier,
	}, rt.sopts, session.Deps{
		Raw: rl, Router: rl, Strikes: s.strikes, Refresh: s.refresh, Log: s.log, Registry: s.registry, Observer: (*observer)(s),
	})
	s.observeHandshake(r, ip, nil)
	conn, err := rt.upgrader.Upgrade(w, r, adm.Subprotocol, sess)
	if err != nil {
		adm.Lease.Release()
		s.log.Info("upgrade failed", "route", rt.name, "ip", ip, "err", err)
		return
	}
	sess.Attach(conn)
	s.metrics.ConnOpened(rt.name)
	s.audit.Log(audit.Event{Event: audit.HandshakeAccepted, ConnID: id, IP: ip, User: adm.Identity.Subject, Route: rt.name,
		Detail: map[string]any{"credential": string(adm.Credential), "subprotocol": adm.Subprotocol, "raw_handler": true}})
	s.log.Info("connected", "conn_id", id, "ip", ip, "user", adm.Identity.Subject, "route", rt.name,
		"subprotocol", adm.Subprotocol, "credential", string(adm.Credential), "raw_handler", true)
	sess.Start()
	s.serveSession(sess)
}

// rawLink is a WithRawRoute session's raw router: the route's rate limits, then
// the handler.
type rawLink struct {
	srv *Server
	rt  *gatewayRoute
}

func (l *rawLink) HandleRaw(ctx context.Context, s *session.Session, op transport.Opcode, data []byte) {
	if !(&gatewayLink{srv: l.srv, rt: l.rt}).allowRaw(ctx, s, data) {
		return
	}
	l.rt.handler(s, op, data)
}

// Handle is never called: a raw route's session has no pipeline.
func (l *rawLink) Handle(context.Context, *session.Session, pipeline.Message) {}

// Leave: nothing to release.
func (l *rawLink) Leave(*session.Session) {}
