// Package hook lets the application take part in three decisions of the
// real-time core: connect (after authentication, before the welcome),
// subscribe (beyond token claims) and publish (validate, optionally rewrite,
// before broadcast).
//
// A Hook wraps one backend (an HTTP endpoint, NewHTTP, or a Go function,
// NewFunc) in the same protections: a per-call timeout, bounded concurrency
// (a call that finds every slot taken fails at once with ErrBusy instead of
// queueing), a circuit breaker (after Breaker.Failures consecutive failures
// calls fail with ErrOpen for Breaker.Cooldown, then one trial call decides)
// and a failure policy. Fail closed is the default: when the backend cannot
// answer, the request is refused. Fail open lets it through unchanged; it is a
// loosening and is named so in the configuration.
//
// A nil *Hook is valid and means "no hook": callers test for nil, so a hook
// that is off costs one comparison.
package hook

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/wsgate/wsgate/internal/defaults"
)

// Kinds of hooks.
const (
	KindConnect   = "connect"
	KindSubscribe = "subscribe"
	KindPublish   = "publish"
)

// Errors a call may fail with. All of them mean "the backend gave no usable
// answer"; the hook's Policy decides what happens then.
var (
	ErrBusy        = errors.New("hook: every concurrency slot is taken")
	ErrOpen        = errors.New("hook: circuit breaker open")
	ErrTimeout     = errors.New("hook: timed out")
	ErrBadResponse = errors.New("hook: malformed response")
	ErrBackend     = errors.New("hook: backend failed")
)

// Defaults.
const (
	DefaultTimeout          = 2 * time.Second
	DefaultMaxConcurrency   = 64
	DefaultBreakerFailures  = 5
	DefaultBreakerCooldown  = 10 * time.Second
	DefaultMaxResponseBytes = 64 << 10
	MaxReasonLen            = 120
)

// Options configure one hook's protections.
type Options struct {
	Timeout        time.Duration // per call; default DefaultTimeout
	MaxConcurrency int           // calls in flight; default DefaultMaxConcurrency
	// FailOpen lets requests through unchanged when the backend cannot answer
	// (timeout, breaker open, busy, error, bad response). Off by default: fail
	// closed.
	FailOpen bool
	Breaker  Breaker
}

// Breaker configures the circuit breaker.
type Breaker struct {
	Failures int           // consecutive failures that open it; default 5
	Cooldown time.Duration // how long it stays open; default 10s
}

func (o Options) withDefaults() Options {
	defaults.Positive(&o.Timeout, DefaultTimeout)
	defaults.Positive(&o.MaxConcurrency, DefaultMaxConcurrency)
	defaults.Positive(&o.Breaker.Failures, DefaultBreakerFailures)
	defaults.Positive(&o.Breaker.Cooldown, DefaultBreakerCooldown)
	return o
}

// Identity is the verified identity of the connection a hook call is about.
// Claims is the connection's own map, shared: a Go hook must not modify it.
type Identity struct {
	User     string         `json:"user"`
	ConnID   string         `json:"conn_id"`
	ClientIP string         `json:"client_ip,omitempty"`
	Claims   map[string]any `json:"claims,omitempty"`
}

// ConnectEvent asks whether an authenticated connection may proceed.
type ConnectEvent struct {
	Identity
	Tier string `json:"tier"`
}

// ConnectReply answers a ConnectEvent.
type ConnectReply struct {
	Allow  bool   `json:"allow"`
	Reason string `json:"reason,omitempty"` // shown to the client when refused (sanitized)
	// Channels adds channel permissions ({"sub": [...], "pub": [...]}, patterns
	// as in the token's channel claim) for this connection.
	Channels *Channels `json:"channels,omitempty"`
	// Tier sets the connection's rate-limit tier ("" keeps it); it must be a
	// configured tier.
	Tier string `json:"tier,omitempty"`
}

// Channels are channel permission patterns.
type Channels struct {
	Sub []string `json:"sub,omitempty"`
	Pub []string `json:"pub,omitempty"`
}

// SubscribeEvent asks whether a connection may subscribe to a channel.
type SubscribeEvent struct {
	Identity
	Channel string `json:"channel"`
}

// SubscribeReply answers a SubscribeEvent.
type SubscribeReply struct {
	Allow  bool   `json:"allow"`
	Reason string `json:"reason,omitempty"`
}

// PublishEvent asks whether a publication may be broadcast.
type PublishEvent struct {
	Identity
	Channel string `json:"channel"`
	Payload []byte `json:"-"` // sent as raw JSON "payload"
}

// PublishReply answers a PublishEvent.
type PublishReply struct {
	Allow  bool   `json:"allow"`
	Reason string `json:"reason,omitempty"`
	// Payload, when set, replaces the publication's payload (valid JSON).
	Payload []byte `json:"-"`
}

// Backend answers one hook call; ev is a *ConnectEvent, *SubscribeEvent or
// *PublishEvent and out the matching *…Reply.
type Backend interface {
	Call(ctx context.Context, kind string, ev, out any) error
}

// Hook is one protected hook. Its methods are safe for concurrent use.
type Hook struct {
	kind    string
	opts    Options
	backend Backend
	sem     chan struct{}

	mu        sync.Mutex
	failures  int
	openUntil time.Time
	trial     bool // a half-open trial call is in flight
}

// New wraps b for hooks of kind with opts' protections.
func New(kind string, b Backend, opts Options) (*Hook, error) {
	switch kind {
	case KindConnect, KindSubscribe, KindPublish:
	default:
		return nil, fmt.Errorf("hook: unknown kind %q", kind)
	}
	if b == nil {
		return nil, errors.New("hook: nil backend")
	}
	o := opts.withDefaults()
	return &Hook{kind: kind, opts: o, backend: b, sem: make(chan struct{}, o.MaxConcurrency)}, nil
}

// Kind is the hook's kind.
func (h *Hook) Kind() string { return h.kind }

// FailOpen reports the failure policy: true lets requests through when the
// backend gives no usable answer.
func (h *Hook) FailOpen() bool { return h.opts.FailOpen }

// Connect calls a connect hook.
func (h *Hook) Connect(ctx context.Context, ev ConnectEvent) (ConnectReply, error) {
	return callFor[ConnectReply](ctx, h, &ev)
}

// Subscribe calls a subscribe hook.
func (h *Hook) Subscribe(ctx context.Context, ev SubscribeEvent) (SubscribeReply, error) {
	return callFor[SubscribeReply](ctx, h, &ev)
}

// Publish calls a publish hook.
func (h *Hook) Publish(ctx context.Context, ev PublishEvent) (PublishReply, error) {
	return callFor[PublishReply](ctx, h, &ev)
}

// callFor calls the hook with ev and decodes its reply into an R, which then
// checks and cleans itself (validate).
func callFor[R any, P interface {
	*R
	validate() error
}](ctx context.Context, h *Hook, ev any) (R, error) {
	var r R
	err := h.call(ctx, ev, &r)
	if err == nil {
		err = P(&r).validate()
	}
	return r, err
}

func (r *SubscribeReply) validate() error {
	r.Reason = SanitizeReason(r.Reason)
	return nil
}

func (r *PublishReply) validate() error {
	r.Reason = SanitizeReason(r.Reason)
	return nil
}

func (h *Hook) call(ctx context.Context, ev, out any) error {
	trial, err := h.admit(time.Now())
	if err != nil {
		return err
	}
	select {
	case h.sem <- struct{}{}:
	default:
		h.release(trial)
		return ErrBusy
	}
	cctx, cancel := context.WithTimeout(ctx, h.opts.Timeout)
	err = h.backend.Call(cctx, h.kind, ev, out)
	timedOut := cctx.Err() == context.DeadlineExceeded && ctx.Err() == nil
	cancel()
	<-h.sem
	if err != nil && timedOut {
		err = fmt.Errorf("%w after %v: %w", ErrTimeout, h.opts.Timeout, err)
	}
	// The caller's own context ending (the client left) says nothing about the
	// backend's health: not recorded.
	if ctx.Err() != nil {
		h.release(trial)
		return err
	}
	h.record(trial, err == nil, time.Now())
	return err
}

// admit reports whether a call may go to the backend now.
func (h *Hook) admit(now time.Time) (trial bool, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failures < h.opts.Breaker.Failures {
		return false, nil
	}
	if now.Before(h.openUntil) || h.trial {
		return false, ErrOpen
	}
	h.trial = true // half open: one call decides
	return true, nil
}

func (h *Hook) release(trial bool) {
	if trial {
		h.mu.Lock()
		h.trial = false
		h.mu.Unlock()
	}
}

func (h *Hook) record(trial, ok bool, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if trial {
		h.trial = false
	}
	if ok {
		h.failures = 0
		return
	}
	h.failures++
	if h.failures >= h.opts.Breaker.Failures {
		h.openUntil = now.Add(h.opts.Breaker.Cooldown)
	}
}

// State is "closed", "open" or "half_open", for logs and tests.
func (h *Hook) State() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.failures < h.opts.Breaker.Failures:
		return "closed"
	case time.Now().Before(h.openUntil) || h.trial:
		return "open"
	default:
		return "half_open"
	}
}

func (r *ConnectReply) validate() error {
	r.Reason = SanitizeReason(r.Reason)
	if r.Tier != "" && !validToken(r.Tier) {
		return fmt.Errorf("%w: tier %q", ErrBadResponse, r.Tier)
	}
	if r.Channels != nil {
		if len(r.Channels.Sub)+len(r.Channels.Pub) > maxPatterns {
			return fmt.Errorf("%w: more than %d channel patterns", ErrBadResponse, maxPatterns)
		}
		for _, p := range append(append([]string(nil), r.Channels.Sub...), r.Channels.Pub...) {
			if p == "" || len(p) > 256 {
				return fmt.Errorf("%w: channel pattern length", ErrBadResponse)
			}
		}
	}
	return nil
}

const maxPatterns = 256

func validToken(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// SanitizeReason makes a backend's reason safe to show a client and to put in
// a close frame: printable ASCII only (others become '?'), at most
// MaxReasonLen bytes (a close frame's reason has 123).
func SanitizeReason(s string) string {
	if len(s) > MaxReasonLen {
		s = s[:MaxReasonLen]
	}
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			b[i] = '?'
		}
	}
	return string(b)
}

// Outcome names a failed call's cause for metrics: timeout, busy, open,
// bad_response or error.
func Outcome(err error) string {
	switch {
	case errors.Is(err, ErrTimeout):
		return "timeout"
	case errors.Is(err, ErrBusy):
		return "busy"
	case errors.Is(err, ErrOpen):
		return "open"
	case errors.Is(err, ErrBadResponse):
		return "bad_response"
	}
	return "error"
}
