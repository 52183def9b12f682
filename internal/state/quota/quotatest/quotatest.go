// Package quotatest is the conformance suite every quota.Store must pass:
// caps checked and counted atomically, max <= 0 counting without a cap,
// releases that never go below zero, and exact counts under concurrency.
//
// Run(t, newStore) builds a fresh store per subtest. Counts need no clock.
package quotatest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/wsgate/wsgate/internal/state/quota"
	"github.com/wsgate/wsgate/internal/state/statetest"
)

// Run runs the suite.
func Run(t *testing.T, newStore func(t *testing.T) quota.Store) {
	statetest.Run(t, func(t *testing.T) any { return suite{newStore(t), nil} })
}

type suite statetest.Suite[quota.Store]

var ctx = context.Background()

func acquire(t *testing.T, s quota.Store, key string, max int) bool {
	t.Helper()
	ok, err := s.Acquire(ctx, key, max)
	if err != nil {
		t.Fatalf("Acquire(%q, %d): %v", key, max, err)
	}
	return ok
}

func release(t *testing.T, s quota.Store, key string) {
	t.Helper()
	if err := s.Release(ctx, key); err != nil {
		t.Fatalf("Release(%q): %v", key, err)
	}
}

func count(t *testing.T, s quota.Store, key string) int {
	t.Helper()
	n, err := s.Count(ctx, key)
	if err != nil {
		t.Fatalf("Count(%q): %v", key, err)
	}
	return n
}

func (x suite) CapAndRelease(t *testing.T) {
	s := x.Store
	for i := range 3 {
		if !acquire(t, s, "k", 3) {
			t.Fatalf("acquire %d of 3 refused", i+1)
		}
	}
	if acquire(t, s, "k", 3) {
		t.Fatal("4th acquire under max 3 allowed")
	}
	if n := count(t, s, "k"); n != 3 {
		t.Fatalf("Count = %d, want 3", n)
	}
	release(t, s, "k")
	if !acquire(t, s, "k", 3) {
		t.Fatal("acquire after a release refused")
	}
}

func (x suite) NoCap(t *testing.T) {
	s := x.Store
	for range 5 {
		if !acquire(t, s, "k", 0) {
			t.Fatal("max 0 must mean no cap")
		}
	}
	// Counted all the same: a cap set later (hot reload) sees them.
	if n := count(t, s, "k"); n != 5 {
		t.Fatalf("Count = %d, want 5", n)
	}
	if acquire(t, s, "k", 5) {
		t.Fatal("acquire at the new cap allowed")
	}
}

func (x suite) NeverNegative(t *testing.T) {
	s := x.Store
	release(t, s, "absent")
	if !acquire(t, s, "k", 1) {
		t.Fatal("first acquire refused")
	}
	for range 5 {
		release(t, s, "k")
	}
	if n := count(t, s, "k"); n != 0 {
		t.Fatalf("Count after extra releases = %d, want 0", n)
	}
	if !acquire(t, s, "k", 1) || acquire(t, s, "k", 1) {
		t.Fatal("extra releases freed more than one slot")
	}
}

func (x suite) KeysIndependent(t *testing.T) {
	s := x.Store
	if !acquire(t, s, "ip:203.0.113.7", 1) || !acquire(t, s, "user:alice", 1) {
		t.Fatal("one key's slot taken by another")
	}
	if n := count(t, s, "never"); n != 0 {
		t.Fatalf("Count of an unused key = %d", n)
	}
}

func (x suite) ConcurrentExact(t *testing.T) {
	s := x.Store
	const max = 50
	var granted atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				ok, err := s.Acquire(ctx, "hot", max)
				if err != nil {
					t.Error(err)
					return
				}
				if ok {
					granted.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if granted.Load() != max {
		t.Fatalf("granted %d of 160 under max %d, want exactly %d", granted.Load(), max, max)
	}
	for range max {
		wg.Go(func() {
			if err := s.Release(ctx, "hot"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := count(t, s, "hot"); n != 0 {
		t.Fatalf("Count after releasing all = %d, want 0", n)
	}
}
