package e2e

import (
	"testing"
	"time"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest"
)

// strikeOnce sends a message that strikes (unknown type) and waits for its error
// reply, so strikes are counted one after another.
func strikeOnce(t *testing.T, c *wsgatetest.Client) {
	t.Helper()
	c.Send(t, `{"type":"nope"}`)
	c.Expect(t, "error", 5*time.Second)
}

// pingPong proves a connection is open and served.
func pingPong(t *testing.T, c *wsgatetest.Client, who string) {
	t.Helper()
	c.Send(t, `{"type":"ping"}`)
	select {
	case <-c.Closed():
		t.Fatalf("%s: connection closed (%d %q), want it open", who, c.Code, c.Reason)
	default:
	}
	c.Expect(t, "pong", 5*time.Second)
}

// Issue 16 item 7: strikes add up over the nodes, and the ban they place closes
// the user's connections on every node, and nobody else's.
func TestClusterStrikesSharedBanKicksEverywhere(t *testing.T) {
	_, nodes := cluster(t, 3, func(c *config.Config) {
		c.Abuse.MaxStrikes = 5
		c.Abuse.Window = time.Minute
	})
	a, b, c := nodes[0], nodes[1], nodes[2]
	onA := a.Connect(t, "spread-user", nil)
	onB := b.Connect(t, "spread-user", nil)
	idleOnC := c.Connect(t, "spread-user", nil)
	otherOnC := c.Connect(t, "bystander", nil)
	otherOnA := a.Connect(t, "bystander", nil)

	// 4 strikes: 2 on A, 2 on B; no node alone has more than 2.
	for range 2 {
		strikeOnce(t, onA)
		strikeOnce(t, onB)
	}
	pingPong(t, idleOnC, "spread-user on C before the 5th strike")
	// The 5th strike, on A, reaches the limit only if B's strikes counted.
	onA.Send(t, `{"type":"nope"}`)
	onA.ExpectClose(t, 1008, 5*time.Second)
	for _, x := range []struct {
		c    *wsgatetest.Client
		name string
	}{{onB, "spread-user on B"}, {idleOnC, "spread-user on C (never struck)"}} {
		if reason := x.c.ExpectClose(t, 1008, 5*time.Second); reason != "banned" {
			t.Fatalf("%s closed with %q, want \"banned\"", x.name, reason)
		}
	}
	// Same loopback address, other user: untouched on every node.
	pingPong(t, otherOnC, "bystander on C")
	pingPong(t, otherOnA, "bystander on A")
	expectRefused(t, b, wsgatetest.DialOptions{Header: bearer(b.Token(t, "spread-user", nil))}, 403, "banned")
}

// An admin ban placed on one node closes the subject's connections on the
// others only with "kick": true, as on a single node.
func TestClusterAdminBanKickEverywhere(t *testing.T) {
	_, nodes := cluster(t, 3, nil)
	a, c := nodes[0], nodes[2]
	tok := a.Cfg.Admin.Token
	kept := c.Connect(t, "ban-no-kick", nil)
	kicked := c.Connect(t, "ban-kick", nil)
	other := c.Connect(t, "ban-bystander", nil)

	if st, out := adminCall(t, a, "POST", "/api/v1/bans", tok, map[string]any{"user": "ban-no-kick", "ttl": "10m"}); st != 200 {
		t.Fatalf("ban without kick: %d %v", st, out)
	}
	// A kick for another address (published before the next one, so every node
	// handles it first) closes none of the loopback clients.
	if st, out := adminCall(t, a, "POST", "/api/v1/bans", tok, map[string]any{"ip": "203.0.113.9", "ttl": "10m", "kick": true}); st != 200 {
		t.Fatalf("ip ban with kick: %d %v", st, out)
	}
	if st, out := adminCall(t, a, "POST", "/api/v1/bans", tok, map[string]any{"user": "ban-kick", "ttl": "10m", "kick": true}); st != 200 {
		t.Fatalf("ban with kick: %d %v", st, out)
	}
	if reason := kicked.ExpectClose(t, 1008, 5*time.Second); reason != "banned" {
		t.Fatalf("kicked connection on C closed with %q, want \"banned\"", reason)
	}
	pingPong(t, kept, "user banned without kick")
	pingPong(t, other, "bystander")
}
