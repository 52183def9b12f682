package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/state/redis/redistest"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest"
)

// redisState keeps cfg's state in the redis-server at addr, its keys under prefix.
func redisState(cfg *config.Config, addr, prefix string) {
	cfg.State.Backend = "redis"
	cfg.State.Redis.Addrs = []string{addr}
	cfg.State.Redis.Prefix = prefix
}

// cluster starts n wsgate nodes sharing one real redis-server.
func cluster(t *testing.T, n int, mutate func(*config.Config)) (*redistest.Server, []*wsgatetest.Server) {
	t.Helper()
	rs := redistest.Start(t)
	var nodes []*wsgatetest.Server
	for i := 0; i < n; i++ {
		cfg := wsgatetest.Config()
		redisState(cfg, rs.Addr(), "wsgate-e2e:")
		cfg.Log.Level = "info"
		nodes = append(nodes, startMutated(t, cfg, mutate))
	}
	return rs, nodes
}

func TestClusterSharedQuotaTicketBan(t *testing.T) {
	_, nodes := cluster(t, 3, func(c *config.Config) {
		c.Limits.Connections.PerUser = 2
		c.Abuse.MaxStrikes = 3
	})
	a, b, c := nodes[0], nodes[1], nodes[2]
	// A per-user quota of 2 holds across nodes.
	a.Connect(t, "quota-user", nil)
	b.Connect(t, "quota-user", nil)
	expectRefused(t, c, wsgatetest.DialOptions{Header: bearer(c.Token(t, "quota-user", nil))}, 429, "user_quota")

	// A ticket issued via A works once on B and never again anywhere.
	ticket, _ := ticketFor(t, a, "ticket-user", nil)
	cl, _, err := b.Dial(t, wsgatetest.DialOptions{URL: b.URL + "?ticket=" + ticket})
	if err != nil {
		t.Fatalf("ticket from A refused on B: %v", err)
	}
	cl.Expect(t, "welcome", 5*time.Second)
	expectRefused(t, c, wsgatetest.DialOptions{URL: c.URL + "?ticket=" + ticket}, 401, "bad_ticket")
	expectRefused(t, a, wsgatetest.DialOptions{URL: a.URL + "?ticket=" + ticket}, 401, "bad_ticket")

	// A ban placed on A (by strikes) is in force on B within a second.
	strikeOut(t, a, "cluster-striker", 3)
	refusedWithin(t, b, bearer(b.Token(t, "cluster-striker", nil)), 403, time.Second, "ban on A in force on B")
}

func TestClusterSharedMessageRate(t *testing.T) {
	_, nodes := cluster(t, 2, func(c *config.Config) {
		c.Rate.Tiers["default"] = config.Tier{Messages: config.RateLimit{Rate: 1000, Burst: 1000},
			UserMessages: config.RateLimit{Rate: 1, Burst: 10}, Bytes: config.RateLimit{Rate: 1 << 20, Burst: 1 << 20},
			UserBytes: config.RateLimit{Rate: 1 << 20, Burst: 1 << 20}, IPMessages: config.RateLimit{Rate: 1000, Burst: 1000},
			IPBytes: config.RateLimit{Rate: 1 << 20, Burst: 1 << 20}}
	})
	c1 := nodes[0].Connect(t, "rate-user", nil)
	c2 := nodes[1].Connect(t, "rate-user", nil)
	pongs, limited := 0, 0
	for i := 0; i < 10; i++ {
		for _, c := range []*wsgatetest.Client{c1, c2} {
			c.Send(t, `{"type":"ping"}`)
			m := c.Next(t, 5*time.Second)
			switch m["type"] {
			case "pong":
				pongs++
			case "error":
				limited++
			}
		}
	}
	// 20 messages against a per-user burst of 10 shared by both nodes. Leases
	// may hold back a little more; each node may admit one lease (1 message)
	// on credit before Redis answers its refill (docs/scaling.md), never more.
	if pongs > 10+2*1 || limited == 0 {
		t.Fatalf("per-user rate across nodes: %d answered, %d limited", pongs, limited)
	}
}

func TestClusterBroadcastAndRecoveryAcrossNodes(t *testing.T) {
	_, nodes := cluster(t, 3, nil)
	a, b, c := nodes[0], nodes[1], nodes[2]
	subB := subscriber(t, b, "sub-b", chatPerms, "chat:x")
	subC := subscriber(t, c, "sub-c", chatPerms, "chat:x")
	pub := a.Connect(t, "pub-a", chatPerms)
	for i := 0; i < 20; i++ {
		pub.SendJSON(t, map[string]any{"type": "publish", "channel": "chat:x", "payload": map[string]any{"n": i}})
	}
	var lastPos map[string]any
	for _, sub := range []*wsgatetest.Client{subB, subC} {
		for i := 0; i < 20; i++ {
			m := sub.Expect(t, "message", 5*time.Second)
			if m["payload"].(map[string]any)["n"] != float64(i) {
				t.Fatalf("out of order across nodes: got %v at %d", m["payload"], i)
			}
			lastPos = map[string]any{"offset": m["offset"], "epoch": m["epoch"]}
		}
	}
	// subB goes away, misses 10, and comes back on node C.
	subB.Conn.Close()
	for i := 20; i < 30; i++ {
		pub.SendJSON(t, map[string]any{"type": "publish", "id": i, "channel": "chat:x", "payload": map[string]any{"n": i}})
		pub.Expect(t, "ack", 5*time.Second)
	}
	back := c.Connect(t, "sub-b", chatPerms)
	back.SendJSON(t, map[string]any{"type": "subscribe", "id": "r", "channel": "chat:x", "since": lastPos})
	for i := 20; i < 30; i++ {
		m := back.Expect(t, "message", 5*time.Second)
		if m["payload"].(map[string]any)["n"] != float64(i) {
			t.Fatalf("recovery on another node: got %v, want %d", m["payload"], i)
		}
	}
}

func TestClusterReplayCaughtOnAnotherNode(t *testing.T) {
	_, nodes := cluster(t, 3, func(c *config.Config) {
		c.Integrity.Mode = "hmac"
		c.Integrity.MasterKeys = []config.IntegrityKey{{ID: "k1", Secret: strings.Repeat("m", 40)}}
	})
	ca, signer := hmacClient(t, nodes[0], "replayer")
	env := seal(t, signer, `{"type":"ping","id":1}`)
	ca.Send(t, env)
	ca.Expect(t, "pong", 5*time.Second)
	// The same envelope replayed to node C: the nonce is known cluster-wide (a
	// connection-bound signature would also fail; the nonce check comes first).
	cc, _ := hmacClient(t, nodes[2], "replayer")
	cc.Send(t, env)
	e := cc.Expect(t, "error", 5*time.Second)
	if code, _ := e["code"].(string); !strings.HasPrefix(code, "integrity_") {
		t.Fatalf("replay on another node: %v", e)
	}
}

// Redis stopped under load and started again: no node crashes, fail policies hold,
// and service resumes without restarting wsgate.
func TestClusterSurvivesRedisRestart(t *testing.T) {
	rs, nodes := cluster(t, 2, nil)
	a := nodes[0]
	c := subscriber(t, a, "survivor", chatPerms, "chat:r")
	tk, _ := ticketFor(t, a, "ticket-while-down", nil)
	rs.Stop()
	// A ticket cannot be checked: 503 (retry later), not 401 (bad ticket).
	expectRefused(t, a, wsgatetest.DialOptions{URL: a.URL + "?ticket=" + tk}, 503, "ticket_store_error")
	// Readiness reports Redis down.
	if resp, _ := httpDo(t, a.HTTPClient(), "GET", a.HTTPURL+"/readyz", "", ""); resp.StatusCode != 503 {
		t.Fatalf("/readyz with Redis down: %d", resp.StatusCode)
	}
	// Tickets fail closed.
	req, _ := http.NewRequest("POST", a.HTTPURL+"/v1/tickets", nil)
	req.Header.Set("Authorization", "Bearer "+a.Token(t, "survivor", nil))
	if resp, err := a.HTTPClient().Do(req); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("ticket issued without Redis")
		}
	}
	// The open connection is still served (pings answered; limits fall back locally).
	c.Send(t, `{"type":"ping","id":"down"}`)
	c.Expect(t, "pong", 5*time.Second)
	// Publishing fails with an error reply, not a crash.
	c.SendJSON(t, map[string]any{"type": "publish", "id": "p", "channel": "chat:r", "payload": 1})
	if m := c.Next(t, 5*time.Second); m["type"] != "error" && m["type"] != "ack" && m["type"] != "message" {
		t.Fatalf("publish with Redis down: %v", m)
	}
	rs.Restart()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := a.HTTPClient().Get(a.HTTPURL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("node not ready again after Redis came back")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// New connections work again on both nodes (after a 503 + Retry-After while
	// the quota counts Redis lost are rebuilt, at most lease_ttl/2).
	for _, n := range nodes {
		cl := connectRetrying(t, n, "after-restart")
		cl.Send(t, `{"type":"ping"}`)
		cl.Expect(t, "pong", 5*time.Second)
	}
	_ = context.Background()
}
