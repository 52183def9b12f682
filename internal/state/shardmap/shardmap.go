package shardmap

import (
	"hash/maphash"
	"iter"
	"math"
	"sync"
	"time"

	"github.com/wsgate/wsgate/internal/state/sweep"
)

// Options configures New. The zero value is an unbounded map with one shard.
type Options struct {
	// MaxKeys bounds the keys each shard holds to MaxKeys/shards, rounded up,
	// so the real ceiling is MaxKeys rounded up to a multiple of the shard
	// count. 0 or less means no bound. The map only reports a full shard
	// ([Shard.Full]); what to drop is the store's policy.
	MaxKeys int
	// Shards is the number of shards, rounded down to a power of two
	// (default 1).
	Shards int
	// MinPerShard halves Shards while MaxKeys/Shards is below it, so that a
	// small bounded map is not split into shards so tiny that rounding the
	// bound up per shard would loosen it noticeably. 0 keeps Shards.
	MinPerShard int
}

// Map is a map from K to V split into shards, each behind its own mutex.
// Its methods are safe for concurrent use; a [Shard]'s are not, its caller
// holds the shard's lock.
type Map[K comparable, V any] struct {
	seed    maphash.Seed
	shards  []Shard[K, V]
	mask    uint64
	sweeper *sweep.Sweeper
}

// Shard is one part of a Map: a plain map, its lock and its bound. The lock
// is a read-write lock so that a read-mostly store (the session registry,
// looked up on every admin call and kick) can read under [Shard.RLock]; the
// read-only methods (Get, Len, Full, All without Delete) may be called under
// either lock.
type Shard[K comparable, V any] struct {
	mu  sync.RWMutex
	m   map[K]V
	max int // 0: unbounded
	// peak is the largest len(m) since m was last rebuilt: Go maps never
	// shrink, so Sweep rebuilds a map that has fallen far below its peak.
	peak  int
	index int
	_     [8]byte // keep shards on separate cache lines (64 bytes)
}

// New returns an empty map.
func New[K comparable, V any](opts Options) *Map[K, V] {
	n := 1
	for n*2 <= opts.Shards {
		n *= 2
	}
	for n > 1 && opts.MaxKeys > 0 && opts.MaxKeys/n < opts.MinPerShard {
		n /= 2
	}
	per := 0
	if opts.MaxKeys > 0 {
		per = (opts.MaxKeys + n - 1) / n
	}
	m := &Map[K, V]{seed: maphash.MakeSeed(), shards: make([]Shard[K, V], n), mask: uint64(n - 1)}
	for i := range m.shards {
		m.shards[i].m = make(map[K]V)
		m.shards[i].max = per
		m.shards[i].index = i
	}
	return m
}

// Hash returns the map's seeded hash of key: a store that keys its map by the
// hash (to hold 8 bytes instead of the string) gets the shard with [Map.Shard].
// The seed is random per map, so collisions cannot be aimed for.
func (m *Map[K, V]) Hash(key string) uint64 { return maphash.String(m.seed, key) }

// Shard returns the shard of a key whose [Map.Hash] is h.
func (m *Map[K, V]) Shard(h uint64) *Shard[K, V] { return &m.shards[h&m.mask] }

// For returns the shard of a string key.
func (m *Map[K, V]) For(key string) *Shard[K, V] { return m.Shard(m.Hash(key)) }

// Shards returns the number of shards.
func (m *Map[K, V]) Shards() int { return len(m.shards) }

// PerShard returns the bound of each shard (0: unbounded).
func (m *Map[K, V]) PerShard() int { return m.shards[0].max }

// Len returns the number of keys held, read-locking each shard in turn.
func (m *Map[K, V]) Len() int {
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}

// Range calls f for each entry until f returns false. It copies a shard's
// entries under its read lock and calls f after unlocking, so f may use the
// map (even the same shard); an entry set or deleted during Range may or may
// not be seen.
func (m *Map[K, V]) Range(f func(K, V) bool) {
	type kv struct {
		k K
		v V
	}
	var list []kv
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.RLock()
		list = list[:0]
		for k, v := range s.m {
			list = append(list, kv{k, v})
		}
		s.mu.RUnlock()
		for _, e := range list {
			if !f(e.k, e.v) {
				return
			}
		}
	}
}

// Each calls f with every shard in turn, locked.
func (m *Map[K, V]) Each(f func(*Shard[K, V])) {
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		f(s)
		s.mu.Unlock()
	}
}

// Sweep deletes every entry drop reports true for, shard by shard, and gives
// memory back after a spike: a shard whose map has fallen below a quarter of
// its peak (above 1024 entries) is rebuilt. StartSweeper calls it
// periodically.
func (m *Map[K, V]) Sweep(drop func(K, V) bool) {
	m.Each(func(s *Shard[K, V]) {
		s.DeleteFunc(drop)
		if s.peak > 1024 && len(s.m) < s.peak/4 {
			fresh := make(map[K]V, len(s.m))
			for k, v := range s.m {
				fresh[k] = v
			}
			s.m, s.peak = fresh, len(fresh)
		}
	})
}

// StartSweeper runs Sweep every interval on a goroutine the map owns until
// Close; each round sweeps with the predicate stale returns for it (which
// typically closes over the time of the round). A non-positive interval
// starts nothing. Call it once, before the map is shared.
func (m *Map[K, V]) StartSweeper(every time.Duration, stale func() func(K, V) bool) {
	m.sweeper = sweep.Start(every, func() { m.Sweep(stale()) })
}

// Close stops the sweeper, if any, and waits for it; the map keeps working
// without it. Close is idempotent.
func (m *Map[K, V]) Close() { m.sweeper.Stop() }

// Clear deletes every entry.
func (m *Map[K, V]) Clear() {
	m.Each(func(s *Shard[K, V]) { s.Clear() })
}

// Lock locks the shard.
func (s *Shard[K, V]) Lock() { s.mu.Lock() }

// Unlock unlocks the shard.
func (s *Shard[K, V]) Unlock() { s.mu.Unlock() }

// RLock read-locks the shard: only the read-only methods may be called
// until RUnlock.
func (s *Shard[K, V]) RLock() { s.mu.RLock() }

// RUnlock undoes RLock.
func (s *Shard[K, V]) RUnlock() { s.mu.RUnlock() }

// Index is the shard's position in its Map, from 0: a store that keeps more
// per-shard state (an expiry heap, a FIFO) keeps it in a slice by Index,
// guarded by the shard's lock.
func (s *Shard[K, V]) Index() int { return s.index }

// Get returns the value of k.
func (s *Shard[K, V]) Get(k K) (V, bool) {
	v, ok := s.m[k]
	return v, ok
}

// Set stores v under k. It does not check the bound: a store checks
// [Shard.Full] before adding a key and applies its own policy.
func (s *Shard[K, V]) Set(k K, v V) {
	s.m[k] = v
	if len(s.m) > s.peak {
		s.peak = len(s.m)
	}
}

// Delete deletes k.
func (s *Shard[K, V]) Delete(k K) { delete(s.m, k) }

// Len returns the number of keys in the shard.
func (s *Shard[K, V]) Len() int { return len(s.m) }

// Full reports whether the shard holds its bound of keys (never, unbounded).
func (s *Shard[K, V]) Full() bool { return s.max > 0 && len(s.m) >= s.max }

// All iterates over the shard's entries in random order; the loop may Delete.
// Breaking out early after a few entries samples the shard at random, which
// is how stores pick eviction victims without scanning a full shard.
func (s *Shard[K, V]) All() iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		for k, v := range s.m {
			if !yield(k, v) {
				return
			}
		}
	}
}

// EvictSample frees room in a full shard by the rule the bounded stores share:
// among a random sample of n entries (map iteration starts at a random
// position, so no scan of the shard), every stale one is deleted; if none was,
// the sampled entry with the lowest rank (the least worth keeping: the oldest,
// the soonest to expire) is. It reports whether it deleted a live entry, which
// stores count as an eviction.
func (s *Shard[K, V]) EvictSample(n int, stale func(K, V) bool, rank func(V) int64) bool {
	var (
		victim  K
		lowest  int64 = math.MaxInt64
		seen    int
		dropped bool
	)
	for k, v := range s.m {
		if stale(k, v) {
			delete(s.m, k)
			dropped = true
		} else if r := rank(v); r < lowest {
			victim, lowest = k, r
		}
		if seen++; seen >= n {
			break
		}
	}
	if dropped || lowest == math.MaxInt64 {
		return false
	}
	delete(s.m, victim)
	return true
}

// DeleteFunc deletes every entry drop reports true for and returns how many.
func (s *Shard[K, V]) DeleteFunc(drop func(K, V) bool) int {
	n := 0
	for k, v := range s.m {
		if drop(k, v) {
			delete(s.m, k)
			n++
		}
	}
	return n
}

// Clear deletes every entry in the shard.
func (s *Shard[K, V]) Clear() { clear(s.m) }
