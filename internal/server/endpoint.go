package server

import (
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/conn/pipeline"
	"github.com/wsgate/wsgate/internal/conn/protocol"
	"github.com/wsgate/wsgate/internal/conn/session"
	"github.com/wsgate/wsgate/internal/conn/transport"
	"github.com/wsgate/wsgate/internal/edge/guard"
	"github.com/wsgate/wsgate/internal/observe/audit"
	"github.com/wsgate/wsgate/internal/route/hook"
)

// endpoint is one WebSocket path and everything that serves a connection on
// it. Its ServeHTTP is the path of every connection, built-in service and
// gateway route alike:
//
//	guard → integrity handshake → route admission → upgrade → session
//
// What differs between endpoints is their settings (compiled from the
// configuration with the runtime that holds them) and their route.
type endpoint struct {
	srv     *Server
	cfg     *config.Config // the configuration the endpoint was compiled from
	name    string         // the route label in metrics, audit and logs
	pattern string         // ServeMux pattern (host+path)
	guard   *guard.Guard
	// integrity is the endpoint's message integrity mode ("off", "hmac",
	// "pop"); "" on raw endpoints, which have no pipeline to check envelopes.
	integrity string
	upgrader  *transport.Upgrader
	sopts     *session.Options
	// pipeline checks the sessions' messages; nil with live set (the built-in
	// service: its sessions follow the pipeline of the runtime in force) or on
	// raw endpoints.
	pipeline *pipeline.Pipeline
	live     bool
	route    route
	// roomDeps are the Deps every session of a room route shares (made on
	// first use): the same for all of them, so not a copy per connection.
	roomDeps     *session.Deps
	roomDepsOnce sync.Once
}

// route is where an endpoint's sessions send what they accept: the room
// (roomRoute), an upstream (upstreamRoute) or an in-process raw handler
// (handlerRoute).
type route interface {
	// admit binds one admitted handshake to the route, before the upgrade; it
	// may refuse it (an upstream that cannot be reached) and may set the
	// subprotocol, session options and what the logs say about it.
	admit(r *http.Request, h *handshake) (binding, *guard.Rejection)
}

// binding is one connection's tie to its route.
type binding interface {
	deps(d *session.Deps)         // the session's router, raw router and observer
	attached(ss *session.Session) // the upgrade succeeded
	abort()                       // the upgrade failed
}

// handshake is one connection between the guard and its session.
type handshake struct {
	adm         *guard.Admission
	cfg         *config.Config
	connID      string
	tier        string
	subprotocol string
	sopts       *session.Options
	// refuse, when set, closes the connection right after the upgrade with
	// this code and reason (a connect hook's refusal, readable by browsers).
	refuse       protocol.CloseCode
	refuseReason string
	// detail adds the route's facts to the "connected" log line and audit event.
	detail map[string]any
}

func (e *endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := e.srv
	if s.draining.Load() {
		(&guard.Rejection{Status: http.StatusServiceUnavailable, Code: "shutting_down", Reason: "draining", RetryAfter: time.Second}).Write(w)
		return
	}
	adm, rej := e.guard.Check(r.Context(), r)
	if rej != nil {
		s.observeHandshake(r, e.guard.ClientKey(r), rej)
		rej.Write(w)
		return
	}
	h := &handshake{adm: adm, cfg: e.cfg, connID: session.NewID(), tier: adm.Identity.Tier(e.cfg.Auth.TierClaim),
		subprotocol: adm.Subprotocol, sopts: e.sopts}
	if _, ok := e.cfg.Rate.Tiers[h.tier]; !ok {
		h.tier = "default"
	}
	var verify *pipeline.Integrity
	if e.integrity != "" {
		if verify, rej = s.connIntegrity(r, e.integrity, adm, h.connID); rej != nil {
			adm.Lease.Release()
			s.observeHandshake(r, adm.IPKey, rej)
			rej.Write(w)
			return
		}
	}
	b, rej := e.route.admit(r, h)
	if rej != nil {
		adm.Lease.Release()
		s.observeHandshake(r, adm.IPKey, rej)
		rej.Write(w)
		return
	}
	p := session.Params{ID: h.connID, IP: adm.IP, IPKey: adm.IPKey,
		Identity: adm.Identity, Lease: adm.Lease, Tier: h.tier, Integrity: verify}
	sess := session.New(p, h.sopts, e.sessionDeps(b))
	s.observeHandshake(r, adm.IPKey, nil)
	conn, err := e.upgrader.Upgrade(w, r, h.subprotocol, sess)
	if err != nil {
		b.abort()
		adm.Lease.Release()
		s.log.Info("upgrade failed", "route", e.name, "ip", adm.IP.String(), "err", err)
		return
	}
	sess.Attach(conn)
	b.attached(sess)
	s.metrics.ConnOpened(e.name) // its close is counted too
	ip, user := adm.IP.String(), adm.Identity.Subject
	if h.refuse != 0 {
		s.audit.Log(audit.Event{Event: audit.HandshakeRejected, ConnID: h.connID, IP: ip, User: user,
			Route: e.name, Detail: map[string]any{"reason": "connect_hook", "code": h.refuse}})
		s.log.Info("connect hook refused", "conn_id", h.connID, "ip", ip, "user", user, "code", h.refuse)
		sess.CloseWith(h.refuse, h.refuseReason)
		s.serveSession(sess)
		return
	}
	detail := map[string]any{"credential_source": string(adm.Credential), "subprotocol": h.subprotocol}
	attrs := []any{"conn_id", h.connID, "ip", ip, "user", user, "route", e.name, "subprotocol", h.subprotocol,
		"credential_source", string(adm.Credential)}
	for k, v := range h.detail {
		detail[k] = v
		attrs = append(attrs, k, v)
	}
	s.audit.Log(audit.Event{Event: audit.HandshakeAccepted, ConnID: h.connID, IP: ip, User: user, Route: e.name, Detail: detail})
	s.log.Info("connected", attrs...)
	sess.Start()
	s.serveSession(sess)
}

// sessionDeps returns the Deps of a session bound by b. A room binding is the
// same for every connection, so its sessions share one Deps; other bindings
// (an upstream link, a raw route) set their own per connection.
func (e *endpoint) sessionDeps(b binding) *session.Deps {
	if _, ok := b.(roomRouter); ok {
		e.roomDepsOnce.Do(func() { e.roomDeps = e.newDeps(b) })
		return e.roomDeps
	}
	return e.newDeps(b)
}

func (e *endpoint) newDeps(b binding) *session.Deps {
	s := e.srv
	deps := &session.Deps{Pipeline: e.pipeline, Strikes: s.strikes, Refresh: s.refresh, Log: s.log, Registry: s.registry,
		Observer: (*observer)(s)}
	if e.live {
		deps.LivePipeline = &s.pipeline
	}
	b.deps(deps)
	return deps
}

// roomRoute is the built-in service's route: the connect hook of its
// runtime decides at admission, then accepted messages go to the room
// (roomRouter).
type roomRoute struct {
	s       *Server
	connect *hook.Hook // nil without a connect hook
}

func (rr roomRoute) admit(r *http.Request, h *handshake) (binding, *guard.Rejection) {
	s := rr.s
	if rr.connect != nil {
		// After authentication, before the welcome. A refusal is sent as a close
		// frame right after the upgrade, so that a browser client can read the
		// reason (an HTTP refusal's body is invisible to it).
		h.adm.Identity, h.tier, h.refuse, h.refuseReason = s.connectDecision(rr.connect, r, h.adm.Identity, h.connID, h.adm.IP.String(), h.tier, h.cfg)
		if h.refuse != 0 {
			so := *h.sopts
			so.NoWelcome = true
			h.sopts = &so
		}
	}
	return roomRouter{s}, nil
}

func (rr roomRouter) deps(d *session.Deps)   { d.Router = rr }
func (roomRouter) attached(*session.Session) {}
func (roomRouter) abort()                    {}

// compileEndpoints builds rt's endpoints: the built-in service at cfg.Path,
// every route with an upstream, every WithRawRoute route.
func (s *Server) compileEndpoints(rt *runtime) error {
	cfg := rt.cfg
	core := &endpoint{srv: s, cfg: cfg, name: cfg.Path, pattern: cfg.Path, guard: s.newGuard(rt, rt.policy),
		integrity: integrityMode(cfg.Integrity.Mode), upgrader: rt.upgrader, sopts: &rt.sopts, live: true, route: roomRoute{s: s}}
	if rt.hooks != nil {
		core.route = roomRoute{s: s, connect: rt.hooks.connect}
	}
	rt.endpoints = []*endpoint{core}
	scratch := http.NewServeMux()
	scratch.Handle(core.pattern, core)
	for i, r := range cfg.Routes {
		if r.Upstream == "" {
			continue
		}
		e, err := s.newRoute(rt, r, nil)
		if err == nil {
			err = tryPattern(scratch, e.pattern)
		}
		if err != nil {
			return fmt.Errorf("routes[%d]: %w", i, err)
		}
		rt.endpoints = append(rt.endpoints, e)
	}
	for i, rr := range s.rawRoutes {
		r := rr.route
		if err := checkRawRoute(r, rr.h); err != nil {
			return err
		}
		r.Validation = "raw"
		e, err := s.newRoute(rt, r, rr.h)
		if err != nil {
			return fmt.Errorf("WithRawRoute[%d] %q: %w", i, r.Path, err)
		}
		if err := tryPattern(scratch, e.pattern); err != nil {
			return fmt.Errorf("WithRawRoute[%d]: %w", i, err)
		}
		rt.endpoints = append(rt.endpoints, e)
	}
	return nil
}

func integrityMode(m string) string {
	if m == "" {
		return "off"
	}
	return m
}

// newGuard is a guard with policy p over the server's stores and rt's verifier.
func (s *Server) newGuard(rt *runtime, p guard.Policy) *guard.Guard {
	return guard.New(p, guard.Deps{Verifier: rt.verifier, Limiter: s.limiter, Bans: s.bans, Quotas: s.quotas, Tickets: s.tickets})
}

// newMux mounts rt's endpoints and the public HTTP API.
func (s *Server) newMux(rt *runtime) *http.ServeMux {
	mux := http.NewServeMux()
	for _, e := range rt.endpoints {
		mux.Handle(e.pattern, e) // compileEndpoints tried every pattern
	}
	mux.HandleFunc("POST /v1/tickets", s.handleTicket)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.handleReady)
	s.mountIntegrity(mux)
	s.mountRealtime(mux)
	return mux
}
