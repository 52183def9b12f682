package redis_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wsgate/wsgate/internal/state/ban"
	"github.com/wsgate/wsgate/internal/state/broker"
	"github.com/wsgate/wsgate/internal/state/broker/brokertest"
	"github.com/wsgate/wsgate/internal/state/limit"
	"github.com/wsgate/wsgate/internal/state/redis"
	"github.com/wsgate/wsgate/internal/state/redis/redistest"
	"github.com/wsgate/wsgate/internal/state/ticket"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/wait"
)

// Redis killed and started again, empty, under live clients: nothing panics,
// each store applies its documented policy while Redis is away, and service
// resumes without recreating any client.
func TestRedisOutageAndRecovery(t *testing.T) {
	srv := redistest.Start(t)
	short := func(o *redis.Options) { o.LeaseTTL = 600 * time.Millisecond }
	a, b := node(t, srv, "A", short), node(t, srv, "B", short)
	ctx := context.Background()
	open := a.Limiter(redis.LimiterOptions{FailOpen: true, RetryInterval: 100 * time.Millisecond})
	closed := b.Limiter(redis.LimiterOptions{RetryInterval: 100 * time.Millisecond})
	ba, _ := runBroker(t, a, redis.BrokerOptions{})
	bb, rb := runBroker(t, b, redis.BrokerOptions{})
	keep := broker.PublishOptions{HistorySize: 10, HistoryTTL: time.Minute}
	const ch = "news"
	must(t, bb.Subscribe(ctx, ch))
	before := publish(t, ba, ch, `"before"`, keep)
	wait.For(t, "delivery before the outage", 2*time.Second, func() bool { return len(rb.Pubs(ch)) == 1 })
	qa := a.QuotaStore()
	admit(t, qa, "user:alice", 5)
	bans := b.BanList(redis.BanOptions{})
	lim := limit.Limit{Rate: 100, Burst: 100}

	srv.Stop()

	if a.Ping(ctx) == nil {
		t.Error("Ping succeeded with Redis down")
	}
	if err := a.TicketStore().Put(ctx, "t1", []byte("x"), time.Minute); err == nil {
		t.Error("ticket Put succeeded with Redis down")
	}
	if p, err := b.TicketStore().Take(ctx, "t1"); err == nil || errors.Is(err, ticket.ErrNotFound) || p != nil {
		t.Errorf("ticket Take with Redis down: %q %v, want a store error", p, err)
	}
	if dup, err := b.ReplayCache().Seen(ctx, "nonce", time.Minute); !dup || err == nil {
		t.Errorf("replay check with Redis down: dup=%v err=%v, want fail closed", dup, err)
	}
	// A limiter that has not yet seen the outage answers one call on credit
	// (it never waits for Redis); the refill it starts finds Redis down.
	_, _, _ = closed.Allow(ctx, "u:m:alice", lim, 1)
	closed.Settle()
	for range 3 {
		if ok, _, err := open.Allow(ctx, "u:m:alice", lim, 1); !ok || err != nil {
			t.Errorf("fail-open limiter: %v %v", ok, err)
		}
		if ok, _, err := closed.Allow(ctx, "u:m:alice", lim, 1); ok || err == nil {
			t.Errorf("fail-closed limiter: %v %v", ok, err)
		}
	}
	// The failed Ping above found Redis unreachable: the stores fail fast from
	// then on, without an error (or a wait) per call.
	if a.Reachable() {
		t.Error("Reachable after a failed Ping")
	}
	if st := open.Stats(); st.Fallbacks < 3 || st.RedisCalls != 0 || open.Healthy() {
		t.Errorf("fallbacks not reported, or Redis asked while known unreachable: %+v healthy=%v", st, open.Healthy())
	}
	if _, err := ba.Publish(ctx, ch, []byte(`"lost"`), "", keep); !errors.Is(err, redis.ErrUnavailable) {
		t.Errorf("Publish with Redis known down: %v, want ErrUnavailable (fail fast)", err)
	}
	if _, _, err := bb.History(ctx, ch, &before, 0); !errors.Is(err, broker.ErrRecoveryFailed) {
		t.Errorf("History with Redis down: %v, want ErrRecoveryFailed", err)
	}
	if _, _, err := bans.Banned(ctx, "ip:192.0.2.1"); err == nil {
		t.Error("Banned answered from nowhere with Redis down")
	}
	if _, err := qa.Acquire(ctx, "user:bob", 5); err == nil {
		t.Error("quota Acquire succeeded with Redis down")
	}
	time.Sleep(700 * time.Millisecond) // heartbeats and pub/sub loops fail meanwhile

	srv.Restart()

	// Both nodes: a node's pool may keep answering with its last dial error
	// for a while after Redis is back.
	wait.For(t, "Ping after restart on both nodes", 5*time.Second, func() bool { return a.Ping(ctx) == nil && b.Ping(ctx) == nil })
	must(t, a.TicketStore().Put(ctx, "t2", []byte("x"), time.Minute))
	if p, err := b.TicketStore().Take(ctx, "t2"); err != nil || string(p) != "x" {
		t.Fatalf("ticket after restart: %q %v", p, err)
	}
	wait.For(t, "fail-closed limiter to answer again", 2*time.Second, func() bool {
		ok, _, err := closed.Allow(ctx, "u:m:alice", lim, 1)
		return ok && err == nil
	})
	// Pub/sub resubscribes by itself; the stream restarts in a new epoch, and
	// positions of the lost one fail recovery.
	var after broker.StreamPosition
	wait.For(t, "publish on A to reach B again", 5*time.Second, func() bool {
		p, err := ba.Publish(ctx, ch, []byte(`"after"`), "", keep)
		if err == nil {
			after = p
		}
		n := rb.Pubs(ch)
		return len(n) > 1 && n[len(n)-1].Epoch != before.Epoch
	})
	if after.Epoch == before.Epoch {
		t.Fatal("epoch survived a Redis that lost its data")
	}
	if _, _, err := bb.History(ctx, ch, &before, 0); !errors.Is(err, broker.ErrRecoveryFailed) {
		t.Fatalf("recovery across lost data: %v, want ErrRecoveryFailed", err)
	}
	// The quota heartbeat rewrites A's count into the empty Redis.
	wait.For(t, "quota count restored", 3*time.Second, func() bool {
		n, err := b.QuotaStore().Count(ctx, "user:alice")
		return err == nil && n == 1
	})
	must(t, bans.Ban(ctx, ban.Ban{Subject: "ip:192.0.2.1", Until: time.Now().Add(time.Minute)}))
	if _, ok, err := bans.Banned(ctx, "ip:192.0.2.1"); !ok || err != nil {
		t.Fatalf("ban after restart: %v %v", ok, err)
	}
}

// Every goroutine a Client starts ends with Close.
func TestCloseStopsGoroutines(t *testing.T) {
	srv := redistest.Start(t)
	before := goleak.IgnoreCurrent()
	c := node(t, srv, "leak")
	ctx := context.Background()
	b, err := c.Broker(redis.BrokerOptions{})
	must(t, err)
	must(t, b.Subscribe(ctx, "x"))
	must(t, b.AddPresence(ctx, "x", broker.ClientInfo{ConnID: "1"}))
	c.BanList(redis.BanOptions{})
	admit(t, c.QuotaStore(), "k", 1)
	c.Limiter(redis.LimiterOptions{})
	done := make(chan error, 1)
	go func() { done <- b.Run(context.Background(), brokertest.NewRecorder()) }()
	must(t, c.Close())
	must(t, <-done) // Run ends with the client
	if _, err := c.Broker(redis.BrokerOptions{}); err == nil {
		t.Error("Broker on a closed client succeeded")
	}
	goleak.VerifyNone(t, before)
}

// checkContiguous asserts that got is a sequence of whole epochs' runs: within
// an epoch offsets follow each other; a new epoch starts at offset 1 (what a
// node could not fill shows as a jump, which must not happen here: history
// holds everything).
func checkContiguous(t *testing.T, got []broker.Publication) {
	t.Helper()
	for i, p := range got {
		if i == 0 {
			continue
		}
		prev := got[i-1]
		switch {
		case p.Epoch == prev.Epoch && p.Offset != prev.Offset+1:
			t.Fatalf("delivery %d: offset %d after %d in epoch %s", i, p.Offset, prev.Offset, p.Epoch)
		case p.Epoch != prev.Epoch && p.Offset != 1:
			t.Fatalf("delivery %d: new epoch %s starts at offset %d (after %s/%d): the start of the epoch was not delivered",
				i, p.Epoch, p.Offset, prev.Epoch, prev.Offset)
		}
	}
}

// Redis comes back with older data (an RDB snapshot; a lagging replica
// promoted does the same): the stream must restart in a new epoch, never hand
// out an offset of the old epoch a second time, and recovery from a position
// of the old epoch must fail (issue 16, defect 2).
func TestBrokerRedisRestartedFromOlderSnapshot(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	ba, _ := runBroker(t, node(t, srv, "A"), redis.BrokerOptions{})
	bb, rb := runBroker(t, node(t, srv, "B"), redis.BrokerOptions{})
	keep := broker.PublishOptions{HistorySize: 100, HistoryTTL: time.Minute}
	const ch = "rewound"
	must(t, bb.Subscribe(ctx, ch))
	var acked []broker.StreamPosition
	pub := func(s string) {
		t.Helper()
		p := publish(t, ba, ch, `"`+s+`"`, keep)
		acked = append(acked, p)
	}
	for range 5 {
		pub("saved")
	}
	srv.Save()
	for range 5 {
		pub("after-save")
	}
	wait.For(t, "10 deliveries", 5*time.Second, func() bool { return len(rb.Pubs(ch)) == 10 })
	srv.Stop()
	srv.RestartFromSnapshot()
	wait.For(t, "a publish after the restart", 5*time.Second, func() bool {
		p, err := ba.Publish(ctx, ch, []byte(`"back"`), "", keep)
		if err == nil {
			acked = append(acked, p)
		}
		return err == nil
	})
	last := acked[len(acked)-1]
	for _, p := range acked[:10] {
		if p.Epoch == last.Epoch {
			t.Fatalf("after a restart from an older snapshot the epoch %s was kept (offset %d acked again)", last.Epoch, last.Offset)
		}
	}
	if last.Offset != 1 {
		t.Fatalf("new epoch starts at offset %d", last.Offset)
	}
	if _, _, err := bb.History(ctx, ch, &acked[4], 0); !errors.Is(err, broker.ErrRecoveryFailed) {
		t.Fatalf("recovery from a position in the rewound epoch: %v, want ErrRecoveryFailed", err)
	}
	wait.For(t, "the new epoch to reach B", 5*time.Second, func() bool {
		got := rb.Pubs(ch)
		return got[len(got)-1].Epoch == last.Epoch
	})
	checkContiguous(t, rb.Pubs(ch))
}

// Redis restarted empty while a node publishes at once and another node
// resubscribes late: the late node must deliver the new epoch from its first
// offset (from history), not start where pub/sub happened to resume (issue 16,
// defect 1).
func TestBrokerRedisRestartedEmptyNewEpochFilled(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	ba, ra := runBroker(t, node(t, srv, "A"), redis.BrokerOptions{})
	bb, rb := runBroker(t, node(t, srv, "B"), redis.BrokerOptions{})
	keep := broker.PublishOptions{HistorySize: 1000, HistoryTTL: time.Minute}
	const ch = "emptied"
	must(t, ba.Subscribe(ctx, ch))
	must(t, bb.Subscribe(ctx, ch))
	first := publish(t, ba, ch, `"before"`, keep)
	wait.For(t, "the first delivery on both", 5*time.Second, func() bool { return len(ra.Pubs(ch)) == 1 && len(rb.Pubs(ch)) == 1 })
	srv.Stop()
	srv.Restart()
	// Publish as fast as Redis answers: most of these precede B's (and A's own)
	// resubscription, which waits for the pub/sub loop's backoff.
	n := 0
	var lastPos broker.StreamPosition
	wait.For(t, "200 publications after the restart", 10*time.Second, func() bool {
		p, err := ba.Publish(ctx, ch, []byte(`"after"`), "", keep)
		if err == nil {
			n++
			lastPos = p
		}
		return n == 200
	})
	if lastPos.Epoch == first.Epoch || lastPos.Offset != 200 {
		t.Fatalf("after an empty restart: %+v (first %+v)", lastPos, first)
	}
	for name, r := range map[string]*brokertest.Recorder{"A": ra, "B": rb} {
		wait.For(t, "node "+name+" to deliver all 200", 10*time.Second, func() bool {
			got := r.Pubs(ch)
			return got[len(got)-1].Epoch == lastPos.Epoch && got[len(got)-1].Offset == 200
		})
		got := r.Pubs(ch)
		checkContiguous(t, got)
		if len(got) != 201 {
			t.Fatalf("node %s delivered %d, want 201", name, len(got))
		}
	}
}

// A stalled Redis (CLIENT PAUSE; DEBUG SLEEP does the same) costs the
// per-message limiter one bounded call, not one per message: after it, Allow
// answers locally without asking Redis until a background probe gets an answer
// (issue 16, defect 4).
func TestLimiterStallAsksRedisOnce(t *testing.T) {
	srv := redistest.Start(t)
	a := node(t, srv, "A")
	ctx := context.Background()
	lim := limit.Limit{Rate: 1000, Burst: 1000}
	l := a.Limiter(redis.LimiterOptions{FailOpen: true, RetryInterval: 100 * time.Millisecond,
		CallTimeout: 100 * time.Millisecond, LeaseFraction: -1})
	if ok, _, err := l.Allow(ctx, "warm", lim, 1); !ok || err != nil {
		t.Fatal(ok, err)
	}
	must(t, a.Redis().Do(ctx, "CLIENT", "PAUSE", "1500", "ALL").Err())
	before := l.Stats().RedisCalls
	for i := range 50 {
		if ok, _, err := l.Allow(ctx, "k"+strconv.Itoa(i), lim, 1); !ok || err != nil {
			t.Fatalf("Allow %d during the stall: %v %v, want a local answer", i, ok, err)
		}
	}
	if n := l.Stats().RedisCalls - before; n > 2 {
		t.Fatalf("%d Redis calls for 50 messages during a stall, want at most 2", n)
	}
	if l.Healthy() {
		t.Fatal("Healthy during a stall")
	}
	wait.For(t, "the probe to find Redis answering again", 10*time.Second, l.Healthy)
	before = l.Stats().RedisCalls
	if ok, _, err := l.Allow(ctx, "after", lim, 1); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if l.Stats().RedisCalls == before {
		t.Fatal("Redis not asked after the stall")
	}
}

// Redis restarted empty under two nodes holding a user's two connections
// (quota 2): no node may admit a third before every node rewrote its counts
// (issue 16, defect 5). Acquire answers ErrRebuilding meanwhile.
func TestQuotaNotOverAdmittedAfterRedisLoss(t *testing.T) {
	srv := redistest.Start(t)
	short := func(o *redis.Options) { o.LeaseTTL = 900 * time.Millisecond }
	qa, qb := node(t, srv, "A", short).QuotaStore(), node(t, srv, "B", short).QuotaStore()
	ctx := context.Background()
	const key, max = "user:carol", 2
	for _, q := range []*redis.QuotaStore{qa, qb} {
		admit(t, q, key, max)
	}
	srv.Stop()
	srv.Restart()
	rebuilding := 0
	wait.For(t, "both nodes' counts rewritten", 10*time.Second, func() bool {
		ok, err := qa.Acquire(ctx, key, max)
		if ok {
			t.Fatalf("a third connection admitted (quota %d) after Redis lost the counts", max)
		}
		if errors.Is(err, redis.ErrRebuilding) {
			rebuilding++
		}
		n, err := qa.Count(ctx, key)
		return err == nil && n == max
	})
	if rebuilding == 0 {
		t.Error("no Acquire answered ErrRebuilding")
	}
	wait.For(t, "acquires answered again", 5*time.Second, func() bool {
		ok, err := qb.Acquire(ctx, key, max)
		if ok {
			t.Fatalf("admitted over quota")
		}
		return err == nil
	})
}

// With leases (the default), a stalled Redis makes no call wait longer than
// SlowRefill, even on a key that has spent its lease and its credit: every call
// returns while Redis is still paused (issue 16, item 4).
func TestLimiterLeaseMissDuringStallDoesNotWait(t *testing.T) {
	srv := redistest.Start(t)
	a := node(t, srv, "A")
	ctx := context.Background()
	l := a.Limiter(redis.LimiterOptions{FailOpen: true, RetryInterval: 100 * time.Millisecond})
	lim := limit.Limit{Rate: 1000, Burst: 100} // lease 10, credit 10
	if ok, _, err := l.Allow(ctx, "u:m:warm", lim, 1); !ok || err != nil {
		t.Fatal(ok, err)
	}
	l.Settle()
	const pause = 3 * time.Second
	start := time.Now()
	must(t, a.Redis().Do(ctx, "CLIENT", "PAUSE", pause.Milliseconds(), "ALL").Err())
	for i := range 60 { // a fresh key, then the warm one: both past lease and credit
		key := "u:m:cold"
		if i%2 == 1 {
			key = "u:m:warm"
		}
		if ok, _, err := l.Allow(ctx, key, lim, 1); !ok || err != nil {
			t.Fatalf("Allow %d during the stall: %v %v, want an answer from leases, credit or the local fallback", i, ok, err)
		}
	}
	if took := time.Since(start); took >= pause {
		t.Fatalf("60 calls took %v, not answered before the %v stall ended", took, pause)
	}
	st := l.Stats()
	if st.Credits == 0 || st.Fallbacks == 0 {
		t.Fatalf("stats %+v: want calls on credit, then local fallback once the refill was late", st)
	}
}

// A refill that fails (Redis gone) ends the wait of a key past its credit at
// once: the call is answered by the outage policy, never retried in a loop.
func TestLimiterFailedRefillEndsWait(t *testing.T) {
	srv := redistest.Start(t)
	a := node(t, srv, "A")
	l := a.Limiter(redis.LimiterOptions{RetryInterval: time.Hour}) // fail closed; no probe during the test
	lim := limit.Limit{Rate: 1000, Burst: 100}
	srv.Stop()
	done := make(chan error, 1)
	go func() {
		var last error
		for range 30 { // past the lease (10) and the credit (10)
			_, _, last = l.Allow(context.Background(), "u:m:x", lim, 1)
		}
		done <- last
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("fail-closed limiter answered without an error after its refills failed")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Allow calls still running after 5s with Redis gone: a wait did not end")
	}
}
