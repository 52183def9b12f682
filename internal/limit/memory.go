package limit

import (
	"context"
	"hash/maphash"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/internal/sweep"
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
	// maxNanos caps every GCRA interval so that arithmetic on the TAT can never
	// overflow int64, whatever Rate, Burst or cost the caller passes (~36 years).
	maxNanos = int64(1) << 60
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
	seed     maphash.Seed
	shards   []shard
	mask     uint64
	perShard int
	now      func() time.Time
	base     time.Time

	evictions atomic.Uint64

	sweeper *sweep.Sweeper
}

type shard struct {
	mu sync.Mutex
	m  map[uint64]int64 // hashed key -> theoretical arrival time, ns since base
	// peak is the largest len(m) since the map was last rebuilt: Go maps never
	// shrink, so the sweeper rebuilds a map that has fallen far below its peak.
	peak int
	_    [40]byte // keep shards on separate cache lines
}

// NewMemory returns a Memory. If opts.SweepInterval is not negative, it starts a
// sweeper goroutine that Close stops.
func NewMemory(opts MemoryOptions) *Memory {
	if opts.MaxKeys <= 0 {
		opts.MaxKeys = DefaultMaxKeys
	}
	if opts.SweepInterval == 0 {
		opts.SweepInterval = DefaultSweepInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	n := maxShards
	for n > 1 && opts.MaxKeys/n < minPerShard {
		n /= 2
	}
	m := &Memory{
		seed:     maphash.MakeSeed(),
		shards:   make([]shard, n),
		mask:     uint64(n - 1),
		perShard: (opts.MaxKeys + n - 1) / n,
		now:      opts.Now,
		base:     opts.Now(),
	}
	for i := range m.shards {
		m.shards[i].m = make(map[uint64]int64)
	}
	m.sweeper = sweep.Start(opts.SweepInterval, m.Sweep)
	return m
}

// Allow implements Limiter with GCRA.
//
// Semantics, so that the Redis implementation can match them:
//   - l.Rate <= 0 (or NaN) means unlimited: always allowed, nothing stored.
//   - l.Burst < 1 is treated as 1.
//   - cost <= 0 is always allowed and charges nothing.
//   - cost > Burst can never be allowed: Allow refuses without charging and
//     returns retryAfter = the time to refill a whole burst (Burst/Rate), so a
//     Retry-After header stays sane; callers should reject such requests outright.
//   - Otherwise retryAfter is exactly when the same cost would next be allowed.
//
// The memory store always answers, so err is always nil; ctx is unused.
func (m *Memory) Allow(_ context.Context, key string, l Limit, cost int) (bool, time.Duration, error) {
	if !(l.Rate > 0) || math.IsInf(l.Rate, 1) || cost <= 0 {
		return true, 0, nil
	}
	burst := max(l.Burst, 1)
	interval := 1e9 / l.Rate // ns per token
	inc := nanos(float64(cost) * interval)
	window := nanos(float64(burst) * interval)
	if cost > burst {
		return false, time.Duration(window), nil
	}

	h := maphash.String(m.seed, key)
	s := &m.shards[h&m.mask]
	now := int64(m.now().Sub(m.base))

	s.mu.Lock()
	tat, found := s.m[h]
	if !found || tat < now {
		tat = now
	}
	newTAT := tat + inc
	if allowAt := newTAT - window; allowAt > now {
		s.mu.Unlock()
		return false, time.Duration(allowAt - now), nil
	}
	if !found && len(s.m) >= m.perShard {
		m.evictLocked(s, now)
	}
	s.m[h] = newTAT
	if len(s.m) > s.peak {
		s.peak = len(s.m)
	}
	s.mu.Unlock()
	return true, 0, nil
}

// evictLocked frees one slot in a full shard: any expired entries among a small
// random sample (map iteration starts at a random position), else the sampled
// entry with the earliest TAT, i.e. the one whose state is worth least.
func (m *Memory) evictLocked(s *shard, now int64) {
	var (
		victim  uint64
		minTAT  int64 = math.MaxInt64
		seen    int
		expired int
	)
	for k, tat := range s.m {
		if tat <= now {
			delete(s.m, k)
			expired++
		} else if tat < minTAT {
			victim, minTAT = k, tat
		}
		seen++
		if seen >= evictSample {
			break
		}
	}
	if expired == 0 && minTAT != math.MaxInt64 {
		delete(s.m, victim)
		m.evictions.Add(1)
	}
}

// nanos converts a float interval to int64 nanoseconds, saturating at maxNanos so
// that absurd limits (Rate 1e-300, cost MaxInt) cannot overflow.
func nanos(f float64) int64 {
	if !(f < float64(maxNanos)) { // also catches NaN
		return maxNanos
	}
	if f < 0 {
		return 0
	}
	return int64(math.Ceil(f))
}

// Len returns the number of keys currently held.
func (m *Memory) Len() int {
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// Evictions returns how many live keys were dropped because their shard was full
// (expired keys removed by the sweeper are not counted): a rising value means
// MaxKeys is too small for the traffic, or an attack.
func (m *Memory) Evictions() uint64 { return m.evictions.Load() }

// Sweep drops every key whose theoretical arrival time has passed. The sweeper
// calls it; it is exported for callers that disable the sweeper.
func (m *Memory) Sweep() {
	now := int64(m.now().Sub(m.base))
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		for k, tat := range s.m {
			if tat <= now {
				delete(s.m, k)
			}
		}
		// Give memory back after a spike (e.g. an attack from many addresses).
		if s.peak > 1024 && len(s.m) < s.peak/4 {
			fresh := make(map[uint64]int64, len(s.m))
			for k, v := range s.m {
				fresh[k] = v
			}
			s.m = fresh
			s.peak = len(fresh)
		}
		s.mu.Unlock()
	}
}

// Close stops the sweeper and waits for it. Allow keeps working afterwards (without
// background sweeping). Close is idempotent and always returns nil.
func (m *Memory) Close() error {
	m.sweeper.Stop()
	return nil
}

// Interface guards.
var _ Limiter = (*Memory)(nil)
