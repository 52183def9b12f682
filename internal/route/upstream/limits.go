package upstream

import (
	"context"
	"time"

	"github.com/wsgate/wsgate/internal/state/limit"
)

// RawTier is one set of budgets for raw routes, the same six as the JSON
// pipeline's tiers. A zero limit disables that check.
type RawTier struct {
	Messages, Bytes         limit.Limit
	UserMessages, UserBytes limit.Limit
	IPMessages, IPBytes     limit.Limit
}

// RawLimiter applies message and byte rate limits to routes in raw validation
// mode, where the JSON pipeline (and its rate stage) does not run. It uses the
// pipeline's key layout and prefix ("pl:" by default), so a user's and an IP's
// budgets are shared between the built-in core, JSON routes and raw routes; the
// per-connection budget is per connection as everywhere.
type RawLimiter struct {
	Limiter limit.Limiter
	// Tiers by name; an unknown or empty tier uses "default"; no "default": no limits.
	Tiers map[string]RawTier
	// FailOpen lets messages through when the Limiter errs; false refuses them.
	FailOpen bool
	// KeyPrefix defaults to "pl:", the pipeline's.
	KeyPrefix string
}

// RawConn identifies the connection a raw message came from.
type RawConn struct{ ConnID, User, IP, Tier string }

// Allow charges one message of size bytes to the connection's, user's and IP's
// budgets, stopping at the first refusal. ok=false with err=nil is a rate limit;
// err is the store failing (refused unless FailOpen).
func (r *RawLimiter) Allow(ctx context.Context, c RawConn, size int) (ok bool, retry time.Duration, err error) {
	if r == nil || r.Limiter == nil {
		return true, 0, nil
	}
	t, found := r.Tiers[c.Tier]
	if !found {
		if t, found = r.Tiers["default"]; !found {
			return true, 0, nil
		}
	}
	p := r.KeyPrefix
	if p == "" {
		p = "pl:"
	}
	checks := [...]struct {
		key  string
		l    limit.Limit
		cost int
	}{
		{p + "c:m:" + c.ConnID, t.Messages, 1}, {p + "c:b:" + c.ConnID, t.Bytes, size},
		{userKey(p, "u:m:", c.User), t.UserMessages, 1}, {userKey(p, "u:b:", c.User), t.UserBytes, size},
		{userKey(p, "i:m:", c.IP), t.IPMessages, 1}, {userKey(p, "i:b:", c.IP), t.IPBytes, size},
	}
	for _, ch := range checks {
		if ch.key == "" || ch.l.Rate <= 0 {
			continue
		}
		ok, retry, err := r.Limiter.Allow(ctx, ch.key, ch.l, ch.cost)
		if err != nil {
			if r.FailOpen {
				continue
			}
			return false, time.Second, err
		}
		if !ok {
			return false, retry, nil
		}
	}
	return true, 0, nil
}

func userKey(prefix, kind, id string) string {
	if id == "" {
		return ""
	}
	return prefix + kind + id
}
