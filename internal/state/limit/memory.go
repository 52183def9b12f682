package limit

import (
	"cmp"
	"context"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/internal/defaults"
	"github.com/wsgate/wsgate/internal/state/shardmap"
)

// Defaults for MemoryOptions.
const (
	DefaultMaxKeys       = 1_000_000
	DefaultSweepInterval = time.Minute

	maxShards = 64
	// minPerShard keeps small limiters from being split into shards so tiny that
	// rounding MaxKeys up per shard would loosen the bound noticeably.
	minPerShard = 64
	// evictSample is how many entries a full shard looks at to pick a victim.
	evictSample = 8
)

// MemoryOptions configures NewMemory. The zero value is usable.
type MemoryOptions struct {
	// MaxKeys bounds the number of keys held at once (default 1,000,000). The bound is
	// enforced per shard, so the real ceiling is MaxKeys rounded up to a multiple of
	// the shard count (at most 63 more). When a shard is full, an expired key is
	// evicted first, else the sampled key closest to expiry: an evicted key simply
	// starts again with a full burst, so eviction errs towards permissiveness for the
	// keys that were closest to full anyway, and memory never grows under a spray of
	// new keys.
	MaxKeys int
	// SweepInterval is how often an owned goroutine drops keys whose theoretical
	// arrival time has passed (default 1m). Negative disables the sweeper; full shards
	// then still evict on insert.
	SweepInterval time.Duration
	// Now replaces time.Now, for tests. It should be monotonic.
	Now func() time.Time
}

// Memory is a sharded, bounded, in-memory GCRA Limiter. It is safe for concurrent use.
//
// Each key costs one map entry (a 64-bit seeded hash of the key and an int64 TAT),
// not the key string: a seeded 64-bit hash makes accidental sharing of a budget
// between two keys negligible (~n²/2⁶⁵) and impossible to aim for.
type Memory struct {
	keys *shardmap.Map[uint64, int64] // hashed key -> theoretical arrival time, ns since base
	now  func() time.Time
	base time.Time
	// wallClock: now is time.Now, so a caller's time.Now reading can stand
	// in for it (AllowEachAt).
	wallClock bool

	evictions atomic.Uint64
}

// NewMemory returns a Memory. If opts.SweepInterval is not negative, it starts a
// sweeper goroutine that Close stops.
func NewMemory(opts MemoryOptions) *Memory {
	defaults.Positive(&opts.MaxKeys, DefaultMaxKeys)
	opts.SweepInterval = cmp.Or(opts.SweepInterval, DefaultSweepInterval)
	wall := opts.Now == nil
	defaults.Now(&opts.Now)
	m := &Memory{
		keys:      shardmap.New[uint64, int64](shardmap.Options{MaxKeys: opts.MaxKeys, Shards: maxShards, MinPerShard: minPerShard}),
		now:       opts.Now,
		base:      opts.Now(),
		wallClock: wall,
	}
	m.keys.StartSweeper(opts.SweepInterval, m.stale)
	return m
}

// Allow implements Limiter with GCRA; see the function GCRA for the semantics
// (cost > Burst is refused, with retryAfter the time to refill a whole burst).
// The memory store always answers, so err is always nil; ctx is unused.
func (m *Memory) Allow(_ context.Context, key string, l Limit, cost int) (bool, time.Duration, error) {
	if l.Free(cost) {
		return true, 0, nil
	}
	ok, retry := m.allow(key, l, cost, int64(m.now().Sub(m.base)))
	return ok, retry, nil
}

// allowEach implements AllowEachAt's fast path: every charge at one clock
// read, the caller's at (when it may stand in for m's clock) or m's own.
func (m *Memory) allowEach(cs []Charge, at time.Time) (int, time.Duration) {
	var now int64
	read := false
	for i, c := range cs {
		if c.Key == "" || c.Limit.Rate <= 0 || c.Limit.Free(c.Cost) {
			continue
		}
		if !read {
			now, read = -1, true
			if m.wallClock && !at.IsZero() {
				now = int64(at.Sub(m.base))
			}
			if now < 0 {
				now = int64(m.now().Sub(m.base))
			}
		}
		if ok, retry := m.allow(c.Key, c.Limit, c.Cost, now); !ok {
			return i, retry
		}
	}
	return -1, 0
}

// allow is Allow at the clock reading now (ns since base).
func (m *Memory) allow(key string, l Limit, cost int, now int64) (bool, time.Duration) {
	h := m.keys.Hash(key)
	s := m.keys.Shard(h)
	s.Lock()
	tat, found := s.Get(h)
	ok, retry, next := GCRA(tat, now, l, cost)
	if !ok {
		s.Unlock()
		return false, retry
	}
	// A full shard drops expired keys from a sample, else the sampled key
	// with the earliest TAT: the one whose state is worth least.
	if !found && s.Full() && s.EvictSample(evictSample, stale(now), tatRank) {
		m.evictions.Add(1)
	}
	s.Set(h, next)
	s.Unlock()
	return true, 0
}

// Len returns the number of keys currently held.
func (m *Memory) Len() int { return m.keys.Len() }

// Evictions returns how many live keys were dropped because their shard was full
// (expired keys removed by the sweeper are not counted): a rising value means
// MaxKeys is too small for the traffic, or an attack.
func (m *Memory) Evictions() uint64 { return m.evictions.Load() }

// Sweep drops every key whose theoretical arrival time has passed. The sweeper
// calls it; it is exported for callers that disable the sweeper.
func (m *Memory) Sweep() { m.keys.Sweep(m.stale()) }

// stale reports, for the sweeper, keys whose theoretical arrival time has
// passed: their bucket is full again, so forgetting them changes no answer.
func (m *Memory) stale() func(uint64, int64) bool { return stale(int64(m.now().Sub(m.base))) }

func stale(now int64) func(uint64, int64) bool {
	return func(_ uint64, tat int64) bool { return tat <= now }
}

func tatRank(tat int64) int64 { return tat }

// Close stops the sweeper and waits for it. Allow keeps working afterwards (without
// background sweeping). Close is idempotent and always returns nil.
func (m *Memory) Close() error {
	m.keys.Close()
	return nil
}

// Interface guards.
var _ Limiter = (*Memory)(nil)
