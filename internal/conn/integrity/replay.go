package integrity

import (
	"cmp"
	"context"
	"errors"
	"time"

	"github.com/wsgate/wsgate/internal/state/shardmap"
)

// ReplayCache remembers nonces across all connections (and, with a shared
// implementation such as Redis, across nodes).
//
// Seen is an atomic check-and-set: it reports dup=true if key was stored and
// has not expired, otherwise it stores key for ttl and reports dup=false.
// Callers treat err != nil as a rejection (fail closed): an unanswerable
// replay check must never let a message through.
type ReplayCache interface {
	Seen(ctx context.Context, key string, ttl time.Duration) (dup bool, err error)
}

// ErrReplayCacheFull is returned (with dup=true) when the in-memory cache has
// no room left for an unexpired entry.
var ErrReplayCacheFull = errors.New("integrity: replay cache full")

const replayShards = 32

// MemoryReplayCache is a bounded, expiring, sharded in-memory ReplayCache.
//
// Each shard keeps a map for lookups and a FIFO of insertions; expired
// entries are dropped lazily from the FIFO head on insert, so no goroutine
// is needed and work per call is amortised O(1). When a shard is full of
// unexpired entries the cache refuses (dup=true, ErrReplayCacheFull): under
// a nonce flood it rejects messages rather than forgetting nonces, which
// would silently re-open the replay window.
type MemoryReplayCache struct {
	items *shardmap.Map[string, int64] // key -> expiry (unix nanos)
	// fifos[i] is shard i's insertion order, under shard i's lock.
	fifos []ring
	now   func() time.Time
}

type fifoEntry struct {
	key string
	exp int64
}

// ring is a growable FIFO queue bounded by the shard capacity.
type ring struct {
	buf        []fifoEntry
	head, size int
}

func (r *ring) push(e fifoEntry) {
	if r.size == len(r.buf) {
		n := 2 * len(r.buf)
		n = cmp.Or(n, 16)
		nb := make([]fifoEntry, n)
		for i := 0; i < r.size; i++ {
			nb[i] = r.buf[(r.head+i)%len(r.buf)]
		}
		r.buf, r.head = nb, 0
	}
	r.buf[(r.head+r.size)%len(r.buf)] = e
	r.size++
}

func (r *ring) front() fifoEntry { return r.buf[r.head] }

func (r *ring) pop() {
	r.buf[r.head] = fifoEntry{}
	r.head = (r.head + 1) % len(r.buf)
	r.size--
}

// NewMemoryReplayCache returns a cache holding at most maxEntries unexpired
// nonces (rounded up to a multiple of the shard count; a value below 1 means
// 1<<20). Each of the 32 shards holds maxEntries/32, so with random keys the
// first refusals come somewhat before the total reaches maxEntries: size it
// at about twice the expected nonces per 2*window (message rate * 60 s by
// default). Memory is roughly 100 bytes per entry for the
// 43-byte keys the Verifier uses.
func NewMemoryReplayCache(maxEntries int) *MemoryReplayCache {
	if maxEntries < 1 {
		maxEntries = 1 << 20
	}
	return &MemoryReplayCache{
		items: shardmap.New[string, int64](shardmap.Options{MaxKeys: maxEntries, Shards: replayShards}),
		fifos: make([]ring, replayShards),
		now:   time.Now,
	}
}

// Seen implements ReplayCache.
func (c *MemoryReplayCache) Seen(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return true, err
	}
	if ttl <= 0 {
		return true, errors.New("integrity: replay cache: ttl must be positive")
	}
	now := c.now().UnixNano()
	s := c.items.For(key)
	s.Lock()
	defer s.Unlock()
	if exp, ok := s.Get(key); ok && exp > now {
		return true, nil
	}
	// Drop expired entries from the head. An entry whose key was re-inserted
	// later carries an older expiry than the map and must not delete it.
	fifo := &c.fifos[s.Index()]
	for fifo.size > 0 {
		f := fifo.front()
		if f.exp > now {
			break
		}
		if exp, ok := s.Get(f.key); ok && exp == f.exp {
			s.Delete(f.key)
		}
		fifo.pop()
	}
	// The FIFO, not the map, is the bound: it also holds the older entries of
	// re-inserted keys until they expire.
	if fifo.size >= c.items.PerShard() {
		return true, ErrReplayCacheFull
	}
	exp := now + int64(ttl)
	s.Set(key, exp)
	fifo.push(fifoEntry{key: key, exp: exp})
	return false, nil
}

// Len is the number of stored entries, expired ones included until swept.
func (c *MemoryReplayCache) Len() int { return c.items.Len() }

// Interface guard.
var _ ReplayCache = (*MemoryReplayCache)(nil)
