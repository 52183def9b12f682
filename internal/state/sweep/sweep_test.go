package sweep

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wsgate/wsgate/internal/tools/wsgatetest/wait"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSweeperRunsAndStops(t *testing.T) {
	var n atomic.Int32
	s := Start(time.Millisecond, func() { n.Add(1) })
	wait.For(t, "three calls of f", 5*time.Second, func() bool { return n.Load() >= 3 })
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
