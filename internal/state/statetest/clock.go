// Package statetest holds what the state stores' tests share: the fake
// [Clock] they inject as their Now function (internal/tools/wsgatetest/fakeclock),
// and [Run], the runner of the conformance suites (limittest, quotatest,
// bantest, tickettest, replaytest).
//
// A nil *Clock is the real clock: Now is time.Now and Pass sleeps. So one
// suite runs against a memory store on a fake clock and against a Redis
// store on Redis' clock.
package statetest

import (
	"time"

	"github.com/wsgate/wsgate/internal/tools/wsgatetest/fakeclock"
)

// Start is where a New clock starts: a fixed instant well after 1970, so that
// arithmetic on Unix times is never near zero.
var Start = time.Unix(1_700_000_000, 0)

// Clock is the fake clock of internal/tools/wsgatetest/fakeclock.
type Clock = fakeclock.Clock

// New returns a clock at Start.
func New() *Clock { return fakeclock.New(Start) }

// At returns a clock at t.
func At(t time.Time) *Clock { return fakeclock.New(t) }
