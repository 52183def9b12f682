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
