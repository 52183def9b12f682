package redis

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/wsgate/wsgate/internal/state/quota"
)

// Quota keys share the hash tag {q}, so that the count hashes and the node set
// sit in one Cluster slot and one script can read them together.
//
// A count is a hash per quota key: field = node id, value = that node's live
// connections. The node set is a sorted set: member = node id, score = the Redis
// time (ms) at which the node's lease ends unless it heartbeats again. Only the
// counts of live nodes are summed, so a node killed without releasing stops
// counting once its lease ends; its fields are deleted lazily.

// quotaLive is the shared prelude: the Redis time in ms and a function summing
// the counts of live nodes (dropping dead nodes' fields).
const quotaLive = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function live_sum(h, nodes, self)
  local f = redis.call('HGETALL', h)
  local sum = 0
  for i = 1, #f, 2 do
    local exp = redis.call('ZSCORE', nodes, f[i])
    if f[i] == self or (exp and tonumber(exp) > now) then
      sum = sum + (tonumber(f[i + 1]) or 0)
    else
      redis.call('HDEL', h, f[i])
    end
  end
  return sum
end
`

// quotaLost is the shared check for lost quota data: rebuilding(node set,
// rebuild marker); ARGV[4] is 1 when this node had registered before, ARGV[5]
// the rebuild window in ms. A registered node finding no node
// set at all means Redis lost the counts of every node: until each live node
// had time to heartbeat (and rewrite its counts), a sum would under-count, so
// the window opens and acquires are answered "rebuilding".
const quotaLost = `
local function rebuilding(nodes, marker)
  if ARGV[4] == '1' and redis.call('EXISTS', nodes) == 0 then
    redis.call('SET', marker, '1', 'PX', ARGV[5])
  end
  return redis.call('EXISTS', marker) == 1
end
`

// quotaAcquireScript: KEYS hash, nodes, rebuild marker; ARGV node, max, lease
// ttl ms, registered, rebuild window ms. Returns 1 acquired, 0 at quota, -1
// rebuilding after a data loss (see quotaLost).
var quotaAcquireScript = goredis.NewScript(quotaLive + quotaLost + `
if rebuilding(KEYS[2], KEYS[3]) then return -1 end
local ttl = tonumber(ARGV[3])
redis.call('ZADD', KEYS[2], now + ttl, ARGV[1])
local max = tonumber(ARGV[2])
if max > 0 and live_sum(KEYS[1], KEYS[2], ARGV[1]) >= max then return 0 end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('PEXPIRE', KEYS[1], ttl * 3)
return 1
`)

// quotaCountScript: KEYS hash, nodes; ARGV node.
var quotaCountScript = goredis.NewScript(quotaLive + `
return live_sum(KEYS[1], KEYS[2], ARGV[1])
`)

// quotaReleaseScript: KEYS hash; ARGV node. Never below zero.
var quotaReleaseScript = goredis.NewScript(`
local v = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') or 0
if v <= 1 then redis.call('HDEL', KEYS[1], ARGV[1]) else redis.call('HINCRBY', KEYS[1], ARGV[1], -1) end
return 0
`)

// quotaBeatScript renews this node's lease and forgets nodes dead for long. It
// returns 1 when the node was missing (first beat, declared dead, or Redis lost
// its data): the caller then rewrites all its counts. KEYS nodes, rebuild
// marker; ARGV node, ttl, unused, registered, rebuild window ms.
var quotaBeatScript = goredis.NewScript(quotaLost + `
rebuilding(KEYS[1], KEYS[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl * 10)
local exp = redis.call('ZSCORE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl * 20)
if exp and tonumber(exp) > now then return 0 end
return 1
`)

// QuotaStore is a quota.Store whose counts are per-node leases in Redis.
//
// The node mirrors its own counts in memory (bounded by its live connections)
// and a heartbeat goroutine, every LeaseTTL/3, renews its lease, refreshes the
// TTL of the hashes it counts in and rewrites its counts when Redis lost them
// (restart) or when a Release could not reach Redis.
type QuotaStore struct {
	rdb   goredis.UniversalClient
	c     *Client
	node  string
	ttlMS int64
	nodes string

	mu     sync.Mutex
	counts map[string]int  // quota key -> this node's live count
	dirty  map[string]bool // keys whose Redis count may differ from counts

	// registered is set once Redis held this node's lease: a node set missing
	// after that means Redis lost data (see quotaLost).
	registered atomic.Bool
	// unsure is set when a heartbeat failed on this side: Redis may still
	// have run it late (a partition that delivers after the timeout), renewing
	// a lease that had lapsed — its peers then dropped this node's counts, and
	// the late beat's "missing" answer never reached us. The next beat that
	// succeeds rewrites every count, as after a lapse it saw.
	unsure  atomic.Bool
	rebuild string // key of the rebuild marker

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// ErrRebuilding is returned, wrapped, by Acquire while the counts are being
// rebuilt after Redis lost them (at most LeaseTTL/2): the guard refuses the
// handshake (503) rather than admit on a count that misses other nodes'
// connections.
var ErrRebuilding = errors.New("redis quota: counts being rebuilt after Redis lost them")

// QuotaStore returns the client's quota store, starting its heartbeat on first use.
func (c *Client) QuotaStore() *QuotaStore {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.quota != nil {
		return c.quota
	}
	q := &QuotaStore{
		rdb:     c.rdb,
		c:       c,
		node:    c.opts.NodeID,
		ttlMS:   c.opts.LeaseTTL.Milliseconds(),
		nodes:   c.key("{q}:nodes"),
		rebuild: c.key("{q}:rebuild"),
		counts:  make(map[string]int),
		dirty:   make(map[string]bool),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	c.quota = q
	if c.closed {
		close(q.done)
		return q
	}
	c.closers = append(c.closers, q.close)
	go q.heartbeatLoop(c.opts.LeaseTTL / 3)
	return q
}

func (q *QuotaStore) hash(key string) string { return q.c.key("{q}:c:", key) }

func (q *QuotaStore) registeredArg() int {
	if q.registered.Load() {
		return 1
	}
	return 0
}

// rebuildWindow is long enough for every live node to beat once (every
// LeaseTTL/3) and rewrite its counts.
func (q *QuotaStore) rebuildWindow() int64 { return max(q.ttlMS/2, 1) }

// Acquire implements quota.Store: atomically, the sum over live nodes of key's
// counts must be below max (max <= 0: no cap) for this node's count to grow.
func (q *QuotaStore) Acquire(ctx context.Context, key string, max int) (bool, error) {
	ok, err := quotaAcquireScript.Run(ctx, q.rdb, []string{q.hash(key), q.nodes, q.rebuild},
		q.node, max, q.ttlMS, q.registeredArg(), q.rebuildWindow()).Int()
	if err != nil {
		return false, fmt.Errorf("redis quota: acquire: %w", err)
	}
	if ok == -1 {
		// Put this node's own counts back at once instead of at its next beat.
		if err := q.beat(ctx); err != nil {
			q.c.opts.Logger.Warn("redis quota: rewriting counts after a data loss failed", "err", err)
		}
		return false, fmt.Errorf("redis quota: acquire %q: %w", key, ErrRebuilding)
	}
	q.registered.Store(true)
	if ok != 1 {
		return false, nil
	}
	q.mu.Lock()
	q.counts[key]++
	q.mu.Unlock()
	return true, nil
}

// Release implements quota.Store. The local count drops even when Redis cannot
// be reached; the heartbeat then rewrites the Redis count, and if this node dies
// first, its lease expiry frees the slot.
func (q *QuotaStore) Release(ctx context.Context, key string) error {
	q.mu.Lock()
	n, ok := q.counts[key]
	switch {
	case !ok:
		q.mu.Unlock()
		return nil // not ours: never free someone else's slot
	case n <= 1:
		delete(q.counts, key)
	default:
		q.counts[key] = n - 1
	}
	q.mu.Unlock()
	if err := quotaReleaseScript.Run(ctx, q.rdb, []string{q.hash(key)}, q.node).Err(); err != nil {
		q.mu.Lock()
		q.dirty[key] = true
		q.mu.Unlock()
		return fmt.Errorf("redis quota: release: %w", err)
	}
	return nil
}

// Count implements quota.Store: the live count over all nodes.
func (q *QuotaStore) Count(ctx context.Context, key string) (int, error) {
	n, err := quotaCountScript.Run(ctx, q.rdb, []string{q.hash(key), q.nodes}, q.node).Int()
	if err != nil {
		return 0, fmt.Errorf("redis quota: count: %w", err)
	}
	return n, nil
}

// LocalCount returns this node's own count of key (for tests and metrics).
func (q *QuotaStore) LocalCount(key string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.counts[key]
}

// heartbeatLoop beats every interval until close. The first beat waits one
// interval: Acquire itself enters the node in the node set.
func (q *QuotaStore) heartbeatLoop(every time.Duration) {
	defer close(q.done)
	for backoff(q.stop, every) {
		ctx, cancel := context.WithTimeout(context.Background(), every)
		if err := q.beat(ctx); err != nil {
			q.c.opts.Logger.Warn("redis quota heartbeat failed", "err", err)
		}
		cancel()
	}
}

// beat renews the lease; see QuotaStore.
func (q *QuotaStore) beat(ctx context.Context) error {
	missing, err := quotaBeatScript.Run(ctx, q.rdb, []string{q.nodes, q.rebuild}, q.node, q.ttlMS, 0,
		q.registeredArg(), q.rebuildWindow()).Int()
	if err != nil {
		q.unsure.Store(true)
		return fmt.Errorf("redis quota: heartbeat: %w", err)
	}
	if q.unsure.Swap(false) {
		missing = 1
	}
	if missing == 1 && q.registered.Load() {
		q.c.opts.Logger.Warn("redis quota: this node's lease was gone (Redis lost data, or the node was paused past its lease); rewriting its counts",
			"node", q.node)
	}
	q.registered.Store(true)
	q.mu.Lock()
	snap := make(map[string]int, len(q.counts))
	for k, v := range q.counts {
		snap[k] = v
	}
	dirty := q.dirty
	q.dirty = make(map[string]bool)
	q.mu.Unlock()
	// A count is rewritten only when it may be wrong in Redis: after this node
	// went missing (first beat, declared dead by its peers, or Redis lost its
	// data) or for keys whose Release failed. A healthy beat only renews TTLs, so
	// it never races with a concurrent Acquire or Release; the rewrite itself
	// can (a count changed between snapshot and write is off by one until the
	// next change), which is accepted for this recovery path.
	pipe := q.rdb.Pipeline()
	for k := range dirty {
		if _, live := snap[k]; !live {
			pipe.HDel(ctx, q.hash(k), q.node)
		}
	}
	for k, v := range snap {
		h := q.hash(k)
		if missing == 1 || dirty[k] {
			pipe.HSet(ctx, h, q.node, v)
		}
		pipe.PExpire(ctx, h, 3*time.Duration(q.ttlMS)*time.Millisecond)
	}
	if pipe.Len() == 0 {
		return nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		if missing == 1 {
			q.unsure.Store(true)
		}
		q.mu.Lock()
		for k := range dirty {
			q.dirty[k] = true
		}
		q.mu.Unlock()
		return fmt.Errorf("redis quota: heartbeat counts: %w", err)
	}
	return nil
}

// close stops the heartbeat and withdraws this node's lease, so that a graceful
// shutdown frees its slots at once (a crash frees them after LeaseTTL).
func (q *QuotaStore) close() {
	q.once.Do(func() { close(q.stop) })
	<-q.done
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = q.rdb.ZRem(ctx, q.nodes, q.node).Err()
}

// kill stops the heartbeat without withdrawing the lease (SIGKILL, for tests).
func (q *QuotaStore) kill() {
	q.once.Do(func() { close(q.stop) })
	<-q.done
}

// Interface guard.
var _ quota.Store = (*QuotaStore)(nil)
