// Package limittest is the conformance suite every limit.Limiter must pass, and
// the GCRA table that holds limit.GCRA, limit.Memory and the Redis limiter's Lua
// script to one rule.
//
// Run(t, newLimiter) builds a fresh limiter per subtest. A limiter that takes
// its time from the suite's manual clock (limit.Memory) is checked exactly,
// with time advanced by the table; one on a real clock (Redis) is checked on
// the table's steps that need no time to pass, with retryAfter allowed to be
// off by the time that passes between calls, and waits in real time once for a
// refill. The suite never asserts on elapsed time.
package limittest
