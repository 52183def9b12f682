// Package defaults is the one rule wsgate's packages fill unset Options fields
// by. A zero field takes the package's default; for the bounds, sizes, counts
// and durations that must be positive, a negative value takes it too (nothing
// negative could mean "no limit"; validation that must refuse negatives does so
// before defaulting). Fields where zero alone means "unset" use cmp.Or.
package defaults

import "time"

// Number is what Positive fills: the integer, float and duration fields of
// Options.
type Number interface {
	~int | ~int32 | ~int64 | ~uint32 | ~uint64 | ~float64
}

// Positive sets *v to def unless *v is positive.
func Positive[T Number](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// Now sets *now, an Options' clock, to time.Now when the caller gave none.
func Now(now *func() time.Time) {
	if *now == nil {
		*now = time.Now
	}
}
