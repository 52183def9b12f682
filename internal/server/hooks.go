package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"reflect"
	"strings"

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
// beyond the built-in checks. It is built at start; a reload keeps it.
type hookSet struct {
	connect   *hook.Hook
	subscribe *hook.Hook // global; a namespace's own replaces it
	publish   *hook.Hook
	ns        map[string]*nsRules
	limiter   limit.Limiter
	limitOpen bool // rate.fail_open: the limiter's errors let publishes through
	log       *slog.Logger
	metrics   *metrics.Metrics
	presence  func(ctx context.Context, ch string) (int, error)
}

// nsRules are one namespace's hooks and per-room limits.
type nsRules struct {
	subscribe, publish *hook.Hook
	limits             config.RoomLimits
	schema             *schema.Schema
}

func (r *nsRules) empty() bool {
	l := r.limits
	return r.subscribe == nil && r.publish == nil && l.PublishRate.Rate == 0 && l.MemberPublishRate.Rate == 0 &&
		l.MaxMessageBytes == 0 && r.schema == nil && l.MaxMembers == 0
}

// buildHooks builds the hook set from cfg and the embedder's functions; nil
// when nothing is configured, so that hooks cost nothing when off.
func (s *Server) buildHooks(cfg *config.Config, o *options) (*hookSet, error) {
	var key []byte
	if cfg.Hooks.SigningKey != "" {
		k, err := auth.ParseSecret(cfg.Hooks.SigningKey)
		if err != nil {
			return nil, fmt.Errorf("hooks.signing_key: %w", err)
		}
		key = k
		s.redactor.Pin(cfg.Hooks.SigningKey)
	}
	mk := func(field, kind string, h config.Hook) (*hook.Hook, error) {
		if h.URL == "" {
			return nil, nil
		}
		b, err := hook.NewHTTP(hook.HTTPOptions{URL: h.URL, Key: key, MaxResponseBytes: int64(h.MaxResponseBytes)})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", field, err)
		}
		s.onClose(b.Close)
		failOpen := h.FailurePolicy == "fail_open"
		if failOpen {
			s.log.Warn("hook fails open: requests pass unchecked when it cannot answer (a loosening)", "hook", field)
		}
		hk, err := hook.New(kind, b, hook.Options{Timeout: h.Timeout, MaxConcurrency: h.MaxConcurrency, FailOpen: failOpen,
			Breaker: hook.Breaker{Failures: h.Breaker.Failures, Cooldown: h.Breaker.Cooldown}})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", field, err)
		}
		return hk, nil
	}
	hs := &hookSet{ns: map[string]*nsRules{}, limiter: s.roomLimiter, limitOpen: cfg.Rate.FailOpen, log: s.log.With("component", "hooks"), metrics: s.metrics}
	var err error
	if hs.connect, err = mk("hooks.connect", hook.KindConnect, cfg.Hooks.Connect); err != nil {
		return nil, err
	}
	if hs.subscribe, err = mk("hooks.subscribe", hook.KindSubscribe, cfg.Hooks.Subscribe); err != nil {
		return nil, err
	}
	if hs.publish, err = mk("hooks.publish", hook.KindPublish, cfg.Hooks.Publish); err != nil {
		return nil, err
	}
	if o.hookSet {
		if o.hookOpts.FailOpen {
			s.log.Warn("Go hooks fail open: requests pass unchecked when they cannot answer (a loosening)")
		}
		for _, k := range []struct {
			kind string
			dst  **hook.Hook
		}{{hook.KindConnect, &hs.connect}, {hook.KindSubscribe, &hs.subscribe}, {hook.KindPublish, &hs.publish}} {
			if b := hook.NewFunc(k.kind, o.hookFuncs); b != nil {
				if *k.dst, err = hook.New(k.kind, b, o.hookOpts); err != nil {
					return nil, fmt.Errorf("WithHooks: %w", err)
				}
			}
		}
	}
	reg := s.pipeline.Load().Registry()
	for name, n := range cfg.Channels.Namespaces {
		f := "channels.namespaces." + name + ".hooks"
		r := &nsRules{limits: n.Limits}
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
			r.subscribe = hs.subscribe
		}
		if r.publish == nil {
			r.publish = hs.publish
		}
		if !r.empty() {
			hs.ns[name] = r
		}
	}
	if s.dev != nil {
		if err := devGameHook(hs, cfg); err != nil {
			return nil, err
		}
	}
	if hs.connect == nil && len(hs.ns) == 0 {
		return nil, nil
	}
	return hs, nil
}

// rules returns the namespace's rules for channel ch, nil when it has none.
func (hs *hookSet) rules(ch string) *nsRules {
	ns, _, ok := strings.Cut(ch, ":")
	if !ok {
		ns = ""
	}
	return hs.ns[ns]
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

// checkSubscribe is room.Options.CheckSubscribe: max members, then the
// subscribe hook.
func (hs *hookSet) checkSubscribe(ctx context.Context, c room.Client, ch string) *protocol.Error {
	r := hs.rules(ch)
	if r == nil {
		return nil
	}
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

// checkPublish is room.Options.CheckPublish: size, schema, the channel's and
// the member's publish rate, then the publish hook (which may rewrite).
func (hs *hookSet) checkPublish(ctx context.Context, c room.Client, ch string, payload []byte) ([]byte, *protocol.Error) {
	r := hs.rules(ch)
	if r == nil {
		return payload, nil
	}
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
func (s *Server) connectDecision(r *http.Request, id auth.Identity, connID, ip, tier string, cfg *config.Config) (auth.Identity, string, protocol.CloseCode, string) {
	h := s.hooks.connect
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

// devGameHook referees the dev tic-tac-toe demo (addDevGame): an in-process
// publish hook on its namespace, unless the configuration set one there.
func devGameHook(hs *hookSet, cfg *config.Config) error {
	n, ok := cfg.Channels.Namespaces[demo.GameNamespace]
	if !ok || n.Hooks.Publish.URL != "" || n.Limits.Schema != demo.MoveSchema {
		return nil // not the namespace addDevGame made
	}
	h, err := hook.New(hook.KindPublish, hook.NewFunc(hook.KindPublish, hook.Funcs{Publish: demo.NewGames().Publish}), hook.Options{})
	if err != nil {
		return fmt.Errorf("dev game: %w", err)
	}
	r := hs.ns[demo.GameNamespace]
	if r == nil {
		r = &nsRules{limits: n.Limits}
		hs.ns[demo.GameNamespace] = r
	}
	r.publish = h
	return nil
}

// hooksEqual reports whether a and b configure the same hooks and per-room
// limits (what buildHooks reads).
func hooksEqual(a, b *config.Config) bool {
	if !reflect.DeepEqual(a.Hooks, b.Hooks) {
		return false
	}
	type nsPart struct {
		h config.NamespaceHooks
		l config.RoomLimits
	}
	parts := func(c *config.Config) map[string]nsPart {
		m := map[string]nsPart{}
		for name, n := range c.Channels.Namespaces {
			if p := (nsPart{n.Hooks, n.Limits}); p != (nsPart{}) {
				m[name] = p
			}
		}
		return m
	}
	return reflect.DeepEqual(parts(a), parts(b))
}
