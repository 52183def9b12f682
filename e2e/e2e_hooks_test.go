package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/route/hook"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest"
)

const hookKey = "hook-signing-key-0123456789abcdef-0123456789"

// hookRequest is what a test backend sees of one verified hook call.
type hookRequest struct {
	Kind    string          `json:"kind"`
	User    string          `json:"user"`
	ConnID  string          `json:"conn_id"`
	Channel string          `json:"channel"`
	Tier    string          `json:"tier"`
	Payload json.RawMessage `json:"payload"`
	r       *http.Request
}

// hookBackend is a real HTTP hook backend: it verifies every request's
// signature (refusing and failing the test on a bad one) and answers with f.
// calls counts the requests that reached it, open the connections wsgate
// holds to it.
type hookBackend struct {
	*httptest.Server
	calls atomic.Int64
	open  atomic.Int64
}

func startHookBackend(t *testing.T, f func(w http.ResponseWriter, req hookRequest)) *hookBackend {
	t.Helper()
	b := &hookBackend{}
	b.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.calls.Add(1)
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "read", http.StatusBadRequest)
			return
		}
		id, kind, err := hook.VerifyRequest(r.Header, body, []byte(hookKey), time.Minute)
		if err != nil {
			t.Errorf("hook request failed verification: %v", err)
			http.Error(w, "unsigned", http.StatusUnauthorized)
			return
		}
		var req hookRequest
		if err := json.Unmarshal(body, &req); err != nil || req.Kind != kind || req.User != id.User || req.ConnID != id.ConnID {
			t.Errorf("hook body %s does not match its signed identity %+v (kind %q)", body, id, kind)
			http.Error(w, "mismatch", http.StatusBadRequest)
			return
		}
		req.r = r
		f(w, req)
	}))
	b.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			b.open.Add(1)
		case http.StateClosed, http.StateHijacked:
			b.open.Add(-1)
		}
	}
	b.Start()
	t.Cleanup(b.Close)
	return b
}

func hookReply(w http.ResponseWriter, body string) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, body)
}

// hookConfig is the test config with a "game" namespace (client publish,
// presence) and the hook signing key.
func hookConfig(mutate func(c *config.Config, game *config.Namespace)) *config.Config {
	cfg := wsgatetest.Config()
	cfg.Hooks.SigningKey = hookKey
	game := config.Namespace{ClientPublish: true, Presence: true}
	if mutate != nil {
		mutate(cfg, &game)
	}
	cfg.Channels.Namespaces["game"] = game
	return cfg
}

var gameClaims = map[string]any{"channels": map[string]any{"sub": []string{"game:*", "chat:*"}, "pub": []string{"game:*", "chat:*"}}}

func hookPublish(t *testing.T, c *wsgatetest.Client, id int, ch string, payload any) {
	t.Helper()
	c.SendJSON(t, map[string]any{"type": "publish", "id": id, "channel": ch, "payload": payload})
}

func hookSubscribe(t *testing.T, c *wsgatetest.Client, ch string) {
	t.Helper()
	c.SendJSON(t, map[string]any{"type": "subscribe", "channel": ch})
}

func TestHookConnect(t *testing.T) {
	be := startHookBackend(t, func(w http.ResponseWriter, req hookRequest) {
		switch req.User {
		case "mallory":
			hookReply(w, `{"allow":false,"reason":"account suspended\nby ops \u00e9"}`)
		case "vip":
			if req.Tier != "default" {
				t.Errorf("connect hook got tier %q, want default", req.Tier)
			}
			hookReply(w, `{"allow":true,"tier":"vip","channels":{"sub":["secret:*"]}}`)
		case "badtier":
			hookReply(w, `{"allow":true,"tier":"nope"}`)
		case "extra":
			hookReply(w, `{"allow":true,"unknown":1}`)
		default:
			hookReply(w, `{"allow":true}`)
		}
	})
	s := wsgatetest.Start(t, hookConfig(func(c *config.Config, _ *config.Namespace) {
		c.Hooks.Connect.URL = be.URL
		vip := c.Rate.Tiers["default"]
		vip.Messages = config.RateLimit{Rate: 0.0001, Burst: 2} // observable: a third message is refused
		c.Rate.Tiers["vip"] = vip
		c.Channels.Namespaces["secret"] = config.Namespace{}
	}))

	// Allowed: the welcome comes after the hook said yes.
	s.Connect(t, "alice", nil)

	// Refused: a close frame with the backend's reason, sanitized.
	c, _, err := s.Dial(t, wsgatetest.DialOptions{Header: bearer(s.Token(t, "mallory", nil))})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if reason := c.ExpectClose(t, 4403, 5*time.Second); reason != "account suspended?by ops ??" {
		t.Fatalf("refusal reason %q", reason)
	}

	// Added channels: vip may subscribe to secret:x, which its token does not grant.
	v := s.Connect(t, "vip", nil)
	hookSubscribe(t, v, "secret:x")
	v.Expect(t, "ack", 5*time.Second)
	// The tier the hook set is in force: vip's budget is 2 messages.
	v.Send(t, `{"type":"ping","id":1}`)
	v.Expect(t, "pong", 5*time.Second)
	v.Send(t, `{"type":"ping","id":2}`)
	expectError(t, v, "rate_limited")
	plain := s.Connect(t, "plain", nil)
	hookSubscribe(t, plain, "secret:x")
	expectError(t, plain, "permission_denied")

	// A reply naming an unconfigured tier or carrying unknown fields is a
	// malformed answer: fail closed, 1013.
	for _, u := range []string{"badtier", "extra"} {
		c, _, err := s.Dial(t, wsgatetest.DialOptions{Header: bearer(s.Token(t, u, nil))})
		if err != nil {
			t.Fatalf("dial %s: %v", u, err)
		}
		c.ExpectClose(t, 1013, 5*time.Second)
	}
}

func TestHookSubscribe(t *testing.T) {
	be := startHookBackend(t, func(w http.ResponseWriter, req hookRequest) {
		if req.Kind != hook.KindSubscribe || req.Channel != "game:g1" {
			t.Errorf("subscribe hook got %+v", req)
		}
		if req.User == "alice" || req.User == "bob" {
			hookReply(w, `{"allow":true}`)
			return
		}
		hookReply(w, `{"allow":false,"reason":"only the two players"}`)
	})
	s := wsgatetest.Start(t, hookConfig(func(_ *config.Config, g *config.Namespace) {
		g.Hooks.Subscribe.URL = be.URL
	}))
	a := s.Connect(t, "alice", gameClaims)
	hookSubscribe(t, a, "game:g1")
	a.Expect(t, "ack", 5*time.Second)
	c := s.Connect(t, "carol", gameClaims)
	hookSubscribe(t, c, "game:g1")
	if e := expectError(t, c, "hook_refused"); e["message"] != "only the two players" {
		t.Fatalf("refusal message %v", e["message"])
	}
	// Other namespaces have no hook: no call.
	before := be.calls.Load()
	hookSubscribe(t, c, "chat:lobby")
	c.Expect(t, "ack", 5*time.Second)
	if n := be.calls.Load(); n != before {
		t.Fatalf("chat subscribe called the game hook (%d calls, want %d)", n, before)
	}
}

func TestHookPublish(t *testing.T) {
	be := startHookBackend(t, func(w http.ResponseWriter, req hookRequest) {
		var mv struct{ Cell int }
		_ = json.Unmarshal(req.Payload, &mv)
		switch {
		case mv.Cell < 0 || mv.Cell > 8:
			hookReply(w, `{"allow":false,"reason":"illegal move"}`)
		case mv.Cell == 4:
			hookReply(w, `{"allow":true,"payload":{"cell":4,"checked":true}}`)
		default:
			hookReply(w, `{"allow":true}`)
		}
	})
	s := wsgatetest.Start(t, hookConfig(func(c *config.Config, g *config.Namespace) {
		g.Hooks.Publish.URL = be.URL
		c.Abuse.MaxStrikes = 2
	}))
	watcher := s.Connect(t, "watcher", gameClaims)
	hookSubscribe(t, watcher, "game:g1")
	watcher.Expect(t, "ack", 5*time.Second)
	p := s.Connect(t, "player", gameClaims)

	hookPublish(t, p, 1, "game:g1", map[string]any{"cell": 0}) // allowed as is
	p.Expect(t, "ack", 5*time.Second)
	if m := watcher.Expect(t, "message", 5*time.Second); !strings.Contains(wsgatetest.JSON(t, m["payload"]), `"cell":0`) {
		t.Fatalf("watcher got %v", m)
	}
	hookPublish(t, p, 2, "game:g1", map[string]any{"cell": 4}) // rewritten
	p.Expect(t, "ack", 5*time.Second)
	if m := watcher.Expect(t, "message", 5*time.Second); wsgatetest.JSON(t, m["payload"]) != `{"cell":4,"checked":true}` {
		t.Fatalf("watcher got %v, want the rewritten payload", m["payload"])
	}
	hookPublish(t, p, 3, "game:g1", map[string]any{"cell": 9}) // refused: an error reply and a strike
	if e := expectError(t, p, "hook_refused"); e["message"] != "illegal move" {
		t.Fatalf("refusal %v", e)
	}
	hookPublish(t, p, 4, "game:g1", map[string]any{"cell": -1}) // the second strike bans
	if reason := p.ExpectClose(t, 1008, 5*time.Second); reason != "banned" {
		t.Fatalf("close reason %q, want banned", reason)
	}
	// The refused moves were never broadcast.
	select {
	case b := <-watcher.Msgs:
		t.Fatalf("refused move reached a subscriber: %s", b)
	default:
	}
}

// TestHookSlowTimeoutBusy: a slow publish hook holds only its own caller: a
// ping on another connection is answered while the hook is stuck; a second
// call finds the one slot taken and fails at once (busy, fail closed); a call
// that outlives the timeout fails closed.
func TestHookSlowTimeoutBusy(t *testing.T) {
	entered := make(chan struct{}, 4)
	release := make(chan struct{})
	be := startHookBackend(t, func(w http.ResponseWriter, req hookRequest) {
		entered <- struct{}{}
		if strings.Contains(string(req.Payload), "forever") {
			<-req.r.Context().Done() // until wsgate gives up
			return
		}
		select {
		case <-release:
		case <-req.r.Context().Done():
		}
		hookReply(w, `{"allow":true}`)
	})
	s := wsgatetest.Start(t, hookConfig(func(c *config.Config, g *config.Namespace) {
		g.Hooks.Publish.URL = be.URL
		g.Hooks.Publish.MaxConcurrency = 1
		g.Hooks.Publish.Timeout = 30 * time.Second
		c.Channels.Namespaces["slowto"] = config.Namespace{ClientPublish: true,
			Hooks: config.NamespaceHooks{Publish: config.Hook{URL: be.URL, Timeout: 200 * time.Millisecond}}}
	}))
	claims := map[string]any{"channels": map[string]any{"sub": []string{"game:*", "slowto:*"}, "pub": []string{"game:*", "slowto:*"}}}
	slow := s.Connect(t, "slow", claims)
	other := s.Connect(t, "other", claims)
	third := s.Connect(t, "third", claims)

	hookPublish(t, slow, 1, "game:g1", map[string]any{"m": 1})
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("publish hook was not called within 10s")
	}
	// The hook is stuck now (until release): other connections are served.
	other.Send(t, `{"type":"ping","id":1}`)
	other.Expect(t, "pong", 5*time.Second)
	// The one concurrency slot is taken: refused at once, fail closed.
	hookPublish(t, third, 1, "game:g2", map[string]any{"m": 2})
	expectError(t, third, "hook_unavailable")
	close(release)
	slow.Expect(t, "ack", 5*time.Second)

	// Timeout (200ms on slowto): fail closed.
	hookPublish(t, other, 2, "slowto:x", map[string]any{"m": "forever"})
	expectError(t, other, "hook_unavailable")
}

// TestHookBreakerAndFailOpen: a failing backend opens the circuit after the
// configured failures (no more calls reach it, refusals continue: fail
// closed); a fail_open hook lets publications through unchanged.
func TestHookBreakerAndFailOpen(t *testing.T) {
	be := startHookBackend(t, func(w http.ResponseWriter, _ hookRequest) {
		http.Error(w, "boom", http.StatusInternalServerError)
	})
	s := wsgatetest.Start(t, hookConfig(func(c *config.Config, g *config.Namespace) {
		g.Hooks.Publish = config.Hook{URL: be.URL, Breaker: config.HookBreaker{Failures: 2, Cooldown: time.Hour}}
		c.Channels.Namespaces["open"] = config.Namespace{ClientPublish: true,
			Hooks: config.NamespaceHooks{Publish: config.Hook{URL: be.URL, FailurePolicy: "fail_open", Breaker: config.HookBreaker{Failures: 1000}}}}
	}))
	if !s.Logs.Contains("fails open", 5*time.Second) {
		t.Fatal("fail_open hook not logged at start as a loosening")
	}
	claims := map[string]any{"channels": map[string]any{"sub": []string{"game:*", "open:*"}, "pub": []string{"game:*", "open:*"}}}
	p := s.Connect(t, "p", claims)
	for i := 1; i <= 2; i++ {
		hookPublish(t, p, i, "game:g1", map[string]any{"i": i})
		expectError(t, p, "hook_unavailable")
	}
	if n := be.calls.Load(); n != 2 {
		t.Fatalf("backend saw %d calls, want 2", n)
	}
	hookPublish(t, p, 3, "game:g1", map[string]any{"i": 3})
	expectError(t, p, "hook_unavailable")
	if n := be.calls.Load(); n != 2 {
		t.Fatalf("circuit open, yet the backend saw %d calls (want still 2)", n)
	}

	m := scrape(t, s)
	if n := metricSum(m, "wsgate_hook_calls_total", `kind="publish"`, `outcome="open"`); n != 1 {
		t.Fatalf("wsgate_hook_calls_total{outcome=open} = %v, want 1", n)
	}
	if n := metricSum(m, "wsgate_hook_calls_total", `kind="publish"`, `outcome="error"`); n != 2 {
		t.Fatalf("wsgate_hook_calls_total{outcome=error} = %v, want 2", n)
	}
	w := s.Connect(t, "w", claims)
	hookSubscribe(t, w, "open:x")
	w.Expect(t, "ack", 5*time.Second)
	hookPublish(t, p, 4, "open:x", map[string]any{"i": 4})
	p.Expect(t, "ack", 5*time.Second)
	if m := w.Expect(t, "message", 5*time.Second); wsgatetest.JSON(t, m["payload"]) != `{"i":4}` {
		t.Fatalf("fail_open delivered %v", m["payload"])
	}
}

// roomLimits sets the game namespace's per-room limits: 3 publications per
// channel, 2 per member per channel (no refill within a test), 64-byte
// payloads matching the "move" schema, 2 members.
func roomLimits(c *config.Config, g *config.Namespace) {
	g.Limits = config.RoomLimits{
		PublishRate:       config.RateLimit{Rate: 0.0001, Burst: 3},
		MemberPublishRate: config.RateLimit{Rate: 0.0001, Burst: 2},
		MaxMessageBytes:   64,
		Schema:            "move",
		MaxMembers:        2,
	}
	if c.Schemas.Inline == nil {
		c.Schemas.Inline = map[string]string{}
	}
	c.Schemas.Inline["move"] = `{"type":"object","properties":{"cell":{"type":"integer","minimum":0,"maximum":8}},"required":["cell"],"additionalProperties":false}`
}

// checkRoomLimits drives the limits through clients that may sit on
// different nodes: alice and bob on a/b, carol on c.
func checkRoomLimits(t *testing.T, a, b, c *wsgatetest.Server) {
	alice := a.Connect(t, "alice", gameClaims)
	bob := b.Connect(t, "bob", gameClaims)
	carol := c.Connect(t, "carol", gameClaims)

	// Size and schema first: refused without spending the rate.
	hookPublish(t, alice, 1, "game:g1", map[string]any{"cell": 1, "pad": strings.Repeat("x", 80)})
	expectError(t, alice, "message_too_large")
	hookPublish(t, alice, 2, "game:g1", map[string]any{"cell": 12})
	expectError(t, alice, "schema_violation")

	// Member rate: alice gets 2 in game:g1.
	for i := 3; i <= 4; i++ {
		hookPublish(t, alice, i, "game:g1", map[string]any{"cell": i})
		alice.Expect(t, "ack", replyWait)
	}
	hookPublish(t, alice, 5, "game:g1", map[string]any{"cell": 5})
	expectError(t, alice, "room_rate_limited")
	// Channel rate: 3 in all; bob (another node) gets the third, then no more.
	hookPublish(t, bob, 1, "game:g1", map[string]any{"cell": 1})
	bob.Expect(t, "ack", replyWait)
	hookPublish(t, bob, 2, "game:g1", map[string]any{"cell": 2})
	expectError(t, bob, "room_rate_limited")
	// Another room is untouched.
	hookPublish(t, bob, 3, "game:g2", map[string]any{"cell": 3})
	bob.Expect(t, "ack", replyWait)

	// Max members: two across the nodes, the third is refused.
	hookSubscribe(t, alice, "game:g3")
	alice.Expect(t, "ack", replyWait)
	hookSubscribe(t, bob, "game:g3")
	bob.Expect(t, "ack", replyWait)
	hookSubscribe(t, carol, "game:g3")
	expectError(t, carol, "channel_full")
}

func TestRoomLimits(t *testing.T) {
	s := wsgatetest.Start(t, hookConfig(roomLimits))
	checkRoomLimits(t, s, s, s)
}

func TestClusterRoomLimits(t *testing.T) {
	_, nodes := cluster(t, 3, func(c *config.Config) {
		g := config.Namespace{ClientPublish: true, Presence: true}
		roomLimits(c, &g)
		c.Channels.Namespaces["game"] = g
	})
	checkRoomLimits(t, nodes[0], nodes[1], nodes[2])
}

// TestHookGoFuncs: WithHooks runs Go functions under the same protections;
// the publish function rewrites, the subscribe function refuses.
func TestHookGoFuncs(t *testing.T) {
	s := wsgatetest.Start(t, hookConfig(nil), wsgate.WithHooks(wsgate.HookFuncs{
		Subscribe: func(_ context.Context, ev wsgate.SubscribeEvent) (wsgate.SubscribeReply, error) {
			return wsgate.SubscribeReply{Allow: ev.User != "carol", Reason: "not a player"}, nil
		},
		Publish: func(_ context.Context, ev wsgate.PublishEvent) (wsgate.PublishReply, error) {
			return wsgate.PublishReply{Allow: true, Payload: []byte(`{"by":"` + ev.User + `"}`)}, nil
		},
	}, wsgate.HookOptions{}))
	a := s.Connect(t, "alice", gameClaims)
	hookSubscribe(t, a, "game:g1")
	a.Expect(t, "ack", 5*time.Second)
	hookPublish(t, a, 1, "game:g1", map[string]any{"cell": 1})
	if m := a.Expect(t, "message", 5*time.Second); wsgatetest.JSON(t, m["payload"]) != `{"by":"alice"}` {
		t.Fatalf("got %v, want the rewritten payload", m["payload"])
	}
	c := s.Connect(t, "carol", gameClaims)
	hookSubscribe(t, c, "game:g1")
	if e := expectError(t, c, "hook_refused"); e["message"] != "not a player" {
		t.Fatalf("refusal %v", e)
	}
}

// TestDemoGameAntiCheat: the dev tic-tac-toe page in headless Chromium. Two
// players; the referee (a publish hook) refuses a move on a taken cell and
// moves out of turn, and a burst of moves hits the per-game rate limit.
func TestDemoGameAntiCheat(t *testing.T) {
	s, info := startDevServer(t)
	t.Cleanup(func() { _ = os.Remove(info.CertFile) })
	root := wsgatetest.Browser(t, 60*time.Second)
	alice, cancelA := chromedp.NewContext(root, chromedp.WithNewBrowserContext())
	defer cancelA()
	bob, cancelB := chromedp.NewContext(root, chromedp.WithNewBrowserContext())
	defer cancelB()
	play := func(name string) chromedp.Action[chromedp.Void] {
		return joinPage(s.HTTPURL+"/game#dev="+info.PageSecret, name)
	}
	if err := chromedp.Do(alice, play("alice")); err != nil {
		t.Fatalf("alice: %v", err)
	}
	if err := chromedp.Do(bob, play("bob")); err != nil {
		t.Fatalf("bob: %v", err)
	}
	// Alice is X: the centre. Both boards show it.
	if err := chromedp.Do(alice, chromedp.Click("#cell4"), waitText("#cell4", "X")); err != nil {
		txt, _ := chromedp.Run(alice, chromedp.Evaluate[string]("document.body.innerText"))
		t.Fatalf("alice's move: %v\npage: %s", err, txt)
	}
	if err := chromedp.Do(bob, waitText("#cell4", "X"), waitText("#info", "O to move")); err != nil {
		t.Fatalf("bob did not see alice's move: %v", err)
	}
	// Bob tries the taken centre: refused by the referee.
	if err := chromedp.Do(bob, chromedp.Click("#cell4"), waitText("#log", "that cell is taken")); err != nil {
		t.Fatalf("taken cell not refused: %v", err)
	}
	// Alice cheats: five moves in one burst while it is not her turn.
	if err := chromedp.Do(alice, chromedp.Click("#cheatbtn"), waitText("#log", "not your turn"), waitText("#log", "room_rate_limited")); err != nil {
		t.Fatalf("cheat not refused: %v", err)
	}
	// Bob's legal move still goes through, and alice's board never took a cheat.
	if err := chromedp.Do(bob, chromedp.Click("#cell0"), waitText("#cell0", "O")); err != nil {
		t.Fatalf("bob's legal move: %v", err)
	}
	if err := chromedp.Do(alice, waitText("#cell0", "O"), waitText("#info", "X to move")); err != nil {
		t.Fatalf("alice's board: %v", err)
	}
	if shot, err := chromedp.Run(alice, chromedp.CaptureScreenshot()); err == nil {
		p := filepath.Join(wsgatetest.ArtifactDir(t), "demo-game.png")
		if os.WriteFile(p, shot, 0o644) == nil {
			t.Logf("screenshot: %s", p)
		}
	}
}

// TestHookTimeoutAndOpenEachKind: the connect and subscribe hooks time out and
// then fail with the circuit open, fail closed, as the publish hook does in
// TestHookSlowTimeoutBusy / TestHookBreakerAndFailOpen.
func TestHookTimeoutAndOpenEachKind(t *testing.T) {
	var connects, subscribes atomic.Int64
	be := startHookBackend(t, func(w http.ResponseWriter, req hookRequest) {
		switch req.Kind {
		case hook.KindConnect:
			if connects.Add(1) == 1 && req.User == "late" {
				<-req.r.Context().Done() // the first connect times out
				return
			}
			hookReply(w, `{"allow":true}`)
		case hook.KindSubscribe:
			subscribes.Add(1)
			<-req.r.Context().Done() // every subscribe times out
		}
	})
	s := wsgatetest.Start(t, hookConfig(func(c *config.Config, g *config.Namespace) {
		brk := config.HookBreaker{Failures: 1, Cooldown: time.Hour}
		c.Hooks.Connect = config.Hook{URL: be.URL, Timeout: 200 * time.Millisecond, Breaker: brk}
		g.Hooks.Subscribe = config.Hook{URL: be.URL, Timeout: 200 * time.Millisecond, Breaker: brk}
	}))
	dial := func(user string) *wsgatetest.Client {
		c, _, err := s.Dial(t, wsgatetest.DialOptions{Header: bearer(s.Token(t, user, gameClaims))})
		if err != nil {
			t.Fatalf("dial %s: %v", user, err)
		}
		return c
	}
	// Connect: timeout → 1013; the circuit is now open → 1013 without a call.
	if r := dial("late").ExpectClose(t, 1013, 5*time.Second); r != "try again later" {
		t.Fatalf("reason %q", r)
	}
	dial("next").ExpectClose(t, 1013, 5*time.Second)
	if n := connects.Load(); n != 1 {
		t.Fatalf("backend saw %d connect calls, want 1 (circuit open)", n)
	}

	// Subscribe, on a server whose connect hook is healthy.
	s2 := wsgatetest.Start(t, hookConfig(func(_ *config.Config, g *config.Namespace) {
		g.Hooks.Subscribe = config.Hook{URL: be.URL, Timeout: 200 * time.Millisecond, Breaker: config.HookBreaker{Failures: 1, Cooldown: time.Hour}}
	}))
	c := s2.Connect(t, "sub", gameClaims)
	hookSubscribe(t, c, "game:g1")
	expectError(t, c, "hook_unavailable") // timeout
	hookSubscribe(t, c, "game:g2")
	expectError(t, c, "hook_unavailable") // circuit open
	if n := subscribes.Load(); n != 1 {
		t.Fatalf("backend saw %d subscribe calls, want 1 (circuit open)", n)
	}
	if m := scrape(t, s2); metricSum(m, "wsgate_hook_calls_total", `kind="subscribe"`, `outcome="timeout"`) != 1 ||
		metricSum(m, "wsgate_hook_calls_total", `kind="subscribe"`, `outcome="open"`) != 1 {
		t.Fatalf("hook metrics: want one timeout and one open subscribe call")
	}
}
