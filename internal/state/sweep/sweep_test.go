package sweep

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSweeperRunsAndStops(t *testing.T) {
	var n atomic.Int32
	s := Start(time.Millisecond, func() { n.Add(1) })
	for deadline := time.Now().Add(5 * time.Second); n.Load() < 3; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("f was not called")
		}
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(s.Stop) // concurrent and repeated Stops are fine
	}
	wg.Wait()
	after := n.Load()
	time.Sleep(5 * time.Millisecond)
	if n.Load() != after {
		t.Error("f called after Stop returned")
	}
	goleak.VerifyNone(t) // the loop goroutine is gone once Stop returns
}

func TestDisabled(t *testing.T) {
	if s := Start(0, func() {}); s != nil {
		t.Fatal("interval 0 started a sweeper")
	}
	if s := Start(-1, func() {}); s != nil {
		t.Fatal("negative interval started a sweeper")
	}
	var nilSweeper *Sweeper
	nilSweeper.Stop()
	(&Sweeper{}).Stop()
}
