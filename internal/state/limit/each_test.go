package limit_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/state/limit"
	"github.com/wsgate/wsgate/internal/state/statetest"
)

// loopOnly hides Memory's one-call path, so AllowEach takes the generic loop.
type loopOnly struct{ l limit.Limiter }

func (o loopOnly) Allow(ctx context.Context, key string, l limit.Limit, cost int) (bool, time.Duration, error) {
	return o.l.Allow(ctx, key, l, cost)
}

// AllowEach answers the same through Memory's one-call path and through the
// generic loop, charge by charge: it stops at the first refusal, keeps the
// charges before it, skips empty keys and unlimited budgets.
func TestAllowEachFastPathMatchesLoop(t *testing.T) {
	clkA, clkB := statetest.New(), statetest.New()
	fast := newMem(t, limit.MemoryOptions{Now: clkA.Now, SweepInterval: -1})
	slow := loopOnly{newMem(t, limit.MemoryOptions{Now: clkB.Now, SweepInterval: -1})}
	msgs := limit.Limit{Rate: 10, Burst: 3}
	bytes := limit.Limit{Rate: 100, Burst: 250}
	ctx := context.Background()
	for i := range 40 {
		cs := []limit.Charge{
			{Key: "u:m:alice", Limit: msgs, Cost: 1},
			{Key: "u:b:alice", Limit: bytes, Cost: 60},
			{Key: "", Limit: msgs, Cost: 1},                      // no user: skipped
			{Key: "i:m:10.0.0.1", Limit: limit.Limit{}, Cost: 1}, // no budget: skipped
			{Key: "i:b:10.0.0.1", Limit: bytes, Cost: 90},
		}
		ra, rta, erra := limit.AllowEach(ctx, fast, cs, false)
		rb, rtb, errb := limit.AllowEach(ctx, slow, cs, false)
		if erra != nil || errb != nil || ra != rb || rta != rtb {
			t.Fatalf("step %d: fast (%d, %v, %v), loop (%d, %v, %v)", i, ra, rta, erra, rb, rtb, errb)
		}
		if i%5 == 4 {
			clkA.Advance(70 * time.Millisecond)
			clkB.Advance(70 * time.Millisecond)
		}
	}
	// The budgets were spent up to the refusals: a fresh charge of the user's
	// message budget is refused at once on both.
	one := []limit.Charge{{Key: "u:m:alice", Limit: msgs, Cost: 1}}
	ra, _, _ := limit.AllowEach(ctx, fast, one, false)
	rb, _, _ := limit.AllowEach(ctx, slow, one, false)
	if ra != rb {
		t.Fatalf("after the run: fast %d, loop %d", ra, rb)
	}
}

// failing is a store that cannot answer for one key.
type failing struct{ down string }

func (f failing) Allow(_ context.Context, key string, _ limit.Limit, _ int) (bool, time.Duration, error) {
	if key == f.down {
		return false, 0, errors.New("store down")
	}
	if key == "refuse" {
		return false, time.Second, nil
	}
	return true, 0, nil
}

// A store error skips the charge when failing open, and stops at it with
// the error when failing closed.
func TestAllowEachStoreError(t *testing.T) {
	l := limit.Limit{Rate: 1, Burst: 1}
	cs := []limit.Charge{{Key: "a", Limit: l, Cost: 1}, {Key: "b", Limit: l, Cost: 1}, {Key: "refuse", Limit: l, Cost: 1}}
	ctx := context.Background()
	if i, retry, err := limit.AllowEach(ctx, failing{down: "b"}, cs, true); i != 2 || retry != time.Second || err != nil {
		t.Fatalf("fail open: refused %d, retry %v, err %v; want the third charge refused", i, retry, err)
	}
	if i, _, err := limit.AllowEach(ctx, failing{down: "b"}, cs, false); i != 1 || err == nil {
		t.Fatalf("fail closed: refused %d, err %v; want the second charge's error", i, err)
	}
	if i, _, err := limit.AllowEach(ctx, failing{}, cs[:2], false); i != -1 || err != nil {
		t.Fatalf("all allowed: %d, %v", i, err)
	}
}
