package e2e

import (
	"context"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Issue 16 item 4: a stalled Redis does not stall pings. The per-message shared
// limits (user and IP budgets) answer from leases, credit and, once a refill is
// late, the node-local fallback; no ping waits for Redis.
func TestClusterPingsAnsweredDuringRedisStall(t *testing.T) {
	rs, nodes := cluster(t, 1, nil)
	cl := nodes[0].Connect(t, "stall-user", nil)
	for range 5 { // warm: leases held
		pingPong(t, cl, "before the stall")
	}
	rdb := goredis.NewClient(&goredis.Options{Addr: rs.Addr()})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	const pause = 3 * time.Second
	start := time.Now()
	// CLIENT PAUSE answers once the pause is in force (DEBUG SLEEP would block
	// this caller instead); every client's commands then wait until it ends.
	if err := rdb.Do(ctx, "CLIENT", "PAUSE", pause.Milliseconds(), "ALL").Err(); err != nil {
		t.Fatalf("CLIENT PAUSE: %v", err)
	}
	// More pings than a lease plus its credit (user budget burst 100: 10 + 10),
	// fewer than the connection's own burst (40, 5 spent warming),
	// so the late-refill path is taken too.
	for i := range 30 {
		cl.Send(t, `{"type":"ping"}`)
		if m := cl.Next(t, 2*time.Second); m["type"] != "pong" {
			t.Fatalf("ping %d during the stall answered %v, want pong", i, m)
		}
	}
	if took := time.Since(start); took >= pause {
		t.Fatalf("30 pings took %v: not all answered before the %v pause ended", took, pause)
	}
}
