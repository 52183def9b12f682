package redis_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/state/redis"
	"github.com/wsgate/wsgate/internal/state/redis/redistest"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/wait"
)

// gateProxy forwards TCP to Redis and can cut the node behind it off: while
// paused it closes the node's connections and refuses new ones, so nothing of
// that node reaches Redis; from Redis' side the node is paused (SIGSTOP, a VM
// migration) until set(false). (Holding the bytes instead would deliver
// commands the node already gave up on: a heartbeat landing after its timeout
// renews the lease without the node learning it had lapsed.)
type gateProxy struct {
	*tcpProxy
	paused atomic.Bool
}

func startGateProxy(t *testing.T, target string) *gateProxy {
	t.Helper()
	p := &gateProxy{}
	p.tcpProxy = startProxy(t, target, func() bool { return !p.paused.Load() }, func(c, s net.Conn) {
		pipeBoth(c, s, nil, nil)
	})
	return p
}

func (p *gateProxy) set(paused bool) {
	p.paused.Store(paused)
	if paused {
		p.cut()
	}
}

// Issue 16: a node paused past the quota lease TTL stops counting, so the
// other nodes may admit over the quota, but by at most that node's own count:
// while it is away they admit up to max among themselves (never more), and
// once it is back its heartbeat rewrites its counts and nobody admits until
// the total is below max again. This is the bound docs/scaling.md states.
func TestQuotaNodePausedPastLeaseTTLBound(t *testing.T) {
	srv := redistest.Start(t)
	const ttl = time.Second
	gate := startGateProxy(t, srv.Addr())
	short := func(o *redis.Options) { o.LeaseTTL = ttl }
	a := node(t, srv, "A", short, func(o *redis.Options) { o.Addrs = []string{gate.Addr()} })
	b := node(t, srv, "B", short)
	ctx := context.Background()
	qa, qb := a.QuotaStore(), b.QuotaStore()
	const key, max = "user:alice", 2
	for range max {
		admit(t, qa, key, max)
	}
	if ok, _ := qb.Acquire(ctx, key, max); ok {
		t.Fatal("quota ignored while both nodes are live")
	}

	gate.set(true) // A paused: no heartbeat reaches Redis
	wait.For(t, "A's lease to expire", 4*ttl, func() bool {
		ok, err := qb.Acquire(ctx, key, max)
		must(t, err)
		return ok
	})
	if ok, err := qb.Acquire(ctx, key, max); !ok || err != nil {
		t.Fatalf("B's second admission while A is away: %v %v", ok, err)
	}
	// B holds max itself: the over-admission is bounded by A's count.
	if ok, _ := qb.Acquire(ctx, key, max); ok {
		t.Fatal("B admitted beyond max while A is away: the bound is max + the paused node's count")
	}

	gate.set(false) // A resumes: its next heartbeat rewrites its counts
	wait.For(t, "A's counts back in Redis", 4*ttl, func() bool {
		n, err := qb.Count(ctx, key)
		return err == nil && n == 2*max
	})
	for name, q := range map[string]*redis.QuotaStore{"A": qa, "B": qb} {
		if ok, err := q.Acquire(ctx, key, max); ok || err != nil {
			t.Fatalf("%s admitted with %d connections counted for a quota of %d (err %v)", name, 2*max, max, err)
		}
	}
	// Connections closing bring the total back under max, then admission resumes.
	for range max {
		must(t, qb.Release(ctx, key))
	}
	if ok, err := qb.Acquire(ctx, key, max); ok || err != nil {
		t.Fatalf("B admitted with A's %d counted for a quota of %d (err %v)", max, max, err)
	}
	must(t, qa.Release(ctx, key))
	if ok, err := qb.Acquire(ctx, key, max); !ok || err != nil {
		t.Fatalf("B refused with %d counted for a quota of %d: %v %v", max-1, max, ok, err)
	}
}

// Issue 16: a heartbeat that reaches Redis only after the node gave up on it
// renews a lapsed lease without the node learning it had lapsed (its answer,
// "missing", is lost). The node's peers had dropped its counts meanwhile; the
// next beat must rewrite them, or the quota under-counts until they change.
func TestQuotaLateHeartbeatRewritesCounts(t *testing.T) {
	srv := redistest.Start(t)
	a := node(t, srv, "A", func(o *redis.Options) { o.LeaseTTL = time.Minute })
	b := node(t, srv, "B", func(o *redis.Options) { o.LeaseTTL = time.Minute })
	ctx := context.Background()
	qa, qb := a.QuotaStore(), b.QuotaStore()
	const key, max = "user:alice", 2
	for range max {
		admit(t, qa, key, max)
	}
	must(t, qa.LapseLease(ctx, key)) // A's lease ended; a peer dropped its count
	gone, cancel := context.WithCancel(ctx)
	cancel()
	if err := qa.Beat(gone); err == nil { // the beat A gave up on …
		t.Fatal("a beat with a cancelled context succeeded")
	}
	must(t, qa.LateBeat(ctx)) // … reaches Redis late and renews the lease
	must(t, qa.Beat(ctx))     // the next beat finds the lease live
	if n, err := qb.Count(ctx, key); err != nil || n != max {
		t.Fatalf("count after a late heartbeat = %d, %v; want %d (A's counts rewritten)", n, err, max)
	}
	if ok, _ := qb.Acquire(ctx, key, max); ok {
		t.Fatal("B admitted over the quota after A's late heartbeat")
	}
}
