package limit

import (
	"context"
	"time"
)

// Limit is a token-bucket (GCRA) budget: Rate tokens per second, bursting to Burst.
// A zero Rate means "no limit".
type Limit struct {
	Rate  float64
	Burst int
}

// Limiter decides whether key may spend cost tokens under l.
//
// Allow is atomic per key. When it refuses, retryAfter says when the same cost
// would be allowed. err is non-nil only when the store could not answer (e.g. Redis
// down); callers apply their documented fail-open or fail-closed policy then.
type Limiter interface {
	Allow(ctx context.Context, key string, l Limit, cost int) (ok bool, retryAfter time.Duration, err error)
}

// Charge is one budget's share of one message: Cost tokens of Key's budget
// Limit. A charge with an empty Key or a Limit without a Rate is skipped.
type Charge struct {
	Key   string
	Limit Limit
	Cost  int
}

// AllowEach charges cs in order with l, stopping at the first refusal:
// the charges before it stay spent (a refused message still cost its read).
// It returns the index of the refused charge, or -1 when every charge was
// allowed, with the refusal's retryAfter. When the store cannot answer for a
// charge, failOpen skips that charge; otherwise AllowEach stops there and
// returns its index with the store's error.
func AllowEach(ctx context.Context, l Limiter, cs []Charge, failOpen bool) (refused int, retryAfter time.Duration, err error) {
	return AllowEachAt(ctx, l, time.Time{}, cs, failOpen)
}

// AllowEachAt is AllowEach at now, a time.Now the caller already read for the
// same message (zero: none), which spares the memory store a clock read of its
// own. A store that keeps its own clock (MemoryOptions.Now, Redis) ignores
// now, and so does the memory store when now is before its creation.
func AllowEachAt(ctx context.Context, l Limiter, now time.Time, cs []Charge, failOpen bool) (refused int, retryAfter time.Duration, err error) {
	if m, ok := l.(*Memory); ok {
		// The memory store always answers: every charge at one clock read
		// (the pipeline charges up to four shared budgets per message). A
		// concrete call, so that cs does not escape: no allocation per
		// message.
		refused, retryAfter = m.allowEach(cs, now)
		return refused, retryAfter, nil
	}
	for i, c := range cs {
		if c.Key == "" || c.Limit.Rate <= 0 {
			continue
		}
		ok, retry, err := l.Allow(ctx, c.Key, c.Limit, c.Cost)
		if err != nil {
			if failOpen {
				continue
			}
			return i, 0, err
		}
		if !ok {
			return i, retry, nil
		}
	}
	return -1, 0, nil
}
