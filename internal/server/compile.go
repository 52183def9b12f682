package server

import (
	"fmt"
	"net/http"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/conn/integrity"
	"github.com/wsgate/wsgate/internal/conn/outbox"
	"github.com/wsgate/wsgate/internal/conn/pipeline"
	"github.com/wsgate/wsgate/internal/conn/schema"
	"github.com/wsgate/wsgate/internal/conn/session"
	"github.com/wsgate/wsgate/internal/conn/transport"
	"github.com/wsgate/wsgate/internal/edge/auth"
	"github.com/wsgate/wsgate/internal/edge/guard"
	"github.com/wsgate/wsgate/internal/observe/alert"
	"github.com/wsgate/wsgate/internal/route/room"
	"github.com/wsgate/wsgate/internal/state/ban"
	"github.com/wsgate/wsgate/internal/state/encrypt"
	"github.com/wsgate/wsgate/internal/state/limit"
	"github.com/wsgate/wsgate/internal/state/quota"
)

// runtime is everything derived from one configuration: compile builds it
// whole, the Server holds the one in force in one atomic pointer, and a reload
// swaps it for another. Nothing in it changes after compile; what outlives a
// runtime (stores, sessions, the room, metrics) is set from it by install.
type runtime struct {
	cfg      *config.Config
	verifier *auth.Verifier // closed with the runtime
	policy   guard.Policy   // the built-in endpoint's; routes derive theirs from it
	pipeline *pipeline.Pipeline
	upgrader *transport.Upgrader
	sopts    session.Options
	ring     *integrity.KeyRing // nil without master keys
	enc      *encrypt.Policy
	ns       map[string]room.Namespace // with their hooks' Checks
	// hooks are the application hooks and per-room limits (hooks.go); nil
	// when none. Its HTTP hooks are closed with the runtime, except those the
	// next runtime reuses.
	hooks   *hookSet
	alerts  []alert.Rule
	quota   quota.Limits
	strikes ban.Policy
	// endpoints are the WebSocket paths: the built-in service first, then
	// routes[] with an upstream, then WithRawRoute routes. mux serves them
	// with the public HTTP API.
	endpoints []*endpoint
	mux       *http.ServeMux
}

// compile builds the runtime of cfg (validated) and refuses it whole on the
// first error. prev is the runtime in force (nil at New): a dev server keeps
// its generated integrity and encryption keys across reloads.
func (s *Server) compile(cfg *config.Config, prev *runtime) (_ *runtime, err error) {
	rt := &runtime{
		cfg: cfg, policy: guardPolicy(cfg), sopts: sessionOptions(cfg),
		alerts: alertRules(cfg), quota: quotaLimits(cfg), strikes: strikePolicy(cfg),
	}
	if err := alert.ValidateRules(rt.alerts); err != nil {
		return nil, fmt.Errorf("alerts: %w", err)
	}
	popts, err := pipelineOptions(cfg, s.limiter)
	if err != nil {
		return nil, err
	}
	popts.Verifier = integrityVerifier{s.integ.verifier}
	if rt.pipeline, err = pipeline.New(popts); err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	to := transportOptions(cfg)
	if rt.upgrader, err = transport.NewUpgrader(&to); err != nil {
		return nil, fmt.Errorf("transport: %w", err)
	}
	if prev != nil && cfg.Dev && len(cfg.Integrity.MasterKeys) == 0 {
		rt.ring = prev.ring // a dev server's generated master key stays
	} else if rt.ring, err = keyRing(cfg); err != nil {
		return nil, err
	}
	var prevEnc *encrypt.Policy
	if prev != nil {
		prevEnc = prev.enc
	}
	if rt.enc, err = encryptionPolicy(cfg, prevEnc); err != nil {
		return nil, err
	}
	if rt.verifier, err = s.newVerifier(cfg); err != nil {
		return nil, err
	}
	// Until the runtime is installed its verifier and new hooks are ours: a
	// refusal below must close them, or a JWKS refresher or a hook's
	// connections would outlive the refusal. prev's hooks, which rt may
	// share, stay open.
	defer func() {
		if err != nil {
			rt.closeExcept(prev)
		}
	}()
	var prevHooks *hookSet
	if prev != nil {
		prevHooks = prev.hooks
	}
	if rt.hooks, err = s.compileHooks(cfg, rt.pipeline.Registry(), prevHooks); err != nil {
		return nil, err
	}
	rt.ns = roomNamespaces(cfg, rt.hooks)
	if err := s.compileEndpoints(rt); err != nil {
		return nil, err
	}
	rt.mux = s.newMux(rt)
	return rt, nil
}

// install puts rt in force: the parts that outlive a runtime take its
// settings, then the pointer is swapped. Only the namespaces can still refuse
// (the room checks that the default channel stays in one); they go first, and
// nothing has changed when they do. The encryption policy is set just before
// them, so that a namespace that becomes at_rest takes no publication in
// plaintext.
func (s *Server) install(rt *runtime) error {
	oldEnc := s.enc.Policy()
	s.enc.SetPolicy(rt.enc)
	if err := s.room.SetNamespaces(rt.ns); err != nil {
		s.enc.SetPolicy(oldEnc)
		return fmt.Errorf("channels: %w", err)
	}
	s.logEncryption(rt.enc)
	if err := s.alerts.SetRules(rt.alerts); err != nil {
		return fmt.Errorf("alerts: %w", err) // validated by compile: not reached
	}
	s.quotas.SetLimits(rt.quota)
	s.strikes.SetPolicy(rt.strikes)
	s.integ.verifier.SetKeyRing(rt.ring)
	s.integ.keys.Store(rt.ring)
	s.pipeline.Store(rt.pipeline)
	for _, e := range rt.endpoints {
		if u, ok := e.route.(*upstreamRoute); ok {
			s.metrics.UpstreamUp(e.name, u.dialer.Health().Up)
		}
	}
	s.rt.Store(rt)
	return nil
}

// close releases what the runtime owns once no new handshake or request can
// reach it: the verifier's JWKS refresher and its HTTP hooks' connections.
// Sessions it admitted keep running; token refresh goes through the runtime in
// force, and so do their next subscriptions and publications (the room reads
// the namespaces, and their hooks, in force).
func (rt *runtime) close() { rt.closeExcept(nil) }

// closeExcept is close, except for the HTTP hooks keep shares with rt: a
// reload closes the old runtime except what the new one reused, and a refused
// one closes its own runtime except what it took from the one in force.
func (rt *runtime) closeExcept(keep *runtime) {
	if rt.verifier != nil {
		rt.verifier.Close()
	}
	var kept *hookSet
	if keep != nil {
		kept = keep.hooks
	}
	rt.hooks.closeExcept(kept)
}

// config is the configuration in force.
func (s *Server) config() *config.Config { return s.rt.Load().cfg }

// Config → options translation: every function below reads cfg and nothing else.

func outboxOptions(cfg *config.Config) outbox.Options {
	return outbox.Options{MaxMessages: cfg.Limits.Outbox.MaxMessages, MaxBytes: cfg.Limits.Outbox.MaxBytes}
}

// rateTiers are rate.tiers as the pipeline takes them (raw gateway routes run
// the same pipeline's rate stage).
func rateTiers(cfg *config.Config) map[string]pipeline.Tier {
	tiers := make(map[string]pipeline.Tier, len(cfg.Rate.Tiers))
	for name, t := range cfg.Rate.Tiers {
		tiers[name] = pipeline.Tier{
			Messages: lim(t.Messages), Bytes: lim(t.Bytes),
			UserMessages: lim(t.UserMessages), UserBytes: lim(t.UserBytes),
			IPMessages: lim(t.IPMessages), IPBytes: lim(t.IPBytes),
		}
	}
	return tiers
}

func pipelineOptions(cfg *config.Config, l limit.Limiter) (pipeline.Options, error) {
	tiers := rateTiers(cfg)
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

func quotaLimits(cfg *config.Config) quota.Limits {
	c := cfg.Limits.Connections
	return quota.Limits{PerIP: c.PerIP, PerUser: c.PerUser, Global: c.Global}
}

func strikePolicy(cfg *config.Config) ban.Policy {
	a := cfg.Abuse
	return ban.Policy{Window: a.Window, MaxStrikes: a.MaxStrikes, BanTTL: a.BanTTL, BanIP: a.BanIP, BanUser: a.BanUser,
		// max_strikes 0, or banning neither IPs nor users, means no bans at all.
		// --dev listens on loopback only and never bans loopback clients: one
		// `wsgate check` or `bench` must not lock the developer out of the demo.
		Off: a.MaxStrikes == 0 || (!a.BanIP && !a.BanUser) || cfg.Dev}
}

// ipPrefixes is how much of a client address is one client for every per-IP
// control (limits.ipv4_prefix, limits.ipv6_prefix).
func ipPrefixes(cfg *config.Config) limit.IPPrefixes {
	return limit.IPPrefixes{V4: cfg.Limits.IPv4Prefix, V6: cfg.Limits.IPv6Prefix}
}

func lim(r config.RateLimit) limit.Limit { return limit.Limit{Rate: r.Rate, Burst: r.Burst} }

func guardPolicy(cfg *config.Config) guard.Policy {
	return guard.Policy{
		Origins:        guard.OriginPolicy{Allowed: cfg.Origins.Allowed, AllowMissing: cfg.Origins.AllowMissing},
		HandshakeRate:  lim(cfg.Limits.HandshakeRate),
		TrustedProxies: cfg.ParseTrustedProxies(),
		IPPrefixes:     ipPrefixes(cfg),
		Extract:        auth.ExtractOptions{CookieName: cfg.Auth.CookieName, AllowQueryToken: cfg.Auth.AllowQueryToken},
		AuthMode:       cfg.Auth.Mode,
		IdentityFrom:   cfg.TLS.IdentityFrom,
		Subprotocols:   []string{"wsgate.v1"},
	}
}

func transportOptions(cfg *config.Config) transport.Options {
	c := cfg.Compression
	return transport.Options{
		MaxMessageBytes: cfg.Limits.MaxMessageBytes,
		MaxFragments:    cfg.Limits.MaxFragments,
		AllowBinary:     cfg.Limits.AllowBinary,
		WriteTimeout:    cfg.Timeouts.Write,
		Reader:          cfg.Transport.Reader,
		Compression: transport.Compression{
			Enabled: c.Enabled, ServerContextTakeover: c.ServerContextTakeover, ClientContextTakeover: c.ClientContextTakeover,
			ServerMaxWindowBits: c.ServerMaxWindowBits, ClientMaxWindowBits: c.ClientMaxWindowBits, Level: c.Level,
		},
	}
}

func sessionOptions(cfg *config.Config) session.Options {
	def := cfg.Rate.Tiers["default"]
	return session.Options{
		Route:        cfg.Path, // the built-in service's; gateway routes set their own
		PingInterval: cfg.Timeouts.PingInterval,
		PongTimeout:  cfg.Timeouts.PongTimeout,
		Idle:         cfg.Timeouts.Idle,
		Outbox:       outboxOptions(cfg),
		WelcomeLimits: map[string]any{
			"max_message_bytes":   cfg.Limits.MaxMessageBytes,
			"messages_per_second": def.Messages.Rate,
			"burst":               def.Messages.Burst,
			"bytes_per_second":    def.Bytes.Rate,
		},
	}
}

func alertRules(cfg *config.Config) []alert.Rule {
	out := make([]alert.Rule, 0, len(cfg.Alerts.Rules))
	for _, r := range cfg.Alerts.Rules {
		out = append(out, alert.Rule{Name: r.Name, Event: r.Event, Window: r.Window, Threshold: r.Threshold,
			PerIP: r.PerIP, Cooldown: r.Cooldown, AutoBan: r.AutoBan, BanTTL: r.BanTTL})
	}
	return out
}

// roomNamespaces are cfg's namespaces as the room takes them, each with the
// hooks and per-room limits hs compiled for it (nil Checks when none: a
// namespace without rules costs the room nothing).
func roomNamespaces(cfg *config.Config, hs *hookSet) map[string]room.Namespace {
	ns := make(map[string]room.Namespace, len(cfg.Channels.Namespaces))
	for name, n := range cfg.Channels.Namespaces {
		ns[name] = room.Namespace{ClientPublish: n.ClientPublish, MaxSubscribers: n.MaxSubscribers,
			HistorySize: n.HistorySize, HistoryTTL: n.HistoryTTL, Presence: n.Presence, JoinLeave: n.JoinLeave && n.Presence,
			Integrity: n.Integrity, SignOutput: n.SignOutput, Checks: hs.checks(name)}
	}
	return ns
}
