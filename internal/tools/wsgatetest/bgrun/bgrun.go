// Package bgrun is the tests' one way to run things in the background for the
// rest of a test: [Start] runs a component's blocking Run(ctx) (a broker, a
// room service), whose context is cancelled when the test ends and which must
// then return, with no error, within a generous bound; [Loops] is a set of
// loops (publishers, readers) stopped together. It imports nothing of
// wsgate, so any package's internal tests can use it.
package bgrun

import (
	"context"
	"sync"
	"testing"
	"time"
)

// stopBound bounds the wait for Run to return once its context ended; it only
// keeps a Run that ignores its context from hanging the test.
const stopBound = 15 * time.Second

// Start runs run(ctx) on a goroutine and returns stop, which cancels ctx and
// waits for run to return, failing t (Errorf) if it returns an error or does
// not return within the bound. stop runs when t ends; calling it earlier is
// allowed, and it does its work once.
func Start(t testing.TB, run func(ctx context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	stop = sync.OnceFunc(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v after its context ended", err)
			}
		case <-time.After(stopBound):
			t.Errorf("Run did not return within %v of its context ending", stopBound)
		}
	})
	t.Cleanup(stop)
	return stop
}

// Loops is a test's set of background loops (publishers, readers) that run
// until Halt, at the latest when the test ends. Each loop returns once Stop
// is closed.
type Loops struct {
	stop   chan struct{}
	wg     sync.WaitGroup
	halted bool
}

// NewLoops returns an empty set that halts when t ends (a cleanup registered
// now, so it runs before the cleanups of what was set up earlier).
func NewLoops(t testing.TB) *Loops {
	l := &Loops{stop: make(chan struct{})}
	t.Cleanup(l.Halt)
	return l
}

// Stop is closed by Halt.
func (l *Loops) Stop() <-chan struct{} { return l.stop }

// Go starts fn as one of the loops; the returned channel closes when fn
// returns.
func (l *Loops) Go(fn func()) <-chan struct{} {
	done := make(chan struct{})
	l.wg.Go(func() {
		defer close(done)
		fn()
	})
	return done
}

// Halt closes Stop and waits for every loop (idempotent; test goroutine only).
func (l *Loops) Halt() {
	if !l.halted {
		l.halted = true
		close(l.stop)
		l.wg.Wait()
	}
}
