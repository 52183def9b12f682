package redis

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/wsgate/wsgate/internal/limit"
)

// gcraScript takes between ARGV[4] ("need") and ARGV[3] ("want") tokens from the
// GCRA bucket at KEYS[1] in one atomic step, as many as are available, using
// Redis' clock. Times are microseconds (exact in a Lua double until 2255).
// ARGV[1] is µs per token, ARGV[2] the burst. It returns {granted, retry µs}:
// granted 0 means refused, and retry says when need tokens will be available.
// The key expires when the bucket is full again, so idle keys cost nothing.
var gcraScript = goredis.NewScript(`
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local need = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tat < now then tat = now end
local window = burst * interval
local avail = math.floor((now + window - tat) / interval + 1e-9)
if avail > burst then avail = burst end
if avail < need then
  return {0, math.ceil(tat + need * interval - window - now)}
end
local grant = want
if grant > avail then grant = avail end
local newtat = math.ceil(tat + grant * interval)
redis.call('SET', KEYS[1], string.format('%.0f', newtat), 'PX', math.floor((newtat - now) / 1000) + 1)
return {grant, 0}
`)

// Defaults for LimiterOptions.
const (
	DefaultLeaseFraction = 0.1
	DefaultLeaseMaxAge   = 500 * time.Millisecond
	DefaultRetryInterval = time.Second
	DefaultMaxLeaseKeys  = 100_000
	DefaultCallTimeout   = 300 * time.Millisecond
)

// Lease bounds: a lease carries at most maxLease tokens, and none is taken unless it
// saves at least minLeaseExtra later round trips.
const (
	maxLease      = 64
	minLeaseExtra = 3
	// maxLeaseWaits bounds how many refills a request waits for before it asks
	// Redis itself.
	maxLeaseWaits = 8
)

// DefaultLocalPrefixes are the limiter keys kept node-local by default: the
// pipeline's per-connection budgets ("pl:c:"), since a connection lives on one
// node and sharing its budget would only cost round trips.
var DefaultLocalPrefixes = []string{"pl:c:"}

// LimiterOptions configures Client.Limiter.
type LimiterOptions struct {
	// FailOpen makes Allow answer from node-local limits (a limit.Memory with the
	// same Limit) while Redis cannot answer: each node then enforces the limit on
	// its own, so the cluster-wide budget is at most N times the limit. When
	// false, Allow refuses with the error and the caller's fail-closed policy
	// applies. After an error, Allow does not ask Redis again until a background
	// probe (PING, at most every RetryInterval, default 1s) got an answer: an
	// outage or a stall costs no wait per message, and no message waits for
	// the probe.
	FailOpen      bool
	RetryInterval time.Duration
	// CallTimeout bounds one Allow's wait for Redis (default 300ms, at most the
	// client's ReadTimeout): Allow runs on the per-message path, so a stalled
	// Redis costs one message this long, then the probe takes over.
	CallTimeout time.Duration
	// LocalPrefixes are key prefixes answered by the node-local limiter only
	// (default DefaultLocalPrefixes). Set to an empty non-nil slice to share all.
	LocalPrefixes []string
	// LeaseFraction > 0 turns on local budgets: a node takes
	// max(cost, LeaseFraction*Burst) tokens from Redis at once and spends them
	// locally, so most messages cost no round trip. Accuracy trade-off: the
	// cluster never spends more than Redis granted, but a node may hold up to one
	// lease of tokens other nodes cannot use (stricter), and spends a lease for at
	// most LeaseMaxAge (default 500ms) after taking it, unused tokens being
	// forfeited (never refunded). 0 uses DefaultLeaseFraction (0.1); negative
	// disables leases (one round trip per Allow, exact GCRA).
	LeaseFraction float64
	LeaseMaxAge   time.Duration
	// MaxLeaseKeys bounds the keys holding a local lease (default 100000); a full
	// shard forfeits an arbitrary lease.
	MaxLeaseKeys int
}

func (o LimiterOptions) withDefaults() LimiterOptions {
	if o.RetryInterval <= 0 {
		o.RetryInterval = DefaultRetryInterval
	}
	if o.LocalPrefixes == nil {
		o.LocalPrefixes = DefaultLocalPrefixes
	}
	if o.LeaseFraction == 0 {
		o.LeaseFraction = DefaultLeaseFraction
	}
	if o.LeaseFraction > 1 {
		o.LeaseFraction = 1
	}
	if o.LeaseMaxAge <= 0 {
		o.LeaseMaxAge = DefaultLeaseMaxAge
	}
	if o.MaxLeaseKeys <= 0 {
		o.MaxLeaseKeys = DefaultMaxLeaseKeys
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = DefaultCallTimeout
	}
	return o
}

// LimiterStats counts what Allow did, for metrics and benchmarks.
type LimiterStats struct {
	RedisCalls uint64 // scripts run
	LeaseHits  uint64 // answered from a local lease, no round trip
	Local      uint64 // answered by the node-local limiter (LocalPrefixes)
	Fallbacks  uint64 // answered locally because Redis could not
	Errors     uint64 // Redis errors
}

// Limiter is a limit.Limiter shared by all nodes through Redis (GCRA, one Lua
// script), with optional local budgets and a local fallback.
type Limiter struct {
	rdb   goredis.UniversalClient
	c     *Client
	opts  LimiterOptions
	local *limit.Memory

	seed   maphash.Seed
	shards [leaseShards]leaseShard
	per    int

	down  *breaker // open after an error until a probe succeeds
	stats struct{ redis, hits, local, fallbacks, errors atomic.Uint64 }
}

const leaseShards = 64

type leaseShard struct {
	mu sync.Mutex
	m  map[string]lease
	// fetching holds, per key, a channel closed when the Redis call that will
	// refill its lease returns: concurrent misses wait for it instead of each
	// taking (and forfeiting) a lease of their own.
	fetching map[string]chan struct{}
}

type lease struct {
	tokens  int
	expires int64 // unix ns
	// A refusal is remembered until Redis said the refused cost could pass:
	// until then Redis would refuse that cost (or more) again, whatever other
	// nodes do, so answering locally is exact and a flooding client costs no
	// round trip per message.
	deniedUntil int64
	deniedCost  int
}

// Limiter returns a new shared limiter. Its local limiter is closed with the
// Client.
func (c *Client) Limiter(opts LimiterOptions) *Limiter {
	opts = opts.withDefaults()
	l := &Limiter{
		rdb:   c.rdb,
		c:     c,
		opts:  opts,
		local: limit.NewMemory(limit.MemoryOptions{}),
		seed:  maphash.MakeSeed(),
		per:   (opts.MaxLeaseKeys + leaseShards - 1) / leaseShards,
	}
	l.down = newBreaker(c.opts.Logger, func(ctx context.Context) error { return c.rdb.Ping(ctx).Err() },
		c.opts.DialTimeout+c.opts.ReadTimeout, opts.RetryInterval)
	for i := range l.shards {
		l.shards[i].m = make(map[string]lease)
		l.shards[i].fetching = make(map[string]chan struct{})
	}
	stop := func() {
		l.down.close()
		_ = l.local.Close()
	}
	if !c.onClose(stop) {
		stop()
	}
	return l
}

// Stats returns counters since the limiter was made.
func (l *Limiter) Stats() LimiterStats {
	return LimiterStats{
		RedisCalls: l.stats.redis.Load(), LeaseHits: l.stats.hits.Load(), Local: l.stats.local.Load(),
		Fallbacks: l.stats.fallbacks.Load(), Errors: l.stats.errors.Load(),
	}
}

// Healthy reports whether Allow asks Redis: false from an error until a probe
// got an answer.
func (l *Limiter) Healthy() bool { return !l.down.Open() && !l.c.brk.Open() }

// Allow implements limit.Limiter with the same semantics as limit.Memory.
func (l *Limiter) Allow(ctx context.Context, key string, lim limit.Limit, cost int) (bool, time.Duration, error) {
	if !(lim.Rate > 0) || math.IsInf(lim.Rate, 1) || cost <= 0 {
		return true, 0, nil
	}
	burst := max(lim.Burst, 1)
	if cost > burst {
		return false, durationOf(float64(burst) / lim.Rate), nil
	}
	for _, p := range l.opts.LocalPrefixes {
		if strings.HasPrefix(key, p) {
			l.stats.local.Add(1)
			return l.local.Allow(ctx, key, lim, cost)
		}
	}
	if err := ctx.Err(); err != nil {
		return false, 0, fmt.Errorf("redis limiter: %w", err)
	}
	if l.down.Open() || l.c.brk.Open() {
		return l.fallback(ctx, key, lim, cost, errRedisDown)
	}
	now := time.Now().UnixNano()
	leasing := l.opts.LeaseFraction > 0
	var sh *leaseShard
	if leasing {
		sh = &l.shards[maphash.String(l.seed, key)%leaseShards]
		for waits := 0; ; waits++ {
			sh.mu.Lock()
			if ls, ok := sh.m[key]; ok {
				if ls.expires > now && ls.tokens >= cost {
					ls.tokens -= cost
					sh.m[key] = ls
					sh.mu.Unlock()
					l.stats.hits.Add(1)
					return true, 0, nil
				}
				if ls.deniedUntil > now && cost >= ls.deniedCost {
					sh.mu.Unlock()
					l.stats.hits.Add(1)
					return false, time.Duration(ls.deniedUntil - now), nil
				}
			}
			ch, busy := sh.fetching[key]
			if !busy || waits >= maxLeaseWaits {
				if !busy {
					done := make(chan struct{})
					sh.fetching[key] = done
					defer func() {
						sh.mu.Lock()
						delete(sh.fetching, key)
						sh.mu.Unlock()
						close(done)
					}()
				}
				sh.mu.Unlock()
				break
			}
			sh.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
				return false, 0, fmt.Errorf("redis limiter: %w", ctx.Err())
			}
			now = time.Now().UnixNano()
		}
	}
	want := cost
	if leasing {
		// A lease is capped (maxLease) and skipped when it would be tiny: concurrent
		// misses on one key each take a lease, and what a lease does not spend
		// within LeaseMaxAge is forfeited, so large or tiny leases starve bursty
		// keys (a handshake burst at a node refused far below its rate).
		if extra := min(int(l.opts.LeaseFraction*float64(burst)), maxLease) - cost; extra >= minLeaseExtra {
			want = cost + extra
		}
	}
	// µs per token, clamped so that Lua arithmetic stays finite for absurd rates.
	interval := min(max(1e6/lim.Rate, 1e-6), 1e15)
	l.stats.redis.Add(1)
	cctx, cancel := context.WithTimeout(ctx, l.opts.CallTimeout)
	res, err := gcraScript.Run(cctx, l.rdb, []string{l.c.key("rl:", key)},
		interval, burst, want, cost).Int64Slice()
	cancel()
	if err != nil || len(res) != 2 {
		if err == nil {
			err = fmt.Errorf("unexpected reply %v", res)
		}
		if ctx.Err() != nil { // the caller gave up: not Redis' fault
			return false, 0, fmt.Errorf("redis limiter: %w", ctx.Err())
		}
		l.stats.errors.Add(1)
		l.c.brk.observe(err)
		l.down.trip(err, "redis limiter: Redis did not answer in time; limits answered locally until a probe succeeds")
		return l.fallback(ctx, key, lim, cost, err)
	}
	granted, retry := int(res[0]), max(time.Duration(res[1])*time.Microsecond, time.Microsecond)
	if leasing {
		l.remember(sh, key, cost, granted, retry)
	}
	if granted < cost {
		return false, retry, nil
	}
	return true, 0, nil
}

// remember records a grant's surplus as a local lease, or a refusal.
func (l *Limiter) remember(sh *leaseShard, key string, cost, granted int, retry time.Duration) {
	if granted == cost {
		return
	}
	now := time.Now().UnixNano()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	ls, ok := sh.m[key]
	if !ok && len(sh.m) >= l.per {
		n := 0
		for k, v := range sh.m { // drop stale entries among a few, else one live lease
			if v.expires <= now && v.deniedUntil <= now || n == 0 {
				delete(sh.m, k)
			}
			if n++; n >= 8 {
				break
			}
		}
	}
	if ls.expires <= now {
		ls.tokens = 0
	}
	if granted < cost {
		ls.deniedUntil, ls.deniedCost = now+int64(retry), cost
	} else {
		ls.tokens += granted - cost
		ls.expires = now + int64(l.opts.LeaseMaxAge)
		ls.deniedUntil = 0
	}
	sh.m[key] = ls
}

var errRedisDown = errors.New("redis limiter: redis unavailable (a background probe is retrying)")

func (l *Limiter) fallback(ctx context.Context, key string, lim limit.Limit, cost int, cause error) (bool, time.Duration, error) {
	if l.opts.FailOpen {
		l.stats.fallbacks.Add(1)
		return l.local.Allow(ctx, "fb:"+key, lim, cost)
	}
	return false, l.opts.RetryInterval, fmt.Errorf("redis limiter: %w", cause)
}

// durationOf converts seconds to a Duration, saturating instead of overflowing.
func durationOf(sec float64) time.Duration {
	if !(sec < float64(math.MaxInt64)/1e9) {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(math.Ceil(sec * 1e9))
}

// Interface guard.
var _ limit.Limiter = (*Limiter)(nil)
