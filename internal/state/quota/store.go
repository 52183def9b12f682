package quota

import (
	"context"
	"fmt"

	"github.com/wsgate/wsgate/internal/state/shardmap"
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
	counts *shardmap.Map[string, int]
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{counts: shardmap.New[string, int](shardmap.Options{Shards: memoryShards})}
}

// Acquire implements Store. It fails only if ctx is already done.
func (s *MemoryStore) Acquire(ctx context.Context, key string, max int) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("quota memory store: %w", err)
	}
	sh := s.counts.For(key)
	sh.Lock()
	defer sh.Unlock()
	n, _ := sh.Get(key)
	if max > 0 && n >= max {
		return false, nil
	}
	sh.Set(key, n+1)
	return true, nil
}

// Release implements Store. Releasing a key at zero is a no-op. It never fails:
// a release must happen even when the connection's context is already cancelled.
func (s *MemoryStore) Release(_ context.Context, key string) error {
	sh := s.counts.For(key)
	sh.Lock()
	defer sh.Unlock()
	switch n, _ := sh.Get(key); {
	case n > 1:
		sh.Set(key, n-1)
	case n == 1:
		sh.Delete(key)
	}
	return nil
}

// Count implements Store. It never fails.
func (s *MemoryStore) Count(_ context.Context, key string) (int, error) {
	sh := s.counts.For(key)
	sh.Lock()
	defer sh.Unlock()
	n, _ := sh.Get(key)
	return n, nil
}

// Len returns the number of keys with a non-zero count (for tests and metrics).
func (s *MemoryStore) Len() int { return s.counts.Len() }

// Interface guards.
var _ Store = (*MemoryStore)(nil)
