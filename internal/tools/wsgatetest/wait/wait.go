// Package wait is the tests' one way to wait for something another goroutine
// does (a sweeper round, a message arriving, a refresher's fetch): poll a
// condition until it holds, within a generous bound. The bound only keeps a
// lost event from hanging the test; it asserts nothing about time, so a
// loaded machine (2 cores, -race) passes where a fast one does. It imports
// nothing of wsgate, so any package's internal tests can use it.
package wait

import (
	"testing"
	"time"
)

// poll is how often cond is tried: often enough that tests do not wait
// noticeably longer than the event takes.
const poll = time.Millisecond

// For polls cond until it holds; if it still does not after within, it fails
// t (Fatal) saying what it waited for.
func For(t testing.TB, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(poll)
	}
}
