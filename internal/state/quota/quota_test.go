package quota_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	"github.com/wsgate/wsgate/internal/state/quota"
	"github.com/wsgate/wsgate/internal/state/quota/quotatest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func count(t *testing.T, s quota.Store, key string) int {
	t.Helper()
	n, err := s.Count(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestMemoryStoreConformance(t *testing.T) {
	quotatest.Run(t, func(*testing.T) quota.Store { return quota.NewMemoryStore() })
}

// Memory specifics beside the suite: a key back at zero is deleted, and a
// cancelled context is refused.
func TestMemoryStoreDeletesZero(t *testing.T) {
	s := quota.NewMemoryStore()
	ctx := context.Background()
	if ok, err := s.Acquire(ctx, "k", 3); !ok || err != nil {
		t.Fatalf("Acquire: %v %v", ok, err)
	}
	for range 3 {
		_ = s.Release(ctx, "k")
	}
	if s.Len() != 0 {
		t.Fatalf("Len = %d: a key at zero must be deleted", s.Len())
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if ok, err := s.Acquire(cctx, "k", 1); ok || !errors.Is(err, context.Canceled) {
		t.Fatalf("Acquire on cancelled ctx: %v %v", ok, err)
	}
}

func TestQuotasEnforceEachScope(t *testing.T) {
	ctx := context.Background()
	s := quota.NewMemoryStore()
	q := quota.New(s, quota.Limits{PerIP: 2, PerUser: 3, Global: 5})

	a1, err := q.Acquire(ctx, "1.1.1.1", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Acquire(ctx, "1.1.1.1", "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Acquire(ctx, "1.1.1.1", "bob"); !errors.Is(err, quota.ErrIPQuota) || !errors.Is(err, quota.ErrExceeded) {
		t.Fatalf("3rd from one IP: %v, want ErrIPQuota", err)
	}
	if _, err := q.Acquire(ctx, "2.2.2.2", "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Acquire(ctx, "3.3.3.3", "alice"); !errors.Is(err, quota.ErrUserQuota) {
		t.Fatalf("4th for alice: %v, want ErrUserQuota", err)
	}
	// Refusals rolled back what they took.
	if g, ip3 := count(t, s, quota.GlobalKey), count(t, s, quota.IPKey("3.3.3.3")); g != 3 || ip3 != 0 {
		t.Fatalf("after refusals: global=%d ip3=%d, want 3 and 0", g, ip3)
	}
	if _, err := q.Acquire(ctx, "4.4.4.4", ""); err != nil { // anonymous: no user count
		t.Fatal(err)
	}
	if _, err := q.Acquire(ctx, "5.5.5.5", "carol"); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Acquire(ctx, "6.6.6.6", "dave"); !errors.Is(err, quota.ErrGlobalQuota) {
		t.Fatalf("6th overall: %v, want ErrGlobalQuota", err)
	}
	if n := count(t, s, quota.UserKey("dave")); n != 0 {
		t.Fatalf("dave counted after global refusal: %d", n)
	}
	a1.Release()
	a1.Release()
	if _, err := q.Acquire(ctx, "6.6.6.6", "dave"); err != nil {
		t.Fatalf("after release: %v", err)
	}
	if g := count(t, s, quota.GlobalKey); g != 5 {
		t.Fatalf("global = %d, want 5 (double release must not free a slot twice)", g)
	}
	var nilLease *quota.Lease
	nilLease.Release() // must not panic
}

func TestSetLimitsHotReload(t *testing.T) {
	ctx := context.Background()
	q := quota.New(quota.NewMemoryStore(), quota.Limits{})
	var leases []*quota.Lease
	for range 5 { // unlimited, but counted
		l, err := q.Acquire(ctx, "ip", "u")
		if err != nil {
			t.Fatal(err)
		}
		leases = append(leases, l)
	}
	q.SetLimits(quota.Limits{PerIP: 3})
	if got := q.Limits(); got.PerIP != 3 {
		t.Fatalf("Limits() = %+v", got)
	}
	if _, err := q.Acquire(ctx, "ip", "u"); !errors.Is(err, quota.ErrIPQuota) {
		t.Fatalf("over the new cap: %v", err)
	}
	for _, l := range leases[:3] {
		l.Release()
	}
	if _, err := q.Acquire(ctx, "ip", "u"); err != nil {
		t.Fatalf("below the new cap: %v", err)
	}
}

func TestLimitsValidate(t *testing.T) {
	if err := (quota.Limits{PerIP: 1}).Validate(); err != nil {
		t.Fatal(err)
	}
	if err := (quota.Limits{Global: -1}).Validate(); err == nil {
		t.Fatal("negative limit accepted")
	}
}

// failingStore fails Acquire for keys with a given prefix.
type failingStore struct {
	*quota.MemoryStore
	prefix string
}

var errDown = errors.New("store down")

func (f failingStore) Acquire(ctx context.Context, key string, max int) (bool, error) {
	if strings.HasPrefix(key, f.prefix) {
		return false, errDown
	}
	return f.MemoryStore.Acquire(ctx, key, max)
}

func TestStoreErrorRollsBack(t *testing.T) {
	mem := quota.NewMemoryStore()
	q := quota.New(failingStore{mem, "user:"}, quota.Limits{PerIP: 10})
	_, err := q.Acquire(context.Background(), "1.1.1.1", "alice")
	if !errors.Is(err, errDown) || errors.Is(err, quota.ErrExceeded) {
		t.Fatalf("err = %v, want the store error, not a quota refusal", err)
	}
	if mem.Len() != 0 {
		t.Fatalf("rollback left %d keys", mem.Len())
	}
}

// TestConcurrentCyclesReturnToZero runs 10,000 acquire/release cycles from many
// goroutines, with random double (and concurrent) releases: every count ends at zero.
func TestConcurrentCyclesReturnToZero(t *testing.T) {
	ctx := context.Background()
	s := quota.NewMemoryStore()
	q := quota.New(s, quota.Limits{PerIP: 3, PerUser: 4, Global: 40})
	var acquired, refused atomic.Int64
	var wg sync.WaitGroup
	const workers, cycles = 50, 200
	// 10.0.0.0 is held at its per-IP limit throughout, so the refusal path runs
	// however the scheduler interleaves the workers (on a fast machine they may
	// otherwise never overlap).
	var held []*quota.Lease
	for range 3 {
		l, err := q.Acquire(ctx, "10.0.0.0", "")
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, l)
	}
	for w := range workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for range cycles {
				ip := fmt.Sprintf("10.0.0.%d", r.IntN(8))
				user := fmt.Sprintf("u%d", r.IntN(6))
				if r.IntN(5) == 0 {
					user = ""
				}
				l, err := q.Acquire(ctx, ip, user)
				if err != nil {
					if !errors.Is(err, quota.ErrExceeded) {
						t.Errorf("unexpected error: %v", err)
					}
					refused.Add(1)
					continue
				}
				acquired.Add(1)
				switch r.IntN(3) {
				case 0:
					l.Release()
				case 1:
					l.Release()
					l.Release()
				case 2: // two ending paths racing
					var rw sync.WaitGroup
					rw.Go(l.Release)
					rw.Go(l.Release)
					rw.Wait()
				}
			}
		})
	}
	wg.Wait()
	for _, l := range held {
		l.Release()
	}
	if s.Len() != 0 {
		t.Fatalf("%d keys left non-zero after all releases", s.Len())
	}
	t.Logf("acquired %d, refused %d", acquired.Load(), refused.Load())
	if acquired.Load() == 0 || refused.Load() == 0 {
		t.Fatal("test did not exercise both paths")
	}
}

// TestLimitsExactUnderConcurrency: many goroutines race for one IP, one user and the
// global count while holding; exactly the cap wins in each case.
func TestLimitsExactUnderConcurrency(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name   string
		limits quota.Limits
		ip     func(i int) string
		user   func(i int) string
		want   int
		err    error
	}{
		{"ip", quota.Limits{PerIP: 7}, func(int) string { return "1.2.3.4" }, func(i int) string { return fmt.Sprint(i) }, 7, quota.ErrIPQuota},
		{"user", quota.Limits{PerUser: 5}, func(i int) string { return fmt.Sprint(i) }, func(int) string { return "alice" }, 5, quota.ErrUserQuota},
		{"global", quota.Limits{Global: 11}, func(i int) string { return fmt.Sprint(i) }, func(i int) string { return fmt.Sprint(i) }, 11, quota.ErrGlobalQuota},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := quota.NewMemoryStore()
			q := quota.New(s, tc.limits)
			var won atomic.Int64
			var leases sync.Map
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range 200 {
				wg.Go(func() {
					<-start
					l, err := q.Acquire(ctx, tc.ip(i), tc.user(i))
					if err != nil {
						if !errors.Is(err, tc.err) {
							t.Errorf("err = %v, want %v", err, tc.err)
						}
						return
					}
					won.Add(1)
					leases.Store(i, l)
				})
			}
			close(start)
			wg.Wait()
			if got := won.Load(); got != int64(tc.want) {
				t.Fatalf("%d acquired, want exactly %d", got, tc.want)
			}
			leases.Range(func(_, v any) bool { v.(*quota.Lease).Release(); return true })
			if s.Len() != 0 {
				t.Fatalf("%d keys left", s.Len())
			}
		})
	}
}
