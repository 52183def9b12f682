package redis

import (
	"context"

	goredis "github.com/redis/go-redis/v9"
)

// Kill simulates SIGKILL for the node's quota leases: the heartbeat stops, the
// lease is not withdrawn.
func (q *QuotaStore) Kill() { q.kill() }

// Settle waits until no refill is queued or running (call it with no Allow in
// flight).
func (l *Limiter) Settle() { l.inflight.Wait() }

// PublishScripts is the number of publish scripts (batches) this broker ran.
func (b *Broker) PublishScripts() uint64 { return b.scripts.Load() }

// Beat runs one heartbeat now.
func (q *QuotaStore) Beat(ctx context.Context) error { return q.beat(ctx) }

// LateBeat runs the heartbeat script as a beat that reached Redis after this
// node had given up on it: Redis renews the lease, the answer is lost.
func (q *QuotaStore) LateBeat(ctx context.Context) error {
	return quotaBeatScript.Run(ctx, q.rdb, []string{q.nodes, q.rebuild}, q.node, q.ttlMS, 0,
		q.registeredArg(), q.rebuildWindow()).Err()
}

// LapseLease makes this node's lease look expired and drops its counts for
// key, as a peer's count does once the lease has ended.
func (q *QuotaStore) LapseLease(ctx context.Context, key string) error {
	if err := q.rdb.ZAdd(ctx, q.nodes, goredis.Z{Score: 1, Member: q.node}).Err(); err != nil {
		return err
	}
	return q.rdb.HDel(ctx, q.hash(key), q.node).Err()
}

// Publishing reports whether a batch is in flight on channel.
func (b *Broker) Publishing(channel string) bool {
	b.qmu.Lock()
	defer b.qmu.Unlock()
	_, busy := b.queues[channel]
	return busy
}
