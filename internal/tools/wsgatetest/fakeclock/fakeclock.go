// Package fakeclock is the settable clock tests hand to the Now options of
// wsgate's packages (limits, bans, quotas, tickets, tokens, signatures), so
// that expiry, refill and sliding windows are tested without sleeping. It
// imports nothing of wsgate, so any package's internal tests can use it.
//
// A nil *Clock is the real clock: Now is time.Now and Pass sleeps. So one
// conformance suite runs against a memory store on a fake clock and against a
// Redis store on Redis' clock (see internal/state/statetest).
package fakeclock

import (
	"sync"
	"time"
)

// Clock is a clock that moves only when told. It is safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// New returns a clock reading t.
func New(t time.Time) *Clock { return &Clock{t: t} }

// Now reads the clock; pass c.Now as a component's clock.
func (c *Clock) Now() time.Time {
	if c == nil {
		return time.Now()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock by d (backwards when d is negative).
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Set makes the clock read t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// Fake reports whether c is a fake clock (not nil).
func (c *Clock) Fake() bool { return c != nil }

// Pass lets d pass: Advance on a fake clock, a sleep on the real one.
func (c *Clock) Pass(d time.Duration) {
	if c == nil {
		time.Sleep(d)
		return
	}
	c.Advance(d)
}
