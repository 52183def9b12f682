package sweep

import (
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestSweeperRunsAndStops(t *testing.T) {
	var n atomic.Int32
	s := Start(time.Millisecond, func() { n.Add(1) })
	for deadline := time.Now().Add(5 * time.Second); n.Load() < 3; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("f was not called")
		}
	}
	if !running() {
		t.Fatal(`no "sweep.(*Sweeper).loop" frame in the stacks: the leak checks of the stores look for it`)
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
	if leaked() {
		t.Error("sweeper goroutine left after Stop")
	}
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

// running reports whether a loop goroutine is there, by the frame name the stores'
// leak checks look for.
func running() bool {
	buf := make([]byte, 1<<20)
	return strings.Contains(string(buf[:runtime.Stack(buf, true)]), "sweep.(*Sweeper).loop")
}

// leaked reports whether a loop goroutine is still there; one that was just
// stopped may still be unwinding after done was closed, so it waits a little.
func leaked() bool {
	for deadline := time.Now().Add(time.Second); running(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			return true
		}
	}
	return false
}
