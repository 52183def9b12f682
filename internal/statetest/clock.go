// Package statetest holds what the state stores' tests share: the manual
// [Clock] they (and other tests that need one) inject as their Now function,
// so that expiry, refill and sliding windows are tested without sleeping, and
// [Run], the runner of the conformance suites (limittest, quotatest, bantest,
// tickettest, replaytest).
//
// A nil *Clock is the real clock: Now is time.Now and Pass sleeps. So one
// suite runs against a memory store on a manual clock and against a Redis
// store on Redis' clock.
package statetest

import (
	"sync"
	"time"
)

// Start is where a New clock starts: a fixed instant well after 1970, so that
// arithmetic on Unix times is never near zero.
var Start = time.Unix(1_700_000_000, 0)

// Clock is a manual clock, safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// New returns a clock at Start.
func New() *Clock { return At(Start) }

// At returns a clock at t.
func At(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time; pass c.Now as a store's clock.
func (c *Clock) Now() time.Time {
	if c == nil {
		return time.Now()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock by d (backwards if d is negative).
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Fake reports whether c is a manual clock (not nil).
func (c *Clock) Fake() bool { return c != nil }

// Pass lets d pass: Advance on a manual clock, a sleep on the real one.
func (c *Clock) Pass(d time.Duration) {
	if c == nil {
		time.Sleep(d)
		return
	}
	c.Advance(d)
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}
