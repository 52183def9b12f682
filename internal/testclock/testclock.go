// Package testclock is the manual clock the state stores' tests inject as their
// Now function, so that expiry, refill and sliding windows are tested without
// sleeping: time moves only when the test calls Advance.
package testclock

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
func New() *Clock { return &Clock{t: Start} }

// Now returns the clock's time; pass c.Now as a store's clock.
func (c *Clock) Now() time.Time {
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

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}
