package redis

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/wsgate/wsgate/internal/defaults"
	"github.com/wsgate/wsgate/internal/state/limit"
	"github.com/wsgate/wsgate/internal/state/shardmap"
)

// gcraScript takes between ARGV[4] ("need") and ARGV[3] ("want") tokens from the
// GCRA bucket at KEYS[1] in one atomic step, as many as are available, using
// Redis' clock. Times are microseconds (exact in a Lua double until 2255).
// ARGV[1] is µs per token, ARGV[2] the burst. It returns {granted, retry µs}:
// granted 0 means refused, and retry says when need tokens will be available.
// The key expires when the bucket is full again, so idle keys cost nothing.
// With want == need it is limit.GCRA in µs on Redis' clock; TestLimiterConformance
// holds it to the same table (limittest.GCRACases) as limit.Memory.
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
	DefaultSlowRefill    = 50 * time.Millisecond
)

// Lease bounds: a lease carries at most maxLease messages' worth of tokens
// (maxLease times the cost of the call that asked for it).
const maxLease = 64

// Background refill: refillWorkers goroutines per limiter ask Redis for leases
// (bounded concurrency to Redis); at most refillQueue refills wait, a refill
// that finds the queue full is asked for again by the next call on its key.
const (
	refillWorkers = 4
	refillQueue   = 1024
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
	// LeaseFraction > 0 turns on local budgets (leases), and takes Redis off the
	// per-message path: Allow never waits for Redis. A node spends a lease of
	// min(LeaseFraction*Burst, 64*cost) tokens (at least cost) locally, and a
	// background refill (refillWorkers goroutines owned by the limiter) takes the
	// next lease when the current one is half spent. A call that finds no lease
	// (the first on a key, or a burst faster than a refill) is answered by the
	// node-local limiter with the same Limit and charged to Redis by the next
	// refill ("credit"): over any period longer than a round trip the cluster
	// spends what Redis granted, but a node may admit up to one local burst
	// before Redis' answer arrives (one call per node and key when calls are
	// slower than a round trip). A lease is spent for at most LeaseMaxAge
	// (default 500ms); unused tokens are forfeited (never refunded), so a node
	// may hold up to one lease other nodes cannot use (stricter). 0 uses
	// DefaultLeaseFraction (0.1); negative disables leases: one synchronous
	// round trip per Allow (at most CallTimeout), exact GCRA.
	LeaseFraction float64
	LeaseMaxAge   time.Duration
	// MaxLeaseKeys bounds the keys holding a local lease (default 100000); a full
	// shard forfeits an arbitrary lease.
	MaxLeaseKeys int
	// SlowRefill (default 50ms, at most CallTimeout) is how late a lease
	// refill may be before a key that has spent its lease and its credit treats
	// Redis as stalled: it is then answered as in an outage (FailOpen) and a
	// probe takes over, instead of being refused until CallTimeout.
	SlowRefill time.Duration
}

func (o LimiterOptions) withDefaults() LimiterOptions {
	defaults.Positive(&o.RetryInterval, DefaultRetryInterval)
	if o.LocalPrefixes == nil {
		o.LocalPrefixes = DefaultLocalPrefixes
	}
	o.LeaseFraction = cmp.Or(o.LeaseFraction, DefaultLeaseFraction)
	if o.LeaseFraction > 1 {
		o.LeaseFraction = 1
	}
	defaults.Positive(&o.LeaseMaxAge, DefaultLeaseMaxAge)
	defaults.Positive(&o.MaxLeaseKeys, DefaultMaxLeaseKeys)
	defaults.Positive(&o.CallTimeout, DefaultCallTimeout)
	defaults.Positive(&o.SlowRefill, DefaultSlowRefill)
	o.SlowRefill = min(o.SlowRefill, o.CallTimeout)
	return o
}

// LimiterStats counts what Allow did, for metrics and benchmarks.
type LimiterStats struct {
	RedisCalls uint64 // scripts run (refills included)
	Credits    uint64 // answered on credit from the node-local limiter, no lease at hand
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

	leases *shardmap.Map[string, lease]

	down  *breaker // open after an error until a probe succeeds
	stats struct{ redis, hits, local, fallbacks, errors, credits atomic.Uint64 }

	// Background refill (leasing only): Allow queues, workers ask Redis.
	refills  chan refillReq
	stop     chan struct{}
	workers  sync.WaitGroup
	inflight sync.WaitGroup // queued or running refills (tests wait for it)
}

type refillReq struct {
	key  string
	lim  limit.Limit
	cost int
}

const leaseShards = 64

type leaseShard = shardmap.Shard[string, lease]

type lease struct {
	tokens  int
	expires int64 // unix ns
	// debt is what calls answered on credit spent and no refill charged yet
	// (at most Burst): the next refill takes it from Redis first.
	debt int
	// refilling: a refill of this key is queued or running (one at a time),
	// since refillStart (unix ns).
	refilling   bool
	refillStart int64
	done        chan struct{} // closed when the refill ends
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
		rdb:    c.rdb,
		c:      c,
		opts:   opts,
		local:  limit.NewMemory(limit.MemoryOptions{}),
		leases: shardmap.New[string, lease](shardmap.Options{MaxKeys: opts.MaxLeaseKeys, Shards: leaseShards}),
	}
	l.down = newBreaker(c.opts.Logger, func(ctx context.Context) error { return c.rdb.Ping(ctx).Err() },
		c.opts.DialTimeout+c.opts.ReadTimeout, opts.RetryInterval)
	l.stop = make(chan struct{})
	if opts.LeaseFraction > 0 {
		l.refills = make(chan refillReq, refillQueue)
		for range refillWorkers {
			l.workers.Go(l.refillLoop)
		}
	}
	var once sync.Once
	stop := func() {
		once.Do(func() { close(l.stop) })
		l.workers.Wait()
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
		RedisCalls: l.stats.redis.Load(), Credits: l.stats.credits.Load(), LeaseHits: l.stats.hits.Load(), Local: l.stats.local.Load(),
		Fallbacks: l.stats.fallbacks.Load(), Errors: l.stats.errors.Load(),
	}
}

// Healthy reports whether Allow asks Redis: false from an error until a probe
// got an answer.
func (l *Limiter) Healthy() bool { return !l.down.Open() && !l.c.brk.Open() }

// Allow implements limit.Limiter with the same semantics as limit.Memory.
func (l *Limiter) Allow(ctx context.Context, key string, lim limit.Limit, cost int) (bool, time.Duration, error) {
	if lim.Free(cost) {
		return true, 0, nil
	}
	if cost > max(lim.Burst, 1) {
		// Never allowed; limit.GCRA says so without a round trip, with the
		// same retryAfter as limit.Memory.
		ok, retry, _ := limit.GCRA(0, 0, lim, cost)
		return ok, retry, nil
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
	if l.opts.LeaseFraction > 0 {
		return l.allowLeased(ctx, key, lim, cost)
	}
	return l.allowExact(ctx, key, lim, cost)
}

// interval returns µs per token, clamped so that Lua arithmetic stays finite
// for absurd rates.
func interval(lim limit.Limit) float64 { return min(max(1e6/lim.Rate, 1e-6), 1e15) }

// allowExact asks Redis for cost tokens, waiting at most CallTimeout.
func (l *Limiter) allowExact(ctx context.Context, key string, lim limit.Limit, cost int) (bool, time.Duration, error) {
	burst := max(lim.Burst, 1)
	l.stats.redis.Add(1)
	cctx, cancel := context.WithTimeout(ctx, l.opts.CallTimeout)
	res, err := gcraScript.Run(cctx, l.rdb, []string{l.c.key("rl:", key)},
		interval(lim), burst, cost, cost).Int64Slice()
	cancel()
	if err != nil || len(res) != 2 {
		if err == nil {
			err = fmt.Errorf("unexpected reply %v", res)
		}
		if ctx.Err() != nil { // the caller gave up: not Redis' fault
			return false, 0, fmt.Errorf("redis limiter: %w", ctx.Err())
		}
		l.failed(err)
		return l.fallback(ctx, key, lim, cost, err)
	}
	if granted := int(res[0]); granted < cost {
		return false, max(time.Duration(res[1])*time.Microsecond, time.Microsecond), nil
	}
	return true, 0, nil
}

func (l *Limiter) failed(err error) {
	l.stats.errors.Add(1)
	l.c.brk.observe(err)
	l.down.trip(err, "redis limiter: Redis did not answer in time; limits answered locally until a probe succeeds")
}

// leaseSize is how many tokens a node takes from Redis at once for key.
func (l *Limiter) leaseSize(lim limit.Limit, cost int) int {
	burst := max(lim.Burst, 1)
	return min(max(int(l.opts.LeaseFraction*float64(burst)), cost), maxLease*cost, burst)
}

// allowLeased answers from the key's lease, from a remembered refusal, or on
// credit from the node-local limiter, without waiting for Redis; refills run in
// the background. Only a key that spent its lease and its credit within one
// refill waits for the refill in flight, at most SlowRefill in all: a later
// refill means Redis is stalled, and the call is answered as in an outage.
func (l *Limiter) allowLeased(ctx context.Context, key string, lim limit.Limit, cost int) (bool, time.Duration, error) {
	size := l.leaseSize(lim, cost)
	sh := l.leases.For(key)
	var deadline int64 // set by the first wait: the end of this call's SlowRefill
	for {
		if deadline != 0 && (l.down.Open() || l.c.brk.Open()) {
			return l.fallback(ctx, key, lim, cost, errRedisDown) // a refill failed
		}
		now := time.Now().UnixNano()
		sh.Lock()
		ls, ok := sh.Get(key)
		if !ok && sh.Full() {
			evictLocked(sh, now)
		}
		if ls.expires <= now {
			ls.tokens = 0
		}
		if ls.tokens >= cost {
			ls.tokens -= cost
			refill := 2*ls.tokens < size && l.startRefillLocked(&ls, now)
			sh.Set(key, ls)
			sh.Unlock()
			l.stats.hits.Add(1)
			if refill {
				l.queueRefill(sh, key, lim, cost)
			}
			return true, 0, nil
		}
		if ls.deniedUntil > now && cost >= ls.deniedCost {
			sh.Unlock()
			l.stats.hits.Add(1)
			return false, time.Duration(ls.deniedUntil - now), nil
		}
		refill := l.startRefillLocked(&ls, now)
		if ls.debt+cost <= size {
			// On credit (at most one lease unpaid): the node-local limiter
			// answers, the refill charges Redis. Its lock is a leaf: taking it
			// under the shard's keeps credit and debt in step.
			allowed, retry, _ := l.local.Allow(ctx, "fb:"+key, lim, cost)
			if allowed {
				ls.debt += cost
			}
			sh.Set(key, ls)
			sh.Unlock()
			l.stats.credits.Add(1)
			if refill {
				l.queueRefill(sh, key, lim, cost)
			}
			return allowed, retry, nil
		}
		sh.Set(key, ls)
		done := ls.done
		sh.Unlock()
		if refill {
			l.queueRefill(sh, key, lim, cost)
		}
		if deadline == 0 {
			deadline = ls.refillStart + int64(l.opts.SlowRefill)
		}
		if now >= deadline {
			if ls.refilling {
				l.down.trip(errSlowRefill, "redis limiter: a lease refill is late; limits answered locally until a probe succeeds")
				return l.fallback(ctx, key, lim, cost, errSlowRefill)
			}
			// Redis answers, but with fewer tokens than this key spends.
			return false, l.opts.SlowRefill, nil
		}
		t := time.NewTimer(time.Duration(deadline - now))
		select {
		case <-done:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false, 0, fmt.Errorf("redis limiter: %w", ctx.Err())
		}
		t.Stop()
	}
}

// startRefillLocked marks a refill of ls as started unless one is.
func (l *Limiter) startRefillLocked(ls *lease, now int64) bool {
	if ls.refilling {
		return false
	}
	ls.refilling, ls.refillStart, ls.done = true, now, make(chan struct{})
	return true
}

// endRefillLocked marks ls' refill as finished and wakes its waiters.
func endRefillLocked(ls *lease) {
	if ls.refilling {
		close(ls.done)
	}
	ls.refilling, ls.done = false, nil
}

// queueRefill hands a refill to the workers without waiting; when the queue is
// full it is dropped and the next call on key asks again.
func (l *Limiter) queueRefill(sh *leaseShard, key string, lim limit.Limit, cost int) {
	l.inflight.Add(1)
	select {
	case l.refills <- refillReq{key: key, lim: lim, cost: cost}:
		return
	case <-l.stop:
	default:
	}
	l.inflight.Done()
	sh.Lock()
	if ls, ok := sh.Get(key); ok {
		endRefillLocked(&ls)
		sh.Set(key, ls)
	}
	sh.Unlock()
}

// refillLoop is one refill worker; it runs until the limiter is closed.
func (l *Limiter) refillLoop() {
	for {
		select {
		case <-l.stop:
			// Drop what is still queued: nobody waits for it.
			for {
				select {
				case <-l.refills:
					l.inflight.Done()
				default:
					return
				}
			}
		case r := <-l.refills:
			l.refill(r)
			l.inflight.Done()
		}
	}
}

// refill takes the key's debt plus one lease from Redis (as much as is
// available, at least one token) and records the result.
func (l *Limiter) refill(r refillReq) {
	sh := l.leases.For(r.key)
	burst := max(r.lim.Burst, 1)
	sh.Lock()
	cur, _ := sh.Get(r.key)
	debt := cur.debt
	sh.Unlock()
	want := min(debt+l.leaseSize(r.lim, r.cost), burst)
	var (
		res []int64
		err error
	)
	if l.down.Open() || l.c.brk.Open() {
		err = errRedisDown
	} else {
		l.stats.redis.Add(1)
		ctx, cancel := context.WithTimeout(context.Background(), l.opts.CallTimeout)
		res, err = gcraScript.Run(ctx, l.rdb, []string{l.c.key("rl:", r.key)},
			interval(r.lim), burst, want, 1).Int64Slice()
		cancel()
		if err == nil && len(res) != 2 {
			err = fmt.Errorf("unexpected reply %v", res)
		}
		if err != nil {
			l.failed(err)
		}
	}
	now := time.Now().UnixNano()
	sh.Lock()
	defer sh.Unlock()
	ls, found := sh.Get(r.key) // re-created if evicted meanwhile: the grant is not lost
	endRefillLocked(&ls)
	if err == nil {
		granted := int(res[0])
		if granted == 0 {
			ls.deniedUntil = now + int64(max(time.Duration(res[1])*time.Microsecond, time.Microsecond))
			ls.deniedCost = 1
		} else {
			pay := min(granted, ls.debt)
			ls.debt -= pay
			if ls.expires <= now {
				ls.tokens = 0
			}
			ls.tokens += granted - pay
			ls.expires = now + int64(l.opts.LeaseMaxAge)
			ls.deniedUntil = 0
		}
	}
	if !found && sh.Full() {
		evictLocked(sh, now)
	}
	sh.Set(r.key, ls)
}

// evictLocked drops stale entries among a few, else one live one, from a full
// shard.
func evictLocked(sh *leaseShard, now int64) {
	n := 0
	for k, v := range sh.All() {
		if v.expires <= now && v.deniedUntil <= now && !v.refilling || n == 0 {
			endRefillLocked(&v) // its waiters look again; the refill re-creates it
			sh.Delete(k)
		}
		if n++; n >= 8 {
			break
		}
	}
}

var errSlowRefill = errors.New("redis limiter: a lease refill is late (Redis stalled?)")

var errRedisDown = errors.New("redis limiter: redis unavailable (a background probe is retrying)")

func (l *Limiter) fallback(ctx context.Context, key string, lim limit.Limit, cost int, cause error) (bool, time.Duration, error) {
	if l.opts.FailOpen {
		l.stats.fallbacks.Add(1)
		return l.local.Allow(ctx, "fb:"+key, lim, cost)
	}
	return false, l.opts.RetryInterval, fmt.Errorf("redis limiter: %w", cause)
}

// Interface guard.
var _ limit.Limiter = (*Limiter)(nil)
