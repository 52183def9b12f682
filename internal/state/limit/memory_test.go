package limit_test

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wsgate/wsgate/internal/state/limit"
	"github.com/wsgate/wsgate/internal/state/limit/limittest"
	"github.com/wsgate/wsgate/internal/state/statetest"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/wait"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newMem(t testing.TB, opts limit.MemoryOptions) *limit.Memory {
	t.Helper()
	m := limit.NewMemory(opts)
	t.Cleanup(func() { _ = m.Close() })
	return m
}

func allow(t *testing.T, m *limit.Memory, key string, l limit.Limit, cost int) (bool, time.Duration) {
	t.Helper()
	ok, ra, err := m.Allow(context.Background(), key, l, cost)
	if err != nil {
		t.Fatalf("Allow: %v", err)
	}
	if ok && ra != 0 {
		t.Fatalf("allowed with retryAfter %v", ra)
	}
	return ok, ra
}

func TestMemoryConformance(t *testing.T) {
	clk := statetest.New()
	limittest.Run(t, clk, func(t *testing.T) limit.Limiter {
		return newMem(t, limit.MemoryOptions{SweepInterval: -1, Now: clk.Now})
	})
}

// The function GCRA gives the table's answers on its own: Memory and the
// pipeline's local budgets add only storage around it.
func TestGCRATable(t *testing.T) {
	tats := map[string]int64{}
	limittest.Check(t, func(key string, at time.Duration, l limit.Limit, cost int) (bool, time.Duration) {
		ok, retry, next := limit.GCRA(tats[key], int64(at), l, cost)
		if !ok && next != tats[key] {
			t.Errorf("%s: refused call charged %d", key, next-tats[key])
		}
		tats[key] = next
		return ok, retry
	})
}

func TestUnlimitedStoresNothing(t *testing.T) {
	m := newMem(t, limit.MemoryOptions{SweepInterval: -1})
	for _, l := range limittest.Unlimited {
		for i := range 100 {
			if ok, _ := allow(t, m, fmt.Sprint("k", i), l, 1_000_000); !ok {
				t.Fatalf("limit %+v refused", l)
			}
		}
	}
	if n := m.Len(); n != 0 {
		t.Fatalf("Len = %d, want 0", n)
	}
}

func TestRetryAfterIsExact(t *testing.T) {
	c := statetest.New()
	m := newMem(t, limit.MemoryOptions{SweepInterval: -1, Now: c.Now})
	l := limit.Limit{Rate: 1000, Burst: 4096} // a byte budget: 1000 B/s, 4 KiB burst
	for _, cost := range []int{3000, 700, 1500, 4096, 1, 2500} {
		ok, ra := allow(t, m, "bytes", l, cost)
		if ok {
			continue
		}
		c.Advance(ra - time.Nanosecond)
		if ok, _ := allow(t, m, "bytes", l, cost); ok {
			t.Fatalf("cost %d allowed 1ns before retryAfter %v", cost, ra)
		}
		c.Advance(time.Nanosecond)
		if ok, _ := allow(t, m, "bytes", l, cost); !ok {
			t.Fatalf("cost %d refused at retryAfter %v", cost, ra)
		}
	}
}

func TestAbsurdLimitsDoNotPanicOrOverflow(t *testing.T) {
	m := newMem(t, limit.MemoryOptions{SweepInterval: -1})
	limits := []limit.Limit{
		{Rate: 1e-300, Burst: 1}, {Rate: 1e-300, Burst: math.MaxInt}, {Rate: 1e300, Burst: 1},
		{Rate: math.SmallestNonzeroFloat64, Burst: math.MaxInt}, {Rate: 1, Burst: math.MaxInt},
	}
	costs := []int{1, math.MaxInt, math.MinInt, 2}
	for _, l := range limits {
		for _, cost := range costs {
			for range 3 {
				ok, ra, err := m.Allow(context.Background(), "x", l, cost)
				if err != nil || ra < 0 || (ok && ra != 0) {
					t.Fatalf("%+v cost %d: ok=%v ra=%v err=%v", l, cost, ok, ra, err)
				}
			}
		}
	}
}

func TestSweepDropsIdleKeys(t *testing.T) {
	c := statetest.New()
	m := newMem(t, limit.MemoryOptions{SweepInterval: -1, Now: c.Now})
	fast := limit.Limit{Rate: 10, Burst: 1}  // TAT now+100ms
	slow := limit.Limit{Rate: 0.1, Burst: 1} // TAT now+10s
	for i := range 1000 {
		allow(t, m, fmt.Sprint("fast", i), fast, 1)
	}
	allow(t, m, "slow", slow, 1)
	c.Advance(time.Second)
	m.Sweep()
	if n := m.Len(); n != 1 {
		t.Fatalf("Len after sweep = %d, want 1 (the slow key)", n)
	}
	if ok, _ := allow(t, m, "slow", slow, 1); ok {
		t.Fatal("sweep lost the live key's state")
	}
}

func TestSweeperGoroutineRunsAndStops(t *testing.T) {
	m := limit.NewMemory(limit.MemoryOptions{SweepInterval: time.Millisecond})
	for i := range 100 {
		_, _, _ = m.Allow(context.Background(), fmt.Sprint(i), limit.Limit{Rate: 1000, Burst: 1}, 1)
	}
	wait.For(t, "the sweeper to drop every key", 5*time.Second, func() bool { return m.Len() == 0 })
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil { // idempotent
		t.Fatal(err)
	}
	// Still usable after Close.
	if ok, _, _ := m.Allow(context.Background(), "k", limit.Limit{Rate: 1, Burst: 1}, 1); !ok {
		t.Fatal("Allow after Close refused")
	}
}

func TestFullShardEvictsExpiredBeforeLive(t *testing.T) {
	c := statetest.New()
	// 64 keys -> a single shard of 64, so the test controls the whole bound.
	m := newMem(t, limit.MemoryOptions{MaxKeys: 64, SweepInterval: -1, Now: c.Now})
	hot := limit.Limit{Rate: 1.0 / 3600, Burst: 1} // TAT now+1h: the most valuable state
	if ok, _ := allow(t, m, "attacker", hot, 1); !ok {
		t.Fatal("first refused")
	}
	short := limit.Limit{Rate: 1, Burst: 1}
	for i := range 63 {
		allow(t, m, fmt.Sprint("old", i), short, 1)
	}
	c.Advance(2 * time.Second) // the 63 "old" keys are now expired
	for i := range 10_000 {
		allow(t, m, fmt.Sprint("new", i), short, 1)
		if n := m.Len(); n > 64 {
			t.Fatalf("Len = %d > bound 64", n)
		}
	}
	if ok, ra := allow(t, m, "attacker", hot, 1); ok || ra <= 0 {
		t.Fatal("the key closest to its limit was evicted by a spray of new keys")
	}
	if m.Evictions() == 0 {
		t.Fatal("no live evictions counted")
	}
}

// TestMemoryBoundedUnderSpray inserts 1,000,000 distinct IPs into a limiter capped at
// 10,000 keys: key count and heap growth stay bounded.
func TestMemoryBoundedUnderSpray(t *testing.T) {
	if testing.Short() {
		t.Skip("inserts 1M keys")
	}
	const maxKeys = 10_000
	m := newMem(t, limit.MemoryOptions{MaxKeys: maxKeys, SweepInterval: -1})
	l := limit.Limit{Rate: 1, Burst: 10}
	n := 1_000_000
	if raceEnabled {
		n = 200_000
	}
	before := heapInuse()
	for i := range n {
		_, _, _ = m.Allow(context.Background(), ipv4(i), l, 1)
	}
	after := heapInuse()
	if n := m.Len(); n > maxKeys+63 {
		t.Fatalf("Len = %d, bound %d", n, maxKeys+63)
	}
	grow := int64(after) - int64(before)
	t.Logf("%d distinct IPs, MaxKeys=%d: %d keys, heap in use grew %.2f MiB", n, maxKeys, m.Len(), float64(grow)/(1<<20))
	if grow > 16<<20 { // 10k keys need well under 1 MiB; leave room for GC noise and -race
		t.Fatalf("heap grew %d bytes for %d keys", grow, maxKeys)
	}
	runtime.KeepAlive(m)
}

func ipv4(i int) string {
	return fmt.Sprintf("%d.%d.%d.%d", 10+(i>>24&0x7f), i>>16&0xff, i>>8&0xff, i&0xff)
}

func heapInuse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}
