package server

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/netip"
	"net/url"
	"slices"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/conn/protocol"
	"github.com/wsgate/wsgate/internal/conn/schema"
	"github.com/wsgate/wsgate/internal/edge/auth"
	"github.com/wsgate/wsgate/internal/observe/metrics"
	"github.com/wsgate/wsgate/internal/route/hook"
	"github.com/wsgate/wsgate/internal/route/room"
	"github.com/wsgate/wsgate/internal/state/limit"
	"github.com/wsgate/wsgate/internal/tools/demo"
)

// WithHooks makes Go functions the connect, subscribe and publish hooks of
// every namespace (library mode), under the same protections as HTTP hooks:
// opts' timeout (in the function's ctx, which it must honour), concurrency
// bound, circuit breaker and failure policy (fail closed unless
// opts.FailOpen). A function set here replaces the configured global hook of
// its kind; per-namespace HTTP hooks (channels.namespaces.X.hooks) still take
// precedence for their namespace.
func WithHooks(f hook.Funcs, opts hook.Options) Option {
	return func(o *options) { o.hookFuncs, o.hookOpts, o.hookSet = f, opts, true }
}

// hookSet is everything the connect, subscribe and publish decisions consult
// beyond the built-in checks, compiled with the runtime that holds it (nil
// when nothing is configured, so that hooks cost nothing when off). The room
// reaches a namespace's rules through room.Namespace.Checks, the connect hook
// through the built-in endpoint's route: both belong to the runtime in force,
// so a reload swaps them with everything else.
type hookSet struct {
	connect *hook.Hook
	ns      map[string]*nsRules // namespaces with rules
	// http are the HTTP hooks of this set by where they are configured. A
	// reload reuses an unchanged one, circuit state and connections included,
	// and closes those it dropped once the new set is in force (closeExcept).
	http      map[hookSite]httpHook
	limiter   limit.Limiter
	limitOpen bool // rate.fail_open: the limiter's errors let publishes through
	log       *slog.Logger
	metrics   *metrics.Metrics
	presence  func(ctx context.Context, ch string) (int, error)
}

// hookSite is one configured HTTP hook: the field that configures it, its
// settings and the signing key. Two runtimes with the same site share the hook.
type hookSite struct {
	field, key string
	cfg        config.Hook
}

type httpHook struct {
	hook    *hook.Hook
	backend *hook.HTTP
}

// goHooks are WithHooks' functions, wrapped once at New: they are the
// embedder's, not the file's, so every runtime shares them (and their circuit
// state).
type goHooks struct{ connect, subscribe, publish *hook.Hook }

// nsRules are one namespace's hooks and per-room limits: its room.Checks.
type nsRules struct {
	hs                 *hookSet
	subscribe, publish *hook.Hook
	limits             config.RoomLimits
	schema             *schema.Schema
}

func (r *nsRules) empty() bool {
	l := r.limits
	return r.subscribe == nil && r.publish == nil && l.PublishRate.Rate == 0 && l.MemberPublishRate.Rate == 0 &&
		l.MaxMessageBytes == 0 && r.schema == nil && l.MaxMembers == 0
}

// newGoHooks wraps the embedder's functions (nil fields when none).
func (s *Server) newGoHooks(o *options) (goHooks, error) {
	var g goHooks
	if !o.hookSet {
		return g, nil
	}
	if o.hookOpts.FailOpen {
		s.log.Warn("Go hooks fail open: requests pass unchecked when they cannot answer (a loosening)")
	}
	for _, k := range []struct {
		kind string
		dst  **hook.Hook
	}{{hook.KindConnect, &g.connect}, {hook.KindSubscribe, &g.subscribe}, {hook.KindPublish, &g.publish}} {
		if b := hook.NewFunc(k.kind, o.hookFuncs); b != nil {
			h, err := hook.New(k.kind, b, o.hookOpts)
			if err != nil {
				return g, fmt.Errorf("WithHooks: %w", err)
			}
			*k.dst = h
		}
	}
	return g, nil
}

// compileHooks builds the hook set of cfg: reg holds the schemas the
// namespaces' limits name, prev is the set in force (nil at New), whose
// unchanged HTTP hooks are reused. On error the hooks built here are closed
// and prev is untouched.
func (s *Server) compileHooks(cfg *config.Config, reg *schema.Registry, prev *hookSet) (_ *hookSet, err error) {
	var key []byte
	if cfg.Hooks.SigningKey != "" {
		if key, err = auth.ParseSecret(cfg.Hooks.SigningKey); err != nil {
			return nil, fmt.Errorf("hooks.signing_key: %w", err)
		}
	}
	hs := &hookSet{ns: map[string]*nsRules{}, http: map[hookSite]httpHook{}, limiter: s.roomLimiter, limitOpen: cfg.Rate.FailOpen,
		log: s.log.With("component", "hooks"), metrics: s.metrics, presence: s.presenceCount}
	defer func() {
		if err != nil {
			hs.closeExcept(prev)
		}
	}()
	mk := func(field, kind string, h config.Hook) (*hook.Hook, error) {
		if h.URL == "" {
			return nil, nil
		}
		site := hookSite{field: field, key: cfg.Hooks.SigningKey, cfg: h}
		if old, ok := prev.site(site); ok {
			hs.http[site] = old
			return old.hook, nil
		}
		b, err := hook.NewHTTP(hook.HTTPOptions{URL: h.URL, Key: key, MaxResponseBytes: int64(h.MaxResponseBytes)})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", field, err)
		}
		failOpen := h.FailurePolicy == "fail_open"
		hk, err := hook.New(kind, b, hook.Options{Timeout: h.Timeout, MaxConcurrency: h.MaxConcurrency, FailOpen: failOpen,
			Breaker: hook.Breaker{Failures: h.Breaker.Failures, Cooldown: h.Breaker.Cooldown}})
		if err != nil {
			b.Close()
			return nil, fmt.Errorf("%s: %w", field, err)
		}
		if failOpen {
			s.log.Warn("hook fails open: requests pass unchecked when it cannot answer (a loosening)", "hook", field)
		}
		hs.http[site] = httpHook{hook: hk, backend: b}
		return hk, nil
	}
	var subscribe, publish *hook.Hook // global; a namespace's own replaces them
	if hs.connect, err = mk("hooks.connect", hook.KindConnect, cfg.Hooks.Connect); err != nil {
		return nil, err
	}
	if subscribe, err = mk("hooks.subscribe", hook.KindSubscribe, cfg.Hooks.Subscribe); err != nil {
		return nil, err
	}
	if publish, err = mk("hooks.publish", hook.KindPublish, cfg.Hooks.Publish); err != nil {
		return nil, err
	}
	for _, g := range []struct {
		dst **hook.Hook
		h   *hook.Hook
	}{{&hs.connect, s.goHooks.connect}, {&subscribe, s.goHooks.subscribe}, {&publish, s.goHooks.publish}} {
		if g.h != nil {
			*g.dst = g.h
		}
	}
	for name, n := range cfg.Channels.Namespaces {
		f := "channels.namespaces." + name + ".hooks"
		r := &nsRules{hs: hs, limits: n.Limits}
		if r.subscribe, err = mk(f+".subscribe", hook.KindSubscribe, n.Hooks.Subscribe); err != nil {
			return nil, err
		}
		if r.publish, err = mk(f+".publish", hook.KindPublish, n.Hooks.Publish); err != nil {
			return nil, err
		}
		if n.Limits.Schema != "" {
			sc, ok := reg.Lookup(n.Limits.Schema)
			if !ok {
				return nil, fmt.Errorf("channels.namespaces.%s.limits.schema: no schema %q", name, n.Limits.Schema)
			}
			r.schema = sc
		}
		if r.subscribe == nil {
			r.subscribe = subscribe
		}
		if r.publish == nil {
			r.publish = publish
		}
		if !r.empty() {
			hs.ns[name] = r
		}
	}
	if s.devGame != nil {
		devGameHook(hs, cfg, s.devGame)
	}
	if hs.connect == nil && len(hs.ns) == 0 {
		hs.closeExcept(prev) // global hooks with no namespace to apply to
		return nil, nil
	}
	return hs, nil
}

// site returns the HTTP hook hs built for site; none on a nil set.
func (hs *hookSet) site(site hookSite) (httpHook, bool) {
	if hs == nil {
		return httpHook{}, false
	}
	h, ok := hs.http[site]
	return h, ok
}

// closeExcept closes the HTTP hooks of hs that keep does not share (all of
// them when keep is nil): after a reload's swap, the old set's dropped hooks;
// after a refused reload, the hooks the refused set built.
func (hs *hookSet) closeExcept(keep *hookSet) {
	if hs == nil {
		return
	}
	for site, h := range hs.http {
		if k, ok := keep.site(site); !ok || k.backend != h.backend {
			h.backend.Close()
		}
	}
}

// checks returns the room.Checks of namespace name, nil when it has no rules.
func (hs *hookSet) checks(name string) room.Checks {
	if hs == nil {
		return nil
	}
	if r := hs.ns[name]; r != nil {
		return r
	}
	return nil
}

func (s *Server) presenceCount(ctx context.Context, ch string) (int, error) {
	p, err := s.state.broker.Presence(ctx, ch)
	return len(p), err
}

func hookIdentity(c room.Client) hook.Identity {
	id := hook.Identity{User: c.User(), ConnID: c.ConnID(), Claims: c.Claims()}
	if ipc, ok := c.(interface{ IP() netip.Addr }); ok {
		id.ClientIP = ipc.IP().String()
	}
	return id
}

// hookFailed is the error for a hook that gave no usable answer under the
// fail-closed policy, or nil (after logging) when the hook fails open.
func (hs *hookSet) hookFailed(h *hook.Hook, ch string, err error) *protocol.Error {
	hs.metrics.HookCall(h.Kind(), hook.Outcome(err))
	if h.FailOpen() {
		hs.log.Warn("hook failed; letting the request through (fail_open)", "hook", h.Kind(), "channel", ch, "err", err)
		return nil
	}
	hs.log.Info("hook failed; refusing (fail_closed)", "hook", h.Kind(), "channel", ch, "err", err)
	return &protocol.Error{Code: protocol.CodeHookUnavailable, Message: "temporarily unavailable, try again later", Err: err}
}

func refusal(reason, def string, strike bool) *protocol.Error {
	if reason == "" {
		reason = def
	}
	return &protocol.Error{Code: protocol.CodeHookRefused, Message: reason, Strike: strike}
}

// CheckSubscribe is room.Checks.CheckSubscribe: max members, then the
// subscribe hook.
func (r *nsRules) CheckSubscribe(ctx context.Context, c room.Client, ch string) *protocol.Error {
	hs := r.hs
	if r.limits.MaxMembers > 0 && hs.presence != nil {
		// Approximate under concurrent subscribes on several nodes: the count
		// and the join are not one atomic step.
		n, err := hs.presence(ctx, ch)
		if err != nil {
			return &protocol.Error{Code: protocol.CodeInternal, Message: "channel state unavailable", Err: err}
		}
		if n >= r.limits.MaxMembers {
			return &protocol.Error{Code: protocol.CodeChannelFull, Message: "channel is full"}
		}
	}
	if h := r.subscribe; h != nil {
		rep, err := h.Subscribe(ctx, hook.SubscribeEvent{Identity: hookIdentity(c), Channel: ch})
		if err != nil {
			return hs.hookFailed(h, ch, err)
		}
		if !rep.Allow {
			hs.metrics.HookCall(hook.KindSubscribe, "refuse")
			return refusal(rep.Reason, "not allowed to subscribe to this channel", true)
		}
		hs.metrics.HookCall(hook.KindSubscribe, "allow")
	}
	return nil
}

// CheckPublish is room.Checks.CheckPublish: size, schema, the channel's and
// the member's publish rate, then the publish hook (which may rewrite).
func (r *nsRules) CheckPublish(ctx context.Context, c room.Client, ch string, payload []byte) ([]byte, *protocol.Error) {
	hs := r.hs
	l := r.limits
	if l.MaxMessageBytes > 0 && len(payload) > l.MaxMessageBytes {
		return nil, &protocol.Error{Code: protocol.CodeRoomMessageLarge, Message: "payload too large for this channel", Strike: true}
	}
	if r.schema != nil && !r.schema.Accepts(payload) {
		return nil, &protocol.Error{Code: protocol.CodeRoomSchema, Message: "payload does not match this channel's schema", Strike: true}
	}
	// The member's rate first: a member over its own budget must not spend
	// the channel's, which the other members share.
	if l.MemberPublishRate.Rate > 0 {
		who := c.User()
		if who == "" {
			who = "conn:" + c.ConnID()
		}
		if e := hs.allow(ctx, "room:mpub:"+ch+"\x00"+who, lim(l.MemberPublishRate)); e != nil {
			return nil, e
		}
	}
	if l.PublishRate.Rate > 0 {
		if e := hs.allow(ctx, "room:pub:"+ch, lim(l.PublishRate)); e != nil {
			return nil, e
		}
	}
	if h := r.publish; h != nil {
		rep, err := h.Publish(ctx, hook.PublishEvent{Identity: hookIdentity(c), Channel: ch, Payload: payload})
		if err != nil {
			return payload, hs.hookFailed(h, ch, err)
		}
		if !rep.Allow {
			hs.metrics.HookCall(hook.KindPublish, "refuse")
			return nil, refusal(rep.Reason, "publication refused", true)
		}
		if rep.Payload == nil {
			hs.metrics.HookCall(hook.KindPublish, "allow")
		} else {
			hs.metrics.HookCall(hook.KindPublish, "rewrite")
			// max_message_bytes bounds what clients send; a rewrite comes from
			// the application, bounded by the hook's max_response_bytes.
			payload = rep.Payload
		}
	}
	return payload, nil
}

// allow spends one token of key; limiter errors follow rate.fail_open.
func (hs *hookSet) allow(ctx context.Context, key string, l limit.Limit) *protocol.Error {
	ok, _, err := hs.limiter.Allow(ctx, key, l, 1)
	if err != nil {
		if hs.limitOpen {
			return nil
		}
		return &protocol.Error{Code: protocol.CodeRoomRateLimited, Message: "rate limit unavailable", Err: err}
	}
	if !ok {
		return &protocol.Error{Code: protocol.CodeRoomRateLimited, Message: "too many messages in this channel"}
	}
	return nil
}

// connectDecision runs the connect hook for an authenticated handshake. It
// returns the identity and tier to use, or a close code and reason when the
// connection must be refused right after the upgrade.
func (s *Server) connectDecision(h *hook.Hook, r *http.Request, id auth.Identity, connID, ip, tier string, cfg *config.Config) (auth.Identity, string, protocol.CloseCode, string) {
	rep, err := h.Connect(r.Context(), hook.ConnectEvent{Identity: hook.Identity{User: id.Subject, ConnID: connID, ClientIP: ip, Claims: id.Claims}, Tier: tier})
	if err == nil && rep.Allow && rep.Tier != "" {
		if _, ok := cfg.Rate.Tiers[rep.Tier]; !ok {
			err = fmt.Errorf("%w: tier %q is not configured", hook.ErrBadResponse, rep.Tier)
		}
	}
	outcome := "allow"
	switch {
	case err != nil:
		outcome = hook.Outcome(err)
	case !rep.Allow:
		outcome = "refuse"
	}
	s.metrics.HookCall(hook.KindConnect, outcome)
	switch {
	case err != nil && h.FailOpen():
		s.log.Warn("connect hook failed; letting the connection through (fail_open)", "conn_id", connID, "err", err)
		return id, tier, 0, ""
	case err != nil:
		s.log.Info("connect hook failed; refusing (fail_closed)", "conn_id", connID, "err", err)
		return id, tier, protocol.ReasonTryAgainLater.Code(), protocol.ReasonTryAgainLater.Text()
	case !rep.Allow:
		reason := rep.Reason
		if reason == "" {
			reason = protocol.ReasonHookRefused.Text()
		}
		return id, tier, protocol.ReasonHookRefused.Code(), reason
	}
	if rep.Tier != "" {
		tier = rep.Tier
	}
	if rep.Channels != nil {
		id.Claims = withChannels(id.Claims, cfg.Channels.Claim, rep.Channels)
	}
	return id, tier, 0, ""
}

// withChannels returns a copy of claims whose channel claim also grants the
// hook's patterns (listed first, so the room's pattern cap keeps them).
func withChannels(claims map[string]any, name string, add *hook.Channels) map[string]any {
	if name == "" {
		name = room.DefaultChannelClaim
	}
	out := make(map[string]any, len(claims)+1)
	for k, v := range claims {
		out[k] = v
	}
	old, _ := claims[name].(map[string]any)
	perms := map[string]any{}
	for _, action := range []string{"sub", "pub"} {
		var list []any
		extra := add.Sub
		if action == "pub" {
			extra = add.Pub
		}
		for _, p := range extra {
			list = append(list, p)
		}
		switch v := old[action].(type) {
		case []any:
			list = append(list, v...)
		case []string:
			for _, p := range v {
				list = append(list, p)
			}
		case string:
			list = append(list, v)
		}
		if len(list) > 0 {
			perms[action] = list
		}
	}
	out[name] = perms
	return out
}

// devGameHook referees the dev tic-tac-toe demo (addDevGame) with h, an
// in-process publish hook on its namespace made once at New (its games outlive
// reloads), unless the configuration set a publish hook there.
func devGameHook(hs *hookSet, cfg *config.Config, h *hook.Hook) {
	n, ok := cfg.Channels.Namespaces[demo.GameNamespace]
	if !ok || n.Hooks.Publish.URL != "" || n.Limits.Schema != demo.MoveSchema {
		return // not the namespace addDevGame made
	}
	r := hs.ns[demo.GameNamespace]
	if r == nil {
		r = &nsRules{hs: hs, limits: n.Limits}
		hs.ns[demo.GameNamespace] = r
	}
	r.publish = h
}

// logHookChanges logs at info what a reload changed in the hooks and the
// per-room limits. Loosening them is the operator's call (it is their file),
// but the log says what changed; a hook that now fails open was also warned
// about when it was built.
func (s *Server) logHookChanges(old, cfg *config.Config) {
	if old.Hooks.SigningKey != cfg.Hooks.SigningKey {
		s.log.Info("hooks.signing_key changed: every HTTP hook signs with the new key")
	}
	before, after := hookSites(old), hookSites(cfg)
	for _, field := range slices.Sorted(maps.Keys(union(before, after))) {
		if a, b := before[field], after[field]; a != b {
			s.log.Info("hook changed", "hook", field, "from", describeHook(a), "to", describeHook(b))
		}
	}
	limits := func(c *config.Config) map[string]config.RoomLimits {
		m := map[string]config.RoomLimits{}
		for name, n := range c.Channels.Namespaces {
			if n.Limits != (config.RoomLimits{}) {
				m[name] = n.Limits
			}
		}
		return m
	}
	lb, la := limits(old), limits(cfg)
	for _, name := range slices.Sorted(maps.Keys(union(lb, la))) {
		if a, b := lb[name], la[name]; a != b {
			s.log.Info("room limits changed", "namespace", name, "from", describeLimits(a), "to", describeLimits(b))
		}
	}
}

// hookSites are cfg's hooks with a url, by field.
func hookSites(cfg *config.Config) map[string]config.Hook {
	m := map[string]config.Hook{}
	add := func(field string, h config.Hook) {
		if h.URL != "" {
			m[field] = h
		}
	}
	add("hooks.connect", cfg.Hooks.Connect)
	add("hooks.subscribe", cfg.Hooks.Subscribe)
	add("hooks.publish", cfg.Hooks.Publish)
	for name, n := range cfg.Channels.Namespaces {
		add("channels.namespaces."+name+".hooks.subscribe", n.Hooks.Subscribe)
		add("channels.namespaces."+name+".hooks.publish", n.Hooks.Publish)
	}
	return m
}

func union[V any](a, b map[string]V) map[string]struct{} {
	u := make(map[string]struct{}, len(a)+len(b))
	for k := range a {
		u[k] = struct{}{}
	}
	for k := range b {
		u[k] = struct{}{}
	}
	return u
}

// describeHook is a hook's settings for the log: its URL without user info,
// query or fragment (they may hold credentials), and its protections.
func describeHook(h config.Hook) string {
	if h.URL == "" {
		return "none"
	}
	where := "(unparsable url)"
	if u, err := url.Parse(h.URL); err == nil {
		where = (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
	}
	policy := h.FailurePolicy
	if policy == "" {
		policy = "fail_closed"
	}
	return fmt.Sprintf("%s %s timeout=%v max_concurrency=%d max_response_bytes=%d breaker=%d/%v",
		where, policy, h.Timeout, h.MaxConcurrency, h.MaxResponseBytes, h.Breaker.Failures, h.Breaker.Cooldown)
}

func describeLimits(l config.RoomLimits) string {
	if l == (config.RoomLimits{}) {
		return "none"
	}
	return fmt.Sprintf("publish_rate=%v/s burst %d, member_publish_rate=%v/s burst %d, max_message_bytes=%d, schema=%q, max_members=%d",
		l.PublishRate.Rate, l.PublishRate.Burst, l.MemberPublishRate.Rate, l.MemberPublishRate.Burst,
		l.MaxMessageBytes, l.Schema, l.MaxMembers)
}
