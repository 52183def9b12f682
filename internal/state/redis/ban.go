package redis

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/wsgate/wsgate/internal/defaults"
	"github.com/wsgate/wsgate/internal/state/ban"
	"github.com/wsgate/wsgate/internal/state/shardmap"
	"github.com/wsgate/wsgate/internal/truncate"
)

// Ban keys share the hash tag {bans}: one key per subject holding the encoded
// ban (expiring with it), and a sorted set subject -> expiry (ms, +inf for
// permanent) that List reads and that bounds the count.

// banScript stores a ban unless a longer one is in force, evicting the ban that
// expires soonest when the list is full. KEYS: ban key, index; ARGV: subject,
// expiry ms (-1 permanent), encoded ban, max entries, key prefix for evictions,
// invalidation channel. Returns 1 stored or kept, 0 full.
var banScript = goredis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function score(s)
  if s == nil or s == false then return nil end
  if s == 'inf' or s == '+inf' then return math.huge end
  return tonumber(s)
end
local exp = tonumber(ARGV[2])
if exp < 0 then exp = math.huge end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local cur = score(redis.call('ZSCORE', KEYS[2], ARGV[1]))
if cur ~= nil then
  if cur >= exp then return 1 end
else
  local max = tonumber(ARGV[4])
  if max > 0 and redis.call('ZCARD', KEYS[2]) >= max then
    local low = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
    if exp <= score(low[2]) then return 0 end
    redis.call('ZREM', KEYS[2], low[1])
    redis.call('DEL', ARGV[5] .. low[1])
    redis.call('PUBLISH', ARGV[6], low[1])
  end
end
redis.call('SET', KEYS[1], ARGV[3])
if exp == math.huge then
  redis.call('ZADD', KEYS[2], '+inf', ARGV[1])
else
  redis.call('PEXPIREAT', KEYS[1], exp)
  redis.call('ZADD', KEYS[2], exp, ARGV[1])
end
redis.call('PUBLISH', ARGV[6], ARGV[1])
return 1
`)

// Defaults for BanOptions.
const (
	DefaultBanCacheTTL     = 500 * time.Millisecond
	DefaultBanCacheEntries = 100_000
)

// BanOptions configures Client.BanList.
type BanOptions struct {
	// MaxEntries bounds the bans stored in Redis (default ban.DefaultMaxEntries);
	// when full, the ban expiring soonest is evicted if the new one outlasts it,
	// else Ban returns ban.ErrFull, as in ban.MemoryList.
	MaxEntries int
	// CacheTTL is how long a lookup (banned or not) is answered from this node's
	// cache (default 500ms). Every Ban and Unban also publishes an invalidation
	// that drops the cached entry on every node at once, so CacheTTL only bounds
	// staleness when that message is lost (e.g. during a reconnect, after which
	// the whole cache is dropped anyway). Negative disables the cache.
	CacheTTL time.Duration
	// CacheEntries bounds the cache (default 100000); a full cache stops caching
	// new subjects until entries expire.
	CacheEntries int
	// OnKick, if set, is called on every node (the kicking one included) for
	// each Kick, with the banned subject: it closes that subject's local
	// connections. It runs on the list's listener goroutine and must not block.
	// A kick published while a node's subscription is down is lost for that
	// node (its banned connections stay open; new handshakes are refused).
	OnKick func(subject string)
}

// BanList is a ban.List in Redis with a node-local lookup cache invalidated over
// pub/sub. Banned returns the Redis error when the subject is not cached and
// Redis cannot answer; the guard applies its policy.
type BanList struct {
	rdb   goredis.UniversalClient
	c     *Client
	opts  BanOptions
	index string
	topic string
	kicks string // channel of Kick

	cache *shardmap.Map[string, banCached]
	gen   atomic.Uint64 // bumped by every invalidation; stale lookups are not cached

	ps   *goredis.PubSub
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

const banShards = 16

type banCached struct {
	b       ban.Ban
	found   bool
	expires int64
}

// BanList returns the client's ban list (created on first call with opts; later
// calls return the same list) and starts its invalidation listener.
func (c *Client) BanList(opts BanOptions) *BanList {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bans != nil {
		return c.bans
	}
	defaults.Positive(&opts.MaxEntries, ban.DefaultMaxEntries)
	opts.CacheTTL = cmp.Or(opts.CacheTTL, DefaultBanCacheTTL)
	defaults.Positive(&opts.CacheEntries, DefaultBanCacheEntries)
	l := &BanList{
		rdb:   c.rdb,
		c:     c,
		opts:  opts,
		index: c.key("{bans}:z"),
		topic: c.key("bans"),
		kicks: c.key("bans:kick"),
		cache: shardmap.New[string, banCached](shardmap.Options{MaxKeys: opts.CacheEntries, Shards: banShards}),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	c.bans = l
	if c.closed || (opts.CacheTTL < 0 && opts.OnKick == nil) {
		close(l.done)
		return l
	}
	c.closers = append(c.closers, l.close)
	l.ps = c.rdb.Subscribe(context.Background())
	go l.listen()
	return l
}

func (l *BanList) subjectKey(s string) string { return l.c.key("{bans}:s:", s) }

type banRecord struct {
	S string `json:"s"`
	U int64  `json:"u,omitempty"` // until, unix ms; 0 permanent
	R string `json:"r,omitempty"`
	C int64  `json:"c"` // created, unix ms
}

// maxUnixMilli is the last instant an int64 of Unix nanoseconds can hold; later
// bans are treated as permanent, as in ban.MemoryList.
var maxUnixMilli = int64(math.MaxInt64 / int64(time.Millisecond))

// Ban implements ban.List.
func (l *BanList) Ban(ctx context.Context, b ban.Ban) error {
	if b.Subject == "" || len(b.Subject) > ban.MaxSubjectLen {
		return fmt.Errorf("redis ban %.64q: %w", b.Subject, ban.ErrInvalidSubject)
	}
	now := time.Now()
	if !b.Until.IsZero() && !b.Until.After(now) {
		return nil
	}
	if b.Created.IsZero() {
		b.Created = now
	}
	rec := banRecord{S: b.Subject, R: truncate.UTF8(b.Reason, ban.MaxReasonLen), C: b.Created.UnixMilli()}
	exp := int64(-1)
	if !b.Until.IsZero() && b.Until.UnixMilli() < maxUnixMilli {
		rec.U = b.Until.UnixMilli()
		exp = rec.U
	}
	enc, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("redis ban: encode: %w", err)
	}
	ok, err := banScript.Run(ctx, l.rdb, []string{l.subjectKey(b.Subject), l.index},
		b.Subject, exp, enc, l.opts.MaxEntries, l.c.key("{bans}:s:"), l.topic).Int()
	if err != nil {
		return fmt.Errorf("redis ban: %w", err)
	}
	l.invalidate(b.Subject)
	if ok == 0 {
		return fmt.Errorf("redis ban %.64q: %w", b.Subject, ban.ErrFull)
	}
	return nil
}

// Unban implements ban.List.
func (l *BanList) Unban(ctx context.Context, subject string) error {
	pipe := l.rdb.TxPipeline()
	pipe.Del(ctx, l.subjectKey(subject))
	pipe.ZRem(ctx, l.index, subject)
	pipe.Publish(ctx, l.topic, subject)
	_, err := pipe.Exec(ctx)
	l.invalidate(subject)
	if err != nil {
		return fmt.Errorf("redis unban: %w", err)
	}
	return nil
}

// Kick asks every node to close subject's live connections (1008 "banned"),
// through BanOptions.OnKick. When Redis cannot take the message it closes this
// node's connections at once and returns the error: other nodes keep theirs.
func (l *BanList) Kick(ctx context.Context, subject string) error {
	if subject == "" || len(subject) > ban.MaxSubjectLen {
		return fmt.Errorf("redis kick %.64q: %w", subject, ban.ErrInvalidSubject)
	}
	var err error
	if l.c.brk.Open() {
		err = ErrUnavailable
	} else if err = l.rdb.Publish(ctx, l.kicks, subject).Err(); err != nil {
		l.c.brk.observe(err)
	}
	if err != nil {
		if l.opts.OnKick != nil {
			l.opts.OnKick(subject)
		}
		return fmt.Errorf("redis kick %.64q: other nodes not told: %w", subject, err)
	}
	return nil
}

// Banned implements ban.List.
func (l *BanList) Banned(ctx context.Context, subject string) (ban.Ban, bool, error) {
	now := time.Now()
	sh := l.cache.For(subject)
	if l.opts.CacheTTL > 0 {
		sh.Lock()
		e, ok := sh.Get(subject)
		sh.Unlock()
		if ok && e.expires > now.UnixNano() {
			if e.found && !e.b.Permanent() && !e.b.Until.After(now) {
				return ban.Ban{}, false, nil
			}
			return e.b, e.found, nil
		}
	}
	gen := l.gen.Load()
	raw, err := l.rdb.Get(ctx, l.subjectKey(subject)).Bytes()
	var (
		b     ban.Ban
		found bool
	)
	switch {
	case errors.Is(err, goredis.Nil):
	case err != nil:
		return ban.Ban{}, false, fmt.Errorf("redis banned: %w", err)
	default:
		var rec banRecord
		if err := json.Unmarshal(raw, &rec); err != nil {
			return ban.Ban{}, false, fmt.Errorf("redis banned: decode: %w", err)
		}
		b, found = rec.ban(), true
		if !b.Permanent() && !b.Until.After(now) {
			b, found = ban.Ban{}, false
		}
	}
	if l.opts.CacheTTL > 0 {
		sh.Lock()
		// A lookup that raced with an invalidation may hold the old answer.
		if l.gen.Load() == gen {
			if sh.Full() {
				sh.DeleteFunc(func(_ string, v banCached) bool { return v.expires <= now.UnixNano() })
			}
			if !sh.Full() {
				sh.Set(subject, banCached{b: b, found: found, expires: now.Add(l.opts.CacheTTL).UnixNano()})
			}
		}
		sh.Unlock()
	}
	return b, found, nil
}

func (r banRecord) ban() ban.Ban {
	b := ban.Ban{Subject: r.S, Reason: r.R, Created: time.UnixMilli(r.C)}
	if r.U != 0 {
		b.Until = time.UnixMilli(r.U)
	}
	return b
}

// List implements ban.List: the bans in force, sorted by subject.
func (l *BanList) List(ctx context.Context) ([]ban.Ban, error) {
	now := time.Now().UnixMilli()
	subjects, err := l.rdb.ZRangeByScore(ctx, l.index, &goredis.ZRangeBy{Min: fmt.Sprint(now + 1), Max: "+inf"}).Result()
	if err != nil {
		return nil, fmt.Errorf("redis ban list: %w", err)
	}
	var out []ban.Ban
	const chunk = 500
	for start := 0; start < len(subjects); start += chunk {
		part := subjects[start:min(start+chunk, len(subjects))]
		keys := make([]string, len(part))
		for i, s := range part {
			keys[i] = l.subjectKey(s)
		}
		vals, err := l.rdb.MGet(ctx, keys...).Result()
		if err != nil {
			return nil, fmt.Errorf("redis ban list: %w", err)
		}
		for _, v := range vals {
			s, ok := v.(string)
			if !ok {
				continue // expired between the two reads
			}
			var rec banRecord
			if json.Unmarshal([]byte(s), &rec) != nil {
				continue
			}
			out = append(out, rec.ban())
		}
	}
	slices.SortFunc(out, func(a, b ban.Ban) int { return strings.Compare(a.Subject, b.Subject) })
	return out, nil
}

// invalidate drops subject from the cache; an empty subject drops everything.
func (l *BanList) invalidate(subject string) {
	l.gen.Add(1)
	if subject != "" {
		sh := l.cache.For(subject)
		sh.Lock()
		sh.Delete(subject)
		sh.Unlock()
		return
	}
	l.cache.Clear()
}

// listen applies invalidations from every node until close. Whenever the
// subscription is (re)established or fails, the whole cache is dropped: messages
// may have been lost meanwhile.
func (l *BanList) listen() {
	defer close(l.done)
	ctx := context.Background()
	wait := 50 * time.Millisecond
	if err := l.ps.Subscribe(ctx, l.topic, l.kicks); err != nil {
		l.c.opts.Logger.Warn("redis ban invalidation subscribe failed; retrying", "err", err)
	}
	for {
		msg, err := l.ps.Receive(ctx)
		select {
		case <-l.stop:
			return
		default:
		}
		if err != nil {
			l.invalidate("")
			if !backoff(l.stop, wait) {
				return
			}
			wait = min(wait*2, 2*time.Second)
			continue
		}
		wait = 50 * time.Millisecond
		switch m := msg.(type) {
		case *goredis.Message:
			if m.Channel == l.kicks {
				if l.opts.OnKick != nil {
					l.opts.OnKick(m.Payload)
				}
				continue
			}
			l.invalidate(m.Payload)
		case *goredis.Subscription:
			l.invalidate("")
		}
	}
}

func (l *BanList) close() {
	l.once.Do(func() { close(l.stop) })
	if l.ps != nil {
		_ = l.ps.Close() // unblocks Receive
	}
	<-l.done
}

// Interface guard.
var _ ban.List = (*BanList)(nil)
