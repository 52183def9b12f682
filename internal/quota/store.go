package quota

import (
	"context"
	"fmt"
	"hash/maphash"
	"sync"
)

// Store counts live connections per key.
//
// Acquire increments key's count if it is below max and reports whether it did;
// max <= 0 means no cap (the connection is still counted, so a later hot reload
// that sets a cap sees the true count). Release decrements and never goes below
// zero. err is non-nil only when the store could not answer (e.g. Redis down);
// Quotas returns it wrapped and the caller applies its fail-open or fail-closed
// policy.
type Store interface {
	Acquire(ctx context.Context, key string, max int) (ok bool, err error)
	Release(ctx context.Context, key string) error
	Count(ctx context.Context, key string) (int, error)
}

const memoryShards = 64

// MemoryStore is a sharded in-memory Store. A key whose count returns to zero is
// deleted, so memory is bounded by the number of live connections (which the
// global quota and the listener bound), not by the number of addresses ever seen.
type MemoryStore struct {
	seed   maphash.Seed
	shards [memoryShards]memShard
}

type memShard struct {
	mu sync.Mutex
	m  map[string]int
	_  [48]byte // keep shards on separate cache lines
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	s := &MemoryStore{seed: maphash.MakeSeed()}
	for i := range s.shards {
		s.shards[i].m = make(map[string]int)
	}
	return s
}

func (s *MemoryStore) shard(key string) *memShard {
	return &s.shards[maphash.String(s.seed, key)%memoryShards]
}

// Acquire implements Store. It fails only if ctx is already done.
func (s *MemoryStore) Acquire(ctx context.Context, key string, max int) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("quota memory store: %w", err)
	}
	sh := s.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	n := sh.m[key]
	if max > 0 && n >= max {
		return false, nil
	}
	sh.m[key] = n + 1
	return true, nil
}

// Release implements Store. Releasing a key at zero is a no-op. It never fails:
// a release must happen even when the connection's context is already cancelled.
func (s *MemoryStore) Release(_ context.Context, key string) error {
	sh := s.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	switch n := sh.m[key]; {
	case n > 1:
		sh.m[key] = n - 1
	case n == 1:
		delete(sh.m, key)
	}
	return nil
}

// Count implements Store. It never fails.
func (s *MemoryStore) Count(_ context.Context, key string) (int, error) {
	sh := s.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.m[key], nil
}

// Len returns the number of keys with a non-zero count (for tests and metrics).
func (s *MemoryStore) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}

// Interface guards.
var _ Store = (*MemoryStore)(nil)
