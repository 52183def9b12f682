package limit_test

import (
	"context"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/state/limit"
)

// TestAllowEachAtUsesTheCallersClock: the memory store charges at the
// caller's time.Now reading instead of its own; with a clock of its own
// (MemoryOptions.Now), or a reading from before it existed, it reads its own.
func TestAllowEachAtUsesTheCallersClock(t *testing.T) {
	ctx := context.Background()
	one := limit.Limit{Rate: 1, Burst: 1}
	cs := []limit.Charge{{Key: "k", Limit: one, Cost: 1}}

	m := limit.NewMemory(limit.MemoryOptions{SweepInterval: -1})
	defer m.Close()
	later := time.Now().Add(time.Hour)
	if refused, _, _ := limit.AllowEachAt(ctx, m, later, cs, false); refused != -1 {
		t.Fatal("first charge refused")
	}
	// At the same reading the budget is spent, and refills in a second of it.
	refused, retry, _ := limit.AllowEachAt(ctx, m, later, cs, false)
	if refused != 0 || retry <= 0 || retry > time.Second {
		t.Fatalf("second charge at the same time: refused %d, retry %v; want 0, ≤ 1s", refused, retry)
	}
	// On the store's own clock, the charge an hour ahead is still pending.
	if _, retry, _ := limit.AllowEach(ctx, m, cs, false); retry < 59*time.Minute {
		t.Fatalf("own clock: retry %v, want about an hour", retry)
	}
	// A reading from before the store existed is not used.
	cs[0].Key = "k2"
	past := time.Now().Add(-time.Hour)
	limit.AllowEachAt(ctx, m, past, cs, false)
	if refused, retry, _ := limit.AllowEach(ctx, m, cs, false); refused != 0 || retry > time.Second {
		t.Fatalf("past reading: refused %d, retry %v; want 0, ≤ 1s (charged at the store's now)", refused, retry)
	}

	// A store with its own clock ignores the caller's.
	clock := time.Unix(1000, 0)
	f := limit.NewMemory(limit.MemoryOptions{SweepInterval: -1, Now: func() time.Time { return clock }})
	defer f.Close()
	cs[0].Key = "k"
	limit.AllowEachAt(ctx, f, later, cs, false)
	if refused, retry, _ := limit.AllowEachAt(ctx, f, later.Add(time.Hour), cs, false); refused != 0 || retry > time.Second {
		t.Fatalf("own clock kept: refused %d, retry %v; want 0, ≤ 1s", refused, retry)
	}
}
