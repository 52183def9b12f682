package limittest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/state/limit"
	"github.com/wsgate/wsgate/internal/state/statetest"
)

// realClockSlack is how far a limiter on a real clock may answer below the
// table's retryAfter: the time that passes between the table's calls.
const realClockSlack = 50 * time.Millisecond

// Run runs the suite against the limiters newLimiter makes. clock is the
// clock they read (clock.Now), or nil for a limiter on a real clock (Redis).
func Run(t *testing.T, clock *statetest.Clock, newLimiter func(t *testing.T) limit.Limiter) {
	statetest.Run(t, func(t *testing.T) any { return suite{newLimiter(t), clock} })
}

type suite statetest.Suite[limit.Limiter]

// Check runs the GCRA table against allow, a limiter's Allow on one fresh key
// per case at the time the case gives (for limit.GCRA itself, and limit.Memory
// in tests that hold the clock).
func Check(t *testing.T, allow func(key string, at time.Duration, l limit.Limit, cost int) (bool, time.Duration)) {
	t.Helper()
	for _, c := range GCRACases {
		for i, s := range c.Steps {
			ok, retry := allow(c.Name, s.At, c.Limit, s.Cost)
			if err := s.check(ok, retry, 0); err != nil {
				t.Errorf("%s, step %d (at %v, cost %d): %v", c.Name, i, s.At, s.Cost, err)
				break
			}
		}
	}
}

func (s Step) check(ok bool, retry, slack time.Duration) error {
	switch {
	case ok != s.OK:
		return fmt.Errorf("allowed %v, want %v (retry %v)", ok, s.OK, retry)
	case ok && retry != 0:
		return fmt.Errorf("allowed with retryAfter %v", retry)
	case ok:
		return nil
	case s.Retry == AnyRetry && retry > 0:
		return nil
	case retry > s.Retry || retry < s.Retry-slack || (s.Retry == AnyRetry && retry <= 0):
		return fmt.Errorf("retryAfter %v, want %v (slack %v)", retry, s.Retry, slack)
	}
	return nil
}

func allow(t *testing.T, l limit.Limiter, key string, lim limit.Limit, cost int) (bool, time.Duration) {
	t.Helper()
	ok, retry, err := l.Allow(context.Background(), key, lim, cost)
	if err != nil {
		t.Fatalf("Allow(%q, %+v, %d): %v", key, lim, cost, err)
	}
	return ok, retry
}

// key makes keys unique per test, so that the suite also runs against a store
// shared between tests.
func key(t *testing.T, k string) string { return t.Name() + "/" + k }

func (x suite) Table(t *testing.T) {
	clk := x.Clock
	for _, c := range GCRACases {
		if !clk.Fake() && !c.Timeless() {
			continue
		}
		// On a real clock a starved machine can stretch the gap between two
		// calls past the slack; a case is run again on a fresh key before its
		// failure counts (a wrong answer fails every attempt).
		attempts := 1
		if !clk.Fake() {
			attempts = 3
		}
		var err error
		for a := range attempts {
			if err = x.runCase(t, c, fmt.Sprintf("%s#%d", c.Name, a)); err == nil {
				break
			}
		}
		if err != nil {
			t.Error(err)
		}
	}
}

// runCase runs the steps of c on the key name.
func (x suite) runCase(t *testing.T, c Case, name string) error {
	l, clk := x.Store, x.Clock
	start := clk.Now()
	for i, s := range c.Steps {
		if clk.Fake() {
			clk.Set(start.Add(s.At))
		}
		ok, retry := allow(t, l, key(t, name), c.Limit, s.Cost)
		slack := time.Duration(0)
		if !clk.Fake() {
			slack = realClockSlack
		}
		if err := s.check(ok, retry, slack); err != nil {
			return fmt.Errorf("%s, step %d (at %v, cost %d): %w", c.Name, i, s.At, s.Cost, err)
		}
	}
	return nil
}

func (x suite) Unlimited(t *testing.T) {
	l := x.Store
	for _, lim := range Unlimited {
		for i := range 20 {
			if ok, _ := allow(t, l, key(t, fmt.Sprint(i)), lim, 1_000_000); !ok {
				t.Fatalf("limit %+v refused", lim)
			}
		}
	}
}

func (x suite) KeysIndependent(t *testing.T) {
	l := x.Store
	lim := limit.Limit{Rate: 0.001, Burst: 2}
	for _, k := range []string{"a", "b", "ip:203.0.113.7", "user:alice"} {
		for i := range 2 {
			if ok, _ := allow(t, l, key(t, k), lim, 1); !ok {
				t.Fatalf("key %q: call %d within its own burst refused", k, i)
			}
		}
		if ok, _ := allow(t, l, key(t, k), lim, 1); ok {
			t.Fatalf("key %q: third call allowed", k)
		}
	}
}

// Concurrent calls on one key spend exactly the burst: Allow is atomic per key.
func (x suite) ConcurrentHotKey(t *testing.T) {
	l := x.Store
	lim := limit.Limit{Rate: 0.001, Burst: 100} // no refill during the test
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 25 {
				if ok, _, err := l.Allow(context.Background(), key(t, "hot"), lim, 1); err != nil {
					t.Error(err)
					return
				} else if ok {
					allowed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := allowed.Load(); n != 100 {
		t.Fatalf("allowed %d of 200 under a burst of 100, want exactly 100", n)
	}
}

// A refused key passes again once retryAfter has passed.
func (x suite) Refill(t *testing.T) {
	l, clk := x.Store, x.Clock
	lim := limit.Limit{Rate: 50, Burst: 1}
	k := key(t, "k")
	if ok, _ := allow(t, l, k, lim, 1); !ok {
		t.Fatal("first call refused")
	}
	ok, retry := allow(t, l, k, lim, 1)
	if ok || retry <= 0 || retry > 20*time.Millisecond {
		t.Fatalf("second call: ok=%v retry=%v, want refused within 20ms", ok, retry)
	}
	if clk.Fake() {
		clk.Pass(retry)
	} else {
		clk.Pass(retry + time.Millisecond) // Redis' clock is not the test's
	}
	if ok, retry := allow(t, l, k, lim, 1); !ok {
		t.Fatalf("refused after retryAfter passed (retry %v)", retry)
	}
}
