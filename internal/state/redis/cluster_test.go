package redis_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/edge/auth"
	"github.com/wsgate/wsgate/internal/state/ban"
	"github.com/wsgate/wsgate/internal/state/broker"
	"github.com/wsgate/wsgate/internal/state/broker/brokertest"
	"github.com/wsgate/wsgate/internal/state/limit"
	"github.com/wsgate/wsgate/internal/state/quota"
	"github.com/wsgate/wsgate/internal/state/redis"
	"github.com/wsgate/wsgate/internal/state/redis/redistest"
	"github.com/wsgate/wsgate/internal/state/ticket"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/bgrun"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/wait"
)

// three nodes share one Redis and one prefix.
func three(t *testing.T, srv *redistest.Server, mod ...func(*redis.Options)) (a, b, c *redis.Client) {
	return node(t, srv, "A", mod...), node(t, srv, "B", mod...), node(t, srv, "C", mod...)
}

func TestClusterQuotaHoldsAcrossNodes(t *testing.T) {
	srv := redistest.Start(t)
	a, b, c := three(t, srv)
	ctx := context.Background()
	lim := quota.Limits{PerUser: 2}
	qa, qb, qc := quota.New(a.QuotaStore(), lim), quota.New(b.QuotaStore(), lim), quota.New(c.QuotaStore(), lim)
	l1, err := qa.Acquire(ctx, "10.0.0.1", "alice")
	must(t, err)
	_, err = qb.Acquire(ctx, "10.0.0.2", "alice")
	must(t, err)
	if _, err := qc.Acquire(ctx, "10.0.0.3", "alice"); !errors.Is(err, quota.ErrUserQuota) {
		t.Fatalf("third connection of alice on node C: %v", err)
	}
	l1.Release()
	l3, err := qc.Acquire(ctx, "10.0.0.3", "alice")
	must(t, err)
	l3.Release()
	// Concurrent acquires from three nodes never exceed the cap.
	lim = quota.Limits{PerUser: 5}
	var mu sync.Mutex
	got := 0
	var wg sync.WaitGroup
	for _, q := range []*quota.Quotas{quota.New(a.QuotaStore(), lim), quota.New(b.QuotaStore(), lim), quota.New(c.QuotaStore(), lim)} {
		wg.Go(func() {
			for range 10 {
				if _, err := q.Acquire(ctx, "10.0.0.9", "bob"); err == nil {
					mu.Lock()
					got++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if got != 5 {
		t.Fatalf("%d of 30 concurrent acquires succeeded under a cap of 5", got)
	}
}

// A node that dies without releasing (SIGKILL: no heartbeat, no release) stops
// counting within LeaseTTL.
func TestClusterQuotaLeaseExpiresAfterKill(t *testing.T) {
	srv := redistest.Start(t)
	const ttl = time.Second
	short := func(o *redis.Options) { o.LeaseTTL = ttl }
	a, b := node(t, srv, "A", short), node(t, srv, "B", short)
	ctx := context.Background()
	qa, qb := a.QuotaStore(), b.QuotaStore()
	for range 2 {
		admit(t, qa, "user:alice", 2)
	}
	if ok, _ := qb.Acquire(ctx, "user:alice", 2); ok {
		t.Fatal("cap ignored")
	}
	// While A heartbeats, its counts hold for longer than the TTL.
	time.Sleep(ttl + ttl/2)
	if n, _ := qb.Count(ctx, "user:alice"); n != 2 {
		t.Fatalf("live node's count %d after one TTL, want 2", n)
	}
	killed := time.Now()
	qa.Kill()
	wait.For(t, "dead node's leases to expire", 3*ttl, func() bool {
		ok, err := qb.Acquire(ctx, "user:alice", 2)
		must(t, err)
		return ok
	})
	if d := time.Since(killed); d > ttl+ttl/2 {
		t.Fatalf("lease expired after %v, TTL %v", d, ttl)
	}
	// A graceful Close withdraws the lease at once.
	must(t, b.Close())
	c := node(t, srv, "C", short)
	if n, _ := c.QuotaStore().Count(ctx, "user:alice"); n != 0 {
		t.Fatalf("count %d after B closed", n)
	}
}

func TestClusterRateLimitHoldsAcrossNodes(t *testing.T) {
	srv := redistest.Start(t)
	a, b, c := three(t, srv)
	ctx := context.Background()
	lim := limit.Limit{Rate: 0.01, Burst: 30}
	allowed := 0
	ls := []*redis.Limiter{a.Limiter(redis.LimiterOptions{}), b.Limiter(redis.LimiterOptions{}), c.Limiter(redis.LimiterOptions{})}
	for i := range 90 {
		l := ls[i%3]
		ok, _, err := l.Allow(ctx, "pl:u:m:alice", lim, 1)
		must(t, err)
		if ok {
			allowed++
		}
	}
	// Calls faster than a Redis round trip: each node may admit one lease (3)
	// on credit before Redis' answer arrives.
	if allowed > 30+3*3 || allowed < 24 {
		t.Fatalf("allowed %d messages across three nodes under a burst of 30 (want <= 30 + 3 credits of 3)", allowed)
	}
}

func TestClusterTicketAndNonceUsedOnce(t *testing.T) {
	srv := redistest.Start(t)
	a, b, c := three(t, srv)
	ctx := context.Background()
	iss := ticket.NewIssuer(a.TicketStore(), time.Minute)
	tk, _, err := iss.Issue(ctx, auth.Identity{Subject: "alice", ExpiresAt: time.Now().Add(time.Hour)})
	must(t, err)
	if id, err := ticket.NewIssuer(b.TicketStore(), time.Minute).Redeem(ctx, tk); err != nil || id.Subject != "alice" {
		t.Fatalf("redeem on B: %+v %v", id, err)
	}
	for _, n := range []*redis.Client{a, b, c} {
		if _, err := ticket.NewIssuer(n.TicketStore(), time.Minute).Redeem(ctx, tk); err == nil {
			t.Fatalf("ticket redeemed twice (on %s)", n.NodeID())
		}
	}
	if dup, err := a.ReplayCache().Seen(ctx, "nonce-1", time.Minute); dup || err != nil {
		t.Fatal(dup, err)
	}
	if dup, err := c.ReplayCache().Seen(ctx, "nonce-1", time.Minute); !dup || err != nil {
		t.Fatalf("nonce accepted on A replayed to C: dup=%v err=%v", dup, err)
	}
}

func TestClusterBanInForceWithinOneSecond(t *testing.T) {
	srv := redistest.Start(t)
	a, b, _ := three(t, srv)
	ctx := context.Background()
	// Long cache TTL: only the pub/sub invalidation can make B see the ban quickly.
	la, lb := a.BanList(redis.BanOptions{CacheTTL: time.Hour}), b.BanList(redis.BanOptions{CacheTTL: time.Hour})
	subject := ban.IPSubject("203.0.113.7")
	if _, ok, err := lb.Banned(ctx, subject); ok || err != nil { // cached "not banned" on B
		t.Fatal(ok, err)
	}
	time.Sleep(100 * time.Millisecond) // B's listener is subscribed
	start := time.Now()
	must(t, la.Ban(ctx, ban.Ban{Subject: subject, Until: time.Now().Add(time.Hour), Reason: "test"}))
	wait.For(t, "ban on A in force on B", time.Second, func() bool {
		_, ok, err := lb.Banned(ctx, subject)
		must(t, err)
		return ok
	})
	t.Logf("ban propagated in %v", time.Since(start))
	must(t, la.Unban(ctx, subject))
	wait.For(t, "unban on A seen on B", time.Second, func() bool {
		_, ok, _ := lb.Banned(ctx, subject)
		return !ok
	})
}

// runBroker starts n's broker with a recorder until t ends.
func runBroker(t *testing.T, n *redis.Client, opts redis.BrokerOptions) (*redis.Broker, *brokertest.Recorder) {
	t.Helper()
	b, err := n.Broker(opts)
	must(t, err)
	rec := brokertest.NewRecorder()
	bgrun.Start(t, func(ctx context.Context) error { return b.Run(ctx, rec) })
	return b, rec
}

func TestClusterPublishReachesOtherNodesInOrder(t *testing.T) {
	srv := redistest.Start(t)
	a, b, c := three(t, srv)
	keep := broker.PublishOptions{HistorySize: 100, HistoryTTL: time.Minute}
	ba, _ := runBroker(t, a, redis.BrokerOptions{})
	bb, rb := runBroker(t, b, redis.BrokerOptions{})
	bc, rc := runBroker(t, c, redis.BrokerOptions{})
	ctx := context.Background()
	const ch = "room:1"
	must(t, bb.Subscribe(ctx, ch))
	must(t, bc.Subscribe(ctx, ch))
	const n = 200
	var wg sync.WaitGroup
	for g := range 4 { // concurrent publishers on A and C
		pub := []*redis.Broker{ba, bc}[g%2]
		wg.Go(func() {
			for i := range n / 4 {
				if _, err := pub.Publish(ctx, ch, fmt.Appendf(nil, `"%d-%d"`, g, i), "", keep); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for name, r := range map[string]*brokertest.Recorder{"B": rb, "C": rc} {
		wait.For(t, "deliveries on "+name, 5*time.Second, func() bool { return len(r.Pubs(ch)) >= n })
		for i, p := range r.Pubs(ch) {
			if p.Offset != uint64(i+1) {
				t.Fatalf("node %s: delivery %d has offset %d", name, i, p.Offset)
			}
		}
	}
	// A client of B that saw offset 150 reconnects to C and recovers the rest.
	seen := rb.Pubs(ch)[149]
	pubs, cur, err := bc.History(ctx, ch, &broker.StreamPosition{Offset: seen.Offset, Epoch: seen.Epoch}, 0)
	must(t, err)
	if len(pubs) != 50 || pubs[0].Offset != 151 || cur.Offset != n {
		t.Fatalf("recovery on another node: %d publications from %d, current %+v", len(pubs), pubs[0].Offset, cur)
	}
	// Presence of a dead node expires; others see the leave.
	short := func(o *redis.Options) { o.LeaseTTL = 600 * time.Millisecond }
	d := node(t, srv, "D", short)
	bd, err := d.Broker(redis.BrokerOptions{})
	must(t, err)
	must(t, bd.AddPresence(ctx, ch, broker.ClientInfo{ConnID: "d1", User: "dora"}))
	must(t, d.Close()) // stops D's heartbeat; its entry is left behind
	wait.For(t, "dead node's presence to expire", 3*time.Second, func() bool {
		got, err := bb.Presence(ctx, ch)
		must(t, err)
		return len(got) == 0
	})
	wait.For(t, "leave announced on C", time.Second, func() bool { return len(rc.Leaves(ch)) == 1 })
}
