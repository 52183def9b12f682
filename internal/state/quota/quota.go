package quota

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrExceeded is wrapped by every quota refusal, so callers can map all of them to
// one response (HTTP 429 / close 1013) with errors.Is, or tell them apart with the
// specific sentinels below.
var ErrExceeded = errors.New("connection quota exceeded")

// Quota refusals; each satisfies errors.Is(err, ErrExceeded).
var (
	ErrGlobalQuota = fmt.Errorf("%w: global", ErrExceeded)
	ErrIPQuota     = fmt.Errorf("%w: per IP", ErrExceeded)
	ErrUserQuota   = fmt.Errorf("%w: per user", ErrExceeded)
)

// GlobalKey is the Store key of the global count.
const GlobalKey = "global"

// IPKey returns the Store key counting connections from ip.
func IPKey(ip string) string { return "ip:" + ip }

// UserKey returns the Store key counting connections of user.
func UserKey(user string) string { return "user:" + user }

// releaseTimeout bounds a Release against a remote Store; the memory store ignores it.
const releaseTimeout = 5 * time.Second

// Limits are the connection caps. Zero (or negative) means unlimited.
type Limits struct {
	PerIP   int
	PerUser int
	Global  int
}

// Validate reports negative limits, which are almost certainly a config mistake
// (Quotas itself treats them as unlimited).
func (l Limits) Validate() error {
	if l.PerIP < 0 || l.PerUser < 0 || l.Global < 0 {
		return fmt.Errorf("quota limits must not be negative (per_ip=%d, per_user=%d, global=%d)", l.PerIP, l.PerUser, l.Global)
	}
	return nil
}

// Quotas enforces Limits over a Store. It is safe for concurrent use.
type Quotas struct {
	store  Store
	limits atomic.Pointer[Limits]
}

// New returns Quotas enforcing l over store.
func New(store Store, l Limits) *Quotas {
	q := &Quotas{store: store}
	q.SetLimits(l)
	return q
}

// SetLimits replaces the limits atomically (hot reload). Live connections keep their
// leases; a lowered cap only refuses new connections until the count falls below it.
func (q *Quotas) SetLimits(l Limits) {
	q.limits.Store(&l)
}

// Limits returns the limits in force.
func (q *Quotas) Limits() Limits { return *q.limits.Load() }

// Acquire takes one slot of the global, per-IP and per-user counts, in that fixed
// order, and rolls back what it took if any of them refuses or fails. The global
// count is taken first so that a full server refuses cheaply with ErrGlobalQuota.
//
// Every connection is counted, even under an unlimited cap, so that a hot reload
// that introduces a cap sees the true count. An empty user (anonymous connection)
// is not counted per user; the IP is always counted, even when empty, so a caller
// bug that loses the address shares one budget instead of escaping the cap.
//
// On refusal the error wraps ErrGlobalQuota, ErrIPQuota or ErrUserQuota; any other
// error comes from the Store.
func (q *Quotas) Acquire(ctx context.Context, ip, user string) (*Lease, error) {
	lim := q.limits.Load()
	lease := &Lease{store: q.store, ip: ip, user: user}
	steps := [3]struct {
		max int
		err error
	}{
		{lim.Global, ErrGlobalQuota},
		{lim.PerIP, ErrIPQuota},
		{lim.PerUser, ErrUserQuota},
	}
	for i, st := range steps {
		if i == 2 && user == "" {
			break
		}
		ok, err := q.store.Acquire(ctx, lease.key(i), st.max)
		if err != nil {
			lease.release(context.WithoutCancel(ctx))
			return nil, fmt.Errorf("acquire connection quota: %w", err)
		}
		if !ok {
			lease.release(context.WithoutCancel(ctx))
			return nil, st.err
		}
		lease.n++
	}
	return lease, nil
}

// Lease is one connection's hold on its quotas. It keeps the ip and user it
// was acquired for (strings the connection holds anyway) rather than the three
// Store keys, which are made again at release: every open connection has a
// Lease, and the keys would be two more allocations per connection.
type Lease struct {
	store    Store
	ip, user string
	n        uint8 // keys taken: key(0) .. key(n-1)
	once     sync.Once
}

// key returns the Store key of step i: the global, the IP's, the user's count.
func (l *Lease) key(i int) string {
	switch i {
	case 0:
		return GlobalKey
	case 1:
		return IPKey(l.ip)
	default:
		return UserKey(l.user)
	}
}

// Release gives the slots back. It is idempotent and safe to call concurrently from
// every path on which a connection ends; only the first call releases. A nil Lease
// is a no-op. Store errors are logged: the slot of a remote store is then
// reclaimed by that store's own lease expiry.
func (l *Lease) Release() {
	if l == nil {
		return
	}
	l.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
		defer cancel()
		l.release(ctx)
	})
}

// release returns the acquired keys in reverse order of acquisition.
func (l *Lease) release(ctx context.Context) {
	for i := int(l.n) - 1; i >= 0; i-- {
		key := l.key(i)
		if err := l.store.Release(ctx, key); err != nil {
			// Log the kind of key only: addresses and user names do not belong in logs.
			scope, _, _ := strings.Cut(key, ":")
			slog.Warn("quota release failed", "scope", scope, "err", err)
		}
	}
	l.n = 0
}
