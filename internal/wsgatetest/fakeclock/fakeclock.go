// Package fakeclock is the settable clock tests hand to the Now options of
// wsgate's packages (limits, bans, tokens, signatures), so that time-dependent
// behaviour is tested without sleeping. It imports nothing of wsgate, so any
// package's internal tests can use it.
package fakeclock

import (
	"sync/atomic"
	"time"
)

// Clock is a clock that moves only when told. It is safe for concurrent use.
type Clock struct{ ns atomic.Int64 }

// New returns a clock reading t.
func New(t time.Time) *Clock {
	c := &Clock{}
	c.Set(t)
	return c
}

// Now reads the clock (in UTC, without a monotonic reading).
func (c *Clock) Now() time.Time { return time.Unix(0, c.ns.Load()).UTC() }

// Advance moves the clock by d (backwards when d is negative).
func (c *Clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// Set makes the clock read t.
func (c *Clock) Set(t time.Time) { c.ns.Store(t.UnixNano()) }
