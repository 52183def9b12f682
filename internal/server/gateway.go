package server

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/conn/outbox"
	"github.com/wsgate/wsgate/internal/conn/pipeline"
	"github.com/wsgate/wsgate/internal/conn/protocol"
	"github.com/wsgate/wsgate/internal/conn/session"
	"github.com/wsgate/wsgate/internal/conn/transport"
	"github.com/wsgate/wsgate/internal/edge/auth"
	"github.com/wsgate/wsgate/internal/edge/guard"
	"github.com/wsgate/wsgate/internal/route/upstream"
)

// gatewayProbeInterval is how often a route whose upstream is down is probed.
const gatewayProbeInterval = 5 * time.Second

// upstreamRoute is a routes[] entry with an upstream: each admitted handshake
// dials it, and the session forwards what it accepts (gatewayLink).
type upstreamRoute struct {
	srv          *Server
	name         string
	subprotocols []string           // the route's; nil lets the upstream pick among all offered
	raw          *pipeline.Pipeline // raw mode: only its rate stage runs; nil in JSON mode
	dialer       *upstream.Dialer
	linkWait     time.Duration
}

// handlerRoute is a WithRawRoute route: the raw checks, then the embedder's
// handler, in process.
type handlerRoute struct {
	srv *Server
	raw *pipeline.Pipeline
	h   RawHandler
}

// checkRawRoute refuses a WithRawRoute route that cannot be served in process.
func checkRawRoute(r config.Route, h RawHandler) error {
	switch {
	case h == nil:
		return fmt.Errorf("WithRawRoute(%q): nil handler", r.Path)
	case r.Upstream != "":
		return fmt.Errorf("WithRawRoute(%q): a raw route served in process has no upstream", r.Path)
	case r.Validation != "" && r.Validation != "raw":
		return fmt.Errorf("WithRawRoute(%q): validation must be raw", r.Path)
	case !strings.HasPrefix(r.Path, "/"):
		return fmt.Errorf("WithRawRoute(%q): path must start with /", r.Path)
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

// newRoute compiles a route's endpoint: a gateway to r.Upstream, or, with h, a
// raw route served in process. Its guard is the runtime's policy with the
// route's origins and subprotocols, over the same verifier and stores.
func (s *Server) newRoute(rt *runtime, r config.Route, h RawHandler) (*endpoint, error) {
	cfg := rt.cfg
	e := &endpoint{srv: s, cfg: cfg, name: r.Host + r.Path, pattern: r.Host + r.Path,
		guard: s.newGuard(rt, routePolicy(rt.policy, r))}
	maxBytes := cfg.Limits.MaxMessageBytes
	if r.MaxMessageBytes > 0 {
		maxBytes = r.MaxMessageBytes
	}
	allowBinary := r.AllowBinary || cfg.Limits.AllowBinary

	to := transportOptions(cfg)
	to.MaxMessageBytes = maxBytes
	to.AllowBinary = allowBinary
	up, err := transport.NewUpgrader(&to)
	if err != nil {
		return nil, fmt.Errorf("transport: %w", err)
	}
	e.upgrader = up

	var raw *pipeline.Pipeline
	popts, err := pipelineOptions(cfg, s.limiter)
	if err != nil {
		return nil, err
	}
	if r.Validation == "raw" {
		// Signed envelopes are JSON: a raw route cannot check them.
		if r.Integrity != "" && r.Integrity != "off" {
			return nil, fmt.Errorf("integrity %q needs validation: json", r.Integrity)
		}
		// Raw messages are not JSON: of the pipeline only the rate stage runs
		// (Pipeline.Rate), with the same budgets and keys as everywhere.
		if raw, err = pipeline.New(popts); err != nil {
			return nil, fmt.Errorf("pipeline: %w", err)
		}
	} else {
		e.integrity = integrityMode(r.Integrity)
		if r.Integrity == "" {
			e.integrity = integrityMode(cfg.Integrity.Mode)
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
		e.pipeline = p
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
	so.Route = e.name
	e.sopts = &so
	if h != nil {
		e.route = &handlerRoute{srv: s, raw: raw, h: h}
		return e, nil
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
		Route:           e.name,
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
	u := &upstreamRoute{srv: s, name: e.name, subprotocols: r.Subprotocols, raw: raw, dialer: d}
	u.linkWait = d.Options().CloseTimeout + time.Second
	if u.linkWait < 2*time.Second {
		u.linkWait = 3 * time.Second
	}
	e.route = u
	return e, nil
}

// routePolicy is the core policy with the route's overrides.
func routePolicy(p guard.Policy, r config.Route) guard.Policy {
	if len(r.Origins) > 0 {
		p.Origins.Allowed = r.Origins
	}
	p.Subprotocols = r.Subprotocols
	return p
}

// probeUpstreams probes, until the server stops, the upstreams of the runtime
// in force that are down, so that wsgate_upstream_up and /readyz recover
// without waiting for a client.
func (s *Server) probeUpstreams() {
	t := time.NewTicker(gatewayProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		for _, e := range s.rt.Load().endpoints {
			u, ok := e.route.(*upstreamRoute)
			if !ok || u.dialer.Health().Up {
				continue
			}
			if err := u.dialer.Probe(s.ctx); err == nil {
				s.metrics.UpstreamUp(u.name, true)
				s.log.Info("upstream reachable again", "route", u.name)
			}
		}
	}
}

// withGatewayReadiness adds each upstream's health to the /readyz body. A down
// upstream makes the status "degraded", not a 503: the outage is shared by
// every node, so taking this one out of rotation would not help and would take
// the other routes down with it. Alert on wsgate_upstream_up == 0 instead.
func (s *Server) withGatewayReadiness(body map[string]any) map[string]any {
	ups := map[string]any{}
	degraded := false
	for _, ep := range s.rt.Load().endpoints {
		rt, ok := ep.route.(*upstreamRoute)
		if !ok {
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

// admit dials the upstream for an admitted handshake, before the client's
// upgrade is answered: the client gets the upstream's subprotocol, or a 502/503
// when it cannot be reached.
func (u *upstreamRoute) admit(r *http.Request, h *handshake) (binding, *guard.Rejection) {
	s, adm := u.srv, h.adm
	offer := adm.Offered
	if len(u.subprotocols) > 0 {
		offer = slices.DeleteFunc(slices.Clone(offer), func(p string) bool { return !slices.Contains(u.subprotocols, p) })
	}
	ip := adm.IP.String()
	link, err := u.dialer.Dial(r.Context(), upstream.DialRequest{
		Request: r, ClientIP: ip, User: adm.Identity.Subject, Claims: adm.Identity.Claims,
		ExpiresAt: adm.Identity.ExpiresAt, ConnID: h.connID, Subprotocols: offer,
	})
	if err != nil {
		var de *upstream.DialError
		if !errors.As(err, &de) {
			de = &upstream.DialError{Status: http.StatusBadGateway, Reason: "connect", Err: err}
		}
		s.metrics.UpstreamDialError(u.name)
		s.metrics.UpstreamUp(u.name, u.dialer.Health().Up)
		s.log.Warn("upstream dial failed", "route", u.name, "conn_id", h.connID, "ip", ip, "user", adm.Identity.Subject,
			"reason", de.Reason, "err", err)
		return nil, &guard.Rejection{Status: de.Status, Code: "upstream_unavailable", Reason: "upstream_" + de.Reason, RetryAfter: de.RetryAfter}
	}
	s.metrics.UpstreamUp(u.name, true)
	h.subprotocol = link.Subprotocol()
	if h.subprotocol == "" {
		h.subprotocol = adm.Echo // browsers fail a handshake whose offer got no answer
	}
	h.detail = map[string]any{"upstream": true}
	return &gatewayLink{srv: s, rt: u, link: link}, nil
}

// gatewayLink ties one session to its upstream leg: it is the session's router
// (JSON mode), raw router (raw mode) and observer (to propagate the close).
type gatewayLink struct {
	srv  *Server
	rt   *upstreamRoute
	link *upstream.Link
	sess *session.Session
}

func (g *gatewayLink) deps(d *session.Deps) {
	d.Router, d.Observer = g, g
	if g.rt.raw != nil {
		d.Raw = g
	}
}

func (g *gatewayLink) attached(ss *session.Session) {
	g.sess = ss
	g.link.Start(gatewayClient{sess: ss}, g.upstreamEnded)
}

func (g *gatewayLink) abort() { g.link.Abort() }

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
	if g.srv.allowRaw(ctx, g.rt.raw, s, data) {
		_ = g.link.Forward(op, data)
	}
}

// allowRaw applies a raw route's rate limits to one message and observes it;
// a refused message closes the connection and returns false.
func (srv *Server) allowRaw(ctx context.Context, raw *pipeline.Pipeline, s *session.Session, data []byte) bool {
	start := time.Now()
	st := s.ConnState()
	st.Now = start
	rej := raw.Rate(ctx, st, len(data))
	if rej == nil {
		(*observer)(srv).Message(s, "raw", data, nil, time.Since(start))
		return true
	}
	// A raw route has no error reply: every refusal closes the connection.
	if rej.Close == 0 {
		rej.Close = protocol.ReasonRateLimit
		if rej.Code == protocol.CodeUnavailable {
			rej.Close = protocol.ReasonTryAgainLater
		}
	}
	(*observer)(srv).Message(s, "raw", data, rej, time.Since(start))
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

func (hr *handlerRoute) admit(*http.Request, *handshake) (binding, *guard.Rejection) {
	return &rawLink{srv: hr.srv, rt: hr}, nil
}

// rawLink is a WithRawRoute session's raw router: the route's rate limits, then
// the handler.
type rawLink struct {
	srv *Server
	rt  *handlerRoute
}

func (l *rawLink) deps(d *session.Deps)      { d.Raw, d.Router = l, l }
func (l *rawLink) attached(*session.Session) {}
func (l *rawLink) abort()                    {}

func (l *rawLink) HandleRaw(ctx context.Context, s *session.Session, op transport.Opcode, data []byte) {
	if !l.srv.allowRaw(ctx, l.rt.raw, s, data) {
		return
	}
	l.rt.h(s, op, data)
}

// Handle is never called: a raw route's session has no pipeline.
func (l *rawLink) Handle(context.Context, *session.Session, pipeline.Message) {}

// Leave: nothing to release.
func (l *rawLink) Leave(*session.Session) {}
