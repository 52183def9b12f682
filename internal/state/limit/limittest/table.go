package limittest

import (
	"math"
	"time"

	"github.com/wsgate/wsgate/internal/state/limit"
)

// Step is one call in a Case: At after the case started, spend Cost; OK and
// Retry are the expected answer (Retry only when refused; AnyRetry for any
// positive value, where implementations clamp absurd limits differently).
type Step struct {
	At    time.Duration
	Cost  int
	OK    bool
	Retry time.Duration
}

// AnyRetry as a Step's Retry accepts any positive retryAfter.
const AnyRetry = time.Duration(-1)

// Case is one key's history under one Limit.
type Case struct {
	Name  string
	Limit limit.Limit
	Steps []Step
}

// Timeless reports whether a limiter on a real clock can run c: every step is
// at time 0, and the time a real clock may move between two calls
// (realClockSlack) refills less than one unit (a byte budget at 1000/s does
// refill in a millisecond).
func (c Case) Timeless() bool {
	if c.Limit.Rate*realClockSlack.Seconds() >= 1 {
		return false
	}
	for _, s := range c.Steps {
		if s.At != 0 {
			return false
		}
	}
	return true
}

// GCRACases is the table of GCRA answers every implementation must give.
var GCRACases = []Case{
	{"burst then refused", limit.Limit{Rate: 10, Burst: 3}, []Step{
		{0, 1, true, 0}, {0, 1, true, 0}, {0, 1, true, 0},
		{0, 1, false, 100 * time.Millisecond},
		{0, 2, false, 200 * time.Millisecond},
	}},
	{"cost above burst never passes and charges nothing", limit.Limit{Rate: 2, Burst: 3}, []Step{
		{0, 4, false, 1500 * time.Millisecond},
		{0, 3, true, 0},
		{0, 1, false, 500 * time.Millisecond},
	}},
	{"free and unlimited", limit.Limit{Rate: 1, Burst: 1}, []Step{
		{0, 1, true, 0},
		{0, 0, true, 0},
		{0, -5, true, 0},
		{0, 1, false, time.Second},
	}},
	{"burst below one is one", limit.Limit{Rate: 1, Burst: 0}, []Step{
		{0, 1, true, 0},
		{0, 1, false, time.Second},
	}},
	{"byte budget", limit.Limit{Rate: 1000, Burst: 4096}, []Step{
		{0, 3000, true, 0},
		{0, 1500, false, 404 * time.Millisecond},
		{0, 1096, true, 0},
		{0, 1, false, time.Millisecond},
	}},
	{"refill at the exact retry", limit.Limit{Rate: 10, Burst: 5}, []Step{
		{0, 5, true, 0},
		{0, 1, false, 100 * time.Millisecond},
		{99 * time.Millisecond, 1, false, time.Millisecond},
		{100 * time.Millisecond, 1, true, 0},
		{100 * time.Millisecond, 1, false, 100 * time.Millisecond},
	}},
	{"steady rate", limit.Limit{Rate: 10, Burst: 1}, []Step{
		{0, 1, true, 0},
		{100 * time.Millisecond, 1, true, 0},
		{150 * time.Millisecond, 1, false, 50 * time.Millisecond},
		{200 * time.Millisecond, 1, true, 0},
	}},
	{"idle refills the burst, not more", limit.Limit{Rate: 10, Burst: 2}, []Step{
		{0, 2, true, 0},
		{time.Hour, 1, true, 0},
		{time.Hour, 1, true, 0},
		{time.Hour, 1, false, 100 * time.Millisecond},
	}},
	{"absurdly slow rate", limit.Limit{Rate: 1e-300, Burst: 1}, []Step{
		{0, 1, true, 0},
		{0, 1, false, AnyRetry},
	}},
}

// Unlimited are limits under which every cost passes uncharged.
var Unlimited = []limit.Limit{{}, {Rate: -1, Burst: 3}, {Rate: math.NaN()}, {Rate: math.Inf(1)}}
