package pipeline

import (
	"cmp"
	"errors"
	"fmt"
	"time"

	"github.com/wsgate/wsgate/internal/conn/schema"
	"github.com/wsgate/wsgate/internal/defaults"
	"github.com/wsgate/wsgate/internal/state/limit"
)

// Defaults applied by New to zero fields of Options.
const (
	DefaultMaxBytes    = 8 << 10
	DefaultMaxDepth    = 32
	DefaultMaxKeys     = 128
	DefaultMaxArray    = 1024
	DefaultMaxString   = 4096
	DefaultMaxNumber   = 64
	DefaultAbuseMax    = 50
	DefaultAbuseWindow = 10 * time.Second
	DefaultKeyPrefix   = "pl:"
	// DefaultTierName is the tier used when ConnState.Tier is empty or not in Tiers.
	DefaultTierName = "default"
)

// maxDepthLimit caps MaxDepth: the decoder recurses up to that depth.
const maxDepthLimit = 256

// Tier is one set of rate limits. A zero limit.Limit (Rate 0) disables that check.
// Message limits cost 1 per message; byte limits cost the message's length, so a
// byte Burst must be at least MaxBytes (Validate checks) or large messages could
// never pass.
type Tier struct {
	// Per connection, kept in the connection's ConnState (not in the Limiter).
	Messages, Bytes limit.Limit
	// Per user, across all of the user's connections (skipped when ConnState.User is "").
	UserMessages, UserBytes limit.Limit
	// Per client IP (skipped when ConnState.IP is "").
	IPMessages, IPBytes limit.Limit
}

// DefaultTier is the "default" tier used when Options.Tiers has none.
func DefaultTier() Tier {
	return Tier{
		Messages:     limit.Limit{Rate: 20, Burst: 40},
		Bytes:        limit.Limit{Rate: 64 << 10, Burst: 128 << 10},
		UserMessages: limit.Limit{Rate: 50, Burst: 100},
		UserBytes:    limit.Limit{Rate: 256 << 10, Burst: 512 << 10},
		IPMessages:   limit.Limit{Rate: 100, Burst: 200},
		IPBytes:      limit.Limit{Rate: 512 << 10, Burst: 1 << 20},
	}
}

// Options configures a Pipeline. Zero fields take the documented defaults.
type Options struct {
	// MaxBytes is the largest message accepted on this route (default 8 KiB). The
	// transport enforces its own frame limit first; this one may be tighter.
	MaxBytes int
	// TypeMaxBytes tightens MaxBytes per message type (each value in 1..MaxBytes).
	TypeMaxBytes map[string]int

	// Structure limits checked by the scanner.
	MaxDepth  int // nesting of objects and arrays, default 32, at most 256
	MaxKeys   int // members per object, default 128
	MaxArray  int // elements per array, default 1024
	MaxString int // bytes of a string or key after unescaping, default 4096
	MaxNumber int // bytes of a number literal, default 64 (|exponent| is capped at 400)

	// Registry holds the schemas; nil compiles the built-ins. Replace it live with
	// Pipeline.SetRegistry.
	Registry *schema.Registry

	// Limiter holds the per-user and per-IP budgets of Tiers, shared by every
	// connection (and every node, with a shared store). Per-connection budgets are
	// kept in each ConnState and never reach it. nil disables rate limiting.
	Limiter limit.Limiter
	// Tiers by name; ConnState.Tier picks one, falling back to "default", which falls
	// back to DefaultTier() when absent.
	Tiers map[string]Tier
	// FailOpen decides what happens when the Limiter returns an error (store down):
	// true lets the message through (availability over protection); false, the
	// default, refuses it with protocol.CodeUnavailable and a RetryAfter of one second, no strike.
	FailOpen bool
	// KeyPrefix starts every limiter key (default "pl:"), so that the pipeline's keys
	// don't collide with other users of a shared Limiter.
	KeyPrefix string

	// AbuseMax rate-limited messages within AbuseWindow on one connection close it with
	// 1008 (defaults 50 in 10 s). Negative AbuseMax disables the check.
	AbuseMax    int
	AbuseWindow time.Duration

	// Verifier, if set, runs after the structure scan and rate limits and before the
	// schema check.
	Verifier Verifier

	// Now is the clock for per-connection budgets and abuse tracking; nil means
	// time.Now.
	Now func() time.Time
}

// withDefaults returns a copy of o with defaults filled in, validated.
func (o Options) withDefaults() (Options, error) {
	o.MaxBytes = cmp.Or(o.MaxBytes, DefaultMaxBytes)
	o.MaxDepth = cmp.Or(o.MaxDepth, DefaultMaxDepth)
	o.MaxKeys = cmp.Or(o.MaxKeys, DefaultMaxKeys)
	o.MaxArray = cmp.Or(o.MaxArray, DefaultMaxArray)
	o.MaxString = cmp.Or(o.MaxString, DefaultMaxString)
	o.MaxNumber = cmp.Or(o.MaxNumber, DefaultMaxNumber)
	o.AbuseMax = cmp.Or(o.AbuseMax, DefaultAbuseMax)
	o.AbuseWindow = cmp.Or(o.AbuseWindow, DefaultAbuseWindow)
	o.KeyPrefix = cmp.Or(o.KeyPrefix, DefaultKeyPrefix)
	defaults.Now(&o.Now)
	tiers := make(map[string]Tier, len(o.Tiers)+1)
	for k, v := range o.Tiers {
		tiers[k] = v
	}
	if _, ok := tiers[DefaultTierName]; !ok {
		tiers[DefaultTierName] = DefaultTier()
	}
	o.Tiers = tiers
	typeMax := make(map[string]int, len(o.TypeMaxBytes))
	for k, v := range o.TypeMaxBytes {
		typeMax[k] = v
	}
	o.TypeMaxBytes = typeMax
	return o, o.Validate()
}

// Validate reports every invalid field of o (after defaulting, zero fields are
// invalid: New applies defaults before calling it).
func (o Options) Validate() error {
	var errs []error
	pos := func(name string, v int) {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %d", name, v))
		}
	}
	pos("MaxBytes", o.MaxBytes)
	pos("MaxDepth", o.MaxDepth)
	pos("MaxKeys", o.MaxKeys)
	pos("MaxArray", o.MaxArray)
	pos("MaxString", o.MaxString)
	pos("MaxNumber", o.MaxNumber)
	if o.MaxDepth > maxDepthLimit {
		errs = append(errs, fmt.Errorf("MaxDepth must be at most %d, got %d", maxDepthLimit, o.MaxDepth))
	}
	if o.MaxBytes > 1<<30 {
		errs = append(errs, fmt.Errorf("MaxBytes must be at most 1 GiB, got %d", o.MaxBytes))
	}
	for typ, n := range o.TypeMaxBytes {
		if n <= 0 || n > o.MaxBytes {
			errs = append(errs, fmt.Errorf("TypeMaxBytes[%q] must be in 1..MaxBytes (%d), got %d", typ, o.MaxBytes, n))
		}
	}
	if o.AbuseMax > 0 && o.AbuseWindow <= 0 {
		errs = append(errs, fmt.Errorf("AbuseWindow must be positive, got %v", o.AbuseWindow))
	}
	for name, t := range o.Tiers {
		for _, l := range []struct {
			field string
			l     limit.Limit
			bytes bool
		}{
			{"Messages", t.Messages, false}, {"Bytes", t.Bytes, true},
			{"UserMessages", t.UserMessages, false}, {"UserBytes", t.UserBytes, true},
			{"IPMessages", t.IPMessages, false}, {"IPBytes", t.IPBytes, true},
		} {
			switch {
			case l.l.Rate < 0:
				errs = append(errs, fmt.Errorf("Tiers[%q].%s.Rate must not be negative", name, l.field))
			case l.l.Rate > 0 && l.l.Burst < 1:
				errs = append(errs, fmt.Errorf("Tiers[%q].%s.Burst must be at least 1", name, l.field))
			case l.l.Rate > 0 && l.bytes && l.l.Burst < o.MaxBytes:
				errs = append(errs, fmt.Errorf("Tiers[%q].%s.Burst (%d) must be at least MaxBytes (%d)", name, l.field, l.l.Burst, o.MaxBytes))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("pipeline options: %w", err)
	}
	return nil
}
