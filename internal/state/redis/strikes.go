package redis

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/wsgate/wsgate/internal/state/ban"
)

// strikeScript adds one strike to the counter at KEYS[1] in one atomic step:
// the first strike starts a window of ARGV[1] ms (the key's TTL), and the strike
// that reaches ARGV[2] deletes the key and returns 1. A key found without a TTL
// (written by hand, or left by a partial restore) gets one, so no counter lives
// forever.
var strikeScript = goredis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
if n >= tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
`)

// DefaultStrikeCallTimeout bounds one strike's wait for Redis.
const DefaultStrikeCallTimeout = 300 * time.Millisecond

// strikeWarnEvery spaces the warnings a failing counter logs.
const strikeWarnEvery = 10 * time.Second

// StrikeCounter is a ban.Counter in Redis: strikes against a subject add up over
// every node. The window is fixed, starting at the subject's first strike (the
// in-memory counter slides): a subject striking steadily is banned after
// MaxStrikes strikes within at most one Window either way.
type StrikeCounter struct {
	c        *Client
	lastWarn atomic.Int64 // unix ns of the last warning
}

// StrikeCounter returns the client's shared strike counter.
func (c *Client) StrikeCounter() *StrikeCounter { return &StrikeCounter{c: c} }

// Strike implements ban.Counter. While Redis is unreachable it fails at once
// (ban.Strikes then counts on this node) and warns at most every 10s.
func (s *StrikeCounter) Strike(ctx context.Context, subject string, window time.Duration, maxStrikes int) (bool, error) {
	if s.c.brk.Open() {
		s.warn(ErrUnavailable)
		return false, fmt.Errorf("redis strike: %w", ErrUnavailable)
	}
	ms := max(window.Milliseconds(), 1)
	cctx, cancel := context.WithTimeout(ctx, DefaultStrikeCallTimeout)
	defer cancel()
	n, err := strikeScript.Run(cctx, s.c.rdb, []string{s.c.key("strike:", subject)}, ms, max(maxStrikes, 1)).Int()
	if err != nil {
		s.c.brk.observe(err)
		s.warn(err)
		return false, fmt.Errorf("redis strike: %w", err)
	}
	return n == 1, nil
}

func (s *StrikeCounter) warn(err error) {
	now := time.Now().UnixNano()
	last := s.lastWarn.Load()
	if now-last < int64(strikeWarnEvery) || !s.lastWarn.CompareAndSwap(last, now) {
		return
	}
	s.c.opts.Logger.Warn("redis strikes: shared counter failed; strikes counted on this node only (cluster-wide limit is up to N times max_strikes)", "err", err)
}

// Interface guard.
var _ ban.Counter = (*StrikeCounter)(nil)
