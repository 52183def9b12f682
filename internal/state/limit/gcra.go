package limit

import (
	"math"
	"time"
)

// maxNanos caps every GCRA interval so that arithmetic on the TAT can never
// overflow int64, whatever Rate, Burst or cost the caller passes (~36 years).
const maxNanos = int64(1) << 60

// Free reports whether cost under l always passes and charges nothing: a Rate
// that is not positive (or NaN) or infinite means unlimited, and a cost of 0 or
// less costs nothing. Stores check it before looking a key up, so such calls
// never create state.
func (l Limit) Free(cost int) bool {
	return !(l.Rate > 0) || math.IsInf(l.Rate, 1) || cost <= 0
}

// GCRA is the one generic cell rate algorithm step every Go limiter in wsgate
// runs (Memory, the pipeline's per-connection budgets; the Redis limiter runs
// the same rule in Lua, and a shared test table holds them to it). tat is the
// key's theoretical arrival time (0 for a key never charged) and now the
// current time, both in ns on one clock with now >= 0.
//
// Semantics:
//   - l.Free(cost): allowed, nothing charged (next == tat).
//   - l.Burst < 1 is treated as 1.
//   - cost > Burst can never be allowed: refused without charging, retryAfter
//     = the time to refill a whole burst (Burst/Rate), so a Retry-After header
//     stays sane; callers should reject such requests outright.
//   - Otherwise a request is allowed when the bucket holds cost tokens, and
//     next is the key's new TAT to store; when refused, retryAfter is exactly
//     when the same cost would next be allowed.
func GCRA(tat, now int64, l Limit, cost int) (ok bool, retryAfter time.Duration, next int64) {
	if l.Free(cost) {
		return true, 0, tat
	}
	burst := max(l.Burst, 1)
	interval := 1e9 / l.Rate // ns per token
	inc := nanos(float64(cost) * interval)
	window := nanos(float64(burst) * interval)
	if cost > burst {
		return false, time.Duration(window), tat
	}
	next = max(tat, now) + inc
	if allowAt := next - window; allowAt > now {
		return false, time.Duration(allowAt - now), tat
	}
	return true, 0, next
}

// nanos converts a float interval to int64 nanoseconds, rounding up and
// saturating at maxNanos so that absurd limits (Rate 1e-300, cost MaxInt)
// cannot overflow.
func nanos(f float64) int64 {
	if !(f < float64(maxNanos)) { // also catches NaN
		return maxNanos
	}
	if f < 0 {
		return 0
	}
	return int64(math.Ceil(f))
}
