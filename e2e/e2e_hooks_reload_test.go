package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/conn/transport"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/bgrun"
)

// Issue 14: hooks and per-namespace hooks/limits reload like the rest of the
// configuration. The tests below drive them through a real server, real
// WebSocket clients and real HTTP hook backends.

// allowAll is a hook backend that allows everything.
func allowAll(w http.ResponseWriter, _ hookRequest) { hookReply(w, `{"allow":true}`) }

// waitNoConns waits until wsgate holds no connection to b: the hook that used
// it was replaced and its resources released.
func waitNoConns(t *testing.T, b *hookBackend, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for b.open.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%s: wsgate still holds %d connections to the replaced hook's backend", what, b.open.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// gameLimits is hookConfig with the game namespace's member publish rate
// (no refill within a test) and payload cap.
func gameLimits(burst, maxBytes int) *config.Config {
	return hookConfig(func(_ *config.Config, g *config.Namespace) {
		g.Limits = config.RoomLimits{MemberPublishRate: config.RateLimit{Rate: 0.0001, Burst: burst}, MaxMessageBytes: maxBytes}
	})
}

// A reload that lowers a namespace's limits is enforced on the next
// publications of a connection opened before it; what the member already
// spent counts against the new budget, and a raised budget adds to it.
func TestReloadRoomLimitsOnOpenConnection(t *testing.T) {
	s := wsgatetest.Start(t, gameLimits(10, 1000))
	p := s.Connect(t, "player", gameClaims)
	pad := strings.Repeat("x", 300)
	for i := 1; i <= 2; i++ {
		hookPublish(t, p, i, "game:g1", map[string]any{"i": i, "pad": pad})
		p.Expect(t, "ack", replyWait)
	}

	if err := s.Reload(gameLimits(2, 200)); err != nil {
		t.Fatal(err)
	}
	if !s.Logs.Contains(`"msg":"room limits changed"`, 2*time.Second) {
		t.Fatal("a reload that changed room limits did not log it")
	}
	hookPublish(t, p, 3, "game:g1", map[string]any{"i": 3, "pad": pad})
	expectError(t, p, "message_too_large")
	hookPublish(t, p, 4, "game:g1", map[string]any{"i": 4}) // the two spent fill the new burst of 2
	expectError(t, p, "room_rate_limited")

	// Raised to 5: three more pass, then no more.
	if err := s.Reload(gameLimits(5, 1000)); err != nil {
		t.Fatal(err)
	}
	for i := 5; i <= 7; i++ {
		hookPublish(t, p, i, "game:g1", map[string]any{"i": i, "pad": pad})
		p.Expect(t, "ack", replyWait)
	}
	hookPublish(t, p, 8, "game:g1", map[string]any{"i": 8})
	expectError(t, p, "room_rate_limited")

	// Removed: no per-room limit at all.
	if err := s.Reload(hookConfig(nil)); err != nil {
		t.Fatal(err)
	}
	for i := 9; i <= 11; i++ {
		hookPublish(t, p, i, "game:g1", map[string]any{"i": i, "pad": pad})
		p.Expect(t, "ack", replyWait)
	}
}

// A reload that changes a hook's URL: the open connection's next publication
// goes to the new backend, never again to the old one, whose connections are
// dropped. A reload that leaves the hook as it was keeps it, connection and
// all.
func TestReloadHookURL(t *testing.T) {
	var mu sync.Mutex
	var peers []string // the connections b2 was called on
	b1 := startHookBackend(t, allowAll)
	b2 := startHookBackend(t, func(w http.ResponseWriter, req hookRequest) {
		mu.Lock()
		peers = append(peers, req.r.RemoteAddr)
		mu.Unlock()
		allowAll(w, req)
	})
	withHook := func(url string, maxBytes int) *config.Config {
		return hookConfig(func(c *config.Config, g *config.Namespace) {
			g.Hooks.Publish.URL = url
			c.Limits.MaxMessageBytes = maxBytes
		})
	}
	s := wsgatetest.Start(t, withHook(b1.URL, 8192))
	p := s.Connect(t, "player", gameClaims)
	hookPublish(t, p, 1, "game:g1", map[string]any{"n": 1})
	p.Expect(t, "ack", replyWait)
	if b1.calls.Load() != 1 || b1.open.Load() == 0 {
		t.Fatalf("before reload: b1 %d calls, %d connections", b1.calls.Load(), b1.open.Load())
	}

	if err := s.Reload(withHook(b2.URL, 8192)); err != nil {
		t.Fatal(err)
	}
	if !s.Logs.Contains(`"msg":"hook changed"`, 2*time.Second) {
		t.Fatal("a reload that changed a hook did not log it")
	}
	for i := 2; i <= 3; i++ {
		hookPublish(t, p, i, "game:g1", map[string]any{"n": i})
		p.Expect(t, "ack", replyWait)
	}
	if b1.calls.Load() != 1 || b2.calls.Load() != 2 {
		t.Fatalf("after reload: old hook %d calls (want 1), new hook %d (want 2)", b1.calls.Load(), b2.calls.Load())
	}
	waitNoConns(t, b1, "after the URL changed")

	// Something else changes; the hook does not: it is reused, and so is its
	// connection to the backend.
	if err := s.Reload(withHook(b2.URL, 4096)); err != nil {
		t.Fatal(err)
	}
	hookPublish(t, p, 4, "game:g1", map[string]any{"n": 4})
	p.Expect(t, "ack", replyWait)
	mu.Lock()
	defer mu.Unlock()
	if len(peers) != 3 || peers[2] != peers[1] {
		t.Fatalf("an unchanged hook did not keep its connection across a reload: calls from %v", peers)
	}
}

// A reload adds a connect and a subscribe hook, then another removes them:
// open connections and new ones follow each configuration in turn.
func TestReloadAddsAndRemovesHooks(t *testing.T) {
	be := startHookBackend(t, func(w http.ResponseWriter, req hookRequest) {
		if req.User == "mallory" || (req.Kind == "subscribe" && req.Channel == "game:closed") {
			hookReply(w, `{"allow":false,"reason":"not you"}`)
			return
		}
		allowAll(w, req)
	})
	s := wsgatetest.Start(t, hookConfig(nil))
	c := s.Connect(t, "carol", gameClaims)
	hookSubscribe(t, c, "game:closed")
	c.Expect(t, "ack", replyWait)

	if err := s.Reload(hookConfig(func(cfg *config.Config, g *config.Namespace) {
		cfg.Hooks.Connect.URL = be.URL
		g.Hooks.Subscribe.URL = be.URL
	})); err != nil {
		t.Fatal(err)
	}
	// The open connection's next subscription asks the new hook; the
	// subscription it made before stays.
	hookSubscribe(t, c, "game:open")
	c.Expect(t, "ack", replyWait)
	c.SendJSON(t, map[string]any{"type": "unsubscribe", "channel": "game:closed"})
	c.Expect(t, "ack", replyWait)
	hookSubscribe(t, c, "game:closed")
	expectError(t, c, "hook_refused")
	// New connections pass the new connect hook.
	m, _, err := s.Dial(t, wsgatetest.DialOptions{Header: bearer(s.Token(t, "mallory", gameClaims))})
	if err != nil {
		t.Fatal(err)
	}
	m.ExpectClose(t, 4403, 5*time.Second)
	calls := be.calls.Load()
	if calls != 3 { // subscribe ×2, connect ×1
		t.Fatalf("hook backend saw %d calls, want 3", calls)
	}

	if err := s.Reload(hookConfig(nil)); err != nil {
		t.Fatal(err)
	}
	hookSubscribe(t, c, "game:closed")
	c.Expect(t, "ack", replyWait)
	s.Connect(t, "mallory", gameClaims)
	if n := be.calls.Load(); n != calls {
		t.Fatalf("removed hooks still called: %d calls, want %d", n, calls)
	}
	waitNoConns(t, be, "after the hooks were removed")
}

// A reload refused at compile (an undecodable signing key) or at install (the
// default channel's namespace dropped) leaves the old hooks and limits fully
// in force; the refused runtime's hook is never called.
func TestReloadRefusedKeepsHooks(t *testing.T) {
	b1 := startHookBackend(t, allowAll)
	b2 := startHookBackend(t, allowAll)
	withHook := func(url string, maxBytes int, mutate func(*config.Config)) *config.Config {
		return hookConfig(func(c *config.Config, g *config.Namespace) {
			g.Hooks.Publish.URL = url
			g.Limits.MaxMessageBytes = maxBytes
			if mutate != nil {
				mutate(c)
			}
		})
	}
	s := wsgatetest.Start(t, withHook(b1.URL, 200, nil))
	p := s.Connect(t, "player", gameClaims)
	pad := strings.Repeat("x", 300)
	check := func(id int) {
		t.Helper()
		hookPublish(t, p, id, "game:g1", map[string]any{"pad": pad})
		expectError(t, p, "message_too_large")
		before := b1.calls.Load()
		hookPublish(t, p, id+1, "game:g1", map[string]any{"n": id})
		p.Expect(t, "ack", replyWait)
		if b1.calls.Load() != before+1 || b2.calls.Load() != 0 {
			t.Fatalf("old hook %d calls (want %d), refused hook %d (want 0)", b1.calls.Load(), before+1, b2.calls.Load())
		}
	}
	check(1)
	bad := []*config.Config{
		withHook(b2.URL, 1000, func(c *config.Config) { c.Hooks.SigningKey = "base64:" + strings.Repeat("!", 44) }),
		withHook(b2.URL, 1000, func(c *config.Config) { delete(c.Channels.Namespaces, "chat") }),
	}
	for i, cfg := range bad {
		if err := s.Reload(cfg); err == nil {
			t.Fatalf("bad reload %d accepted", i)
		}
		check(10 * (i + 1))
	}
}

// WithHooks' Go functions are the embedder's, not the file's: they stay in
// force across reloads.
func TestReloadKeepsGoHooks(t *testing.T) {
	s := wsgatetest.Start(t, hookConfig(nil), wsgate.WithHooks(wsgate.HookFuncs{
		Subscribe: func(_ context.Context, ev wsgate.SubscribeEvent) (wsgate.SubscribeReply, error) {
			return wsgate.SubscribeReply{Allow: ev.User != "carol", Reason: "not a player"}, nil
		},
	}, wsgate.HookOptions{}))
	if err := s.Reload(gameLimits(5, 100)); err != nil {
		t.Fatal(err)
	}
	c := s.Connect(t, "carol", gameClaims)
	hookSubscribe(t, c, "game:g1")
	expectError(t, c, "hook_refused")
}

// hooksReloadYAML is a configuration file whose game namespace has a publish
// hook at url and a payload cap of maxBytes, and whose busy namespace has a
// publish hook at busyURL (the same in every file: reloads reuse it) and a cap
// that differs with maxBytes (its checks are swapped all the same).
func hooksReloadYAML(url string, maxBytes int, busyURL string) string {
	return reloadYAML(8192, "1000") + fmt.Sprintf(`
hooks:
  signing_key: %q
channels:
  namespaces:
    chat: {client_publish: true}
    game:
      client_publish: true
      hooks:
        publish: {url: %q}
      limits: {max_message_bytes: %d}
    busy:
      client_publish: true
      hooks:
        publish: {url: %q}
      limits: {max_message_bytes: %d}
`, hookKey, url, maxBytes, busyURL, 4000+maxBytes)
}

// SIGHUP (ReloadFile) and the admin API reloading at the same time, in a loop,
// with hooks and limits changing while a client publishes: every round leaves
// one configuration loaded whole (the hook called and the limit enforced come
// from the same file), the replaced hook's connections are dropped, and
// nothing leaks once the server stops.
func TestConcurrentReloadsWithHooks(t *testing.T) {
	leaks := goleak.IgnoreCurrent()
	bA, bB, bC := startHookBackend(t, allowAll), startHookBackend(t, allowAll), startHookBackend(t, allowAll)
	dir := t.TempDir()
	pathA, pathB := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	for p, y := range map[string]string{pathA: hooksReloadYAML(bA.URL, 200, bC.URL), pathB: hooksReloadYAML(bB.URL, 1000, bC.URL)} {
		if err := os.WriteFile(p, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.Load(pathB, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := wsgatetest.Start(t, cfg, wsgate.WithConfigFile(pathB))
	tok := s.Cfg.Admin.Token

	// A publisher keeps the room checks busy while the runtimes swap.
	busy := s.Connect(t, "busy", map[string]any{"channels": map[string]any{"pub": []string{"busy:*"}}})
	bg := bgrun.NewLoops(t)
	bg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-bg.Stop():
				return
			case <-time.After(10 * time.Millisecond):
			}
			msg := fmt.Sprintf(`{"type":"publish","id":%d,"channel":"busy:x","payload":{"i":%d}}`, i, i)
			if busy.Conn.WriteMessage(transport.Text, []byte(msg)) != nil {
				return
			}
		}
	})
	bg.Go(func() {
		for {
			select {
			case <-bg.Stop():
				return
			case <-busy.Msgs:
			}
		}
	})

	p := s.Connect(t, "player", gameClaims)
	pad := strings.Repeat("x", 300)
	for round := 0; round < 10; round++ {
		reloadBothWays(t, s, pathA, tok)
		a, b := bA.calls.Load(), bB.calls.Load()
		hookPublish(t, p, 2*round, "game:g1", map[string]any{"round": round})
		p.Expect(t, "ack", replyWait)
		inA := bA.calls.Load() > a
		if inA == (bB.calls.Load() > b) {
			t.Fatalf("round %d: hook calls A %d→%d, B %d→%d: want exactly one hook called", round, a, bA.calls.Load(), b, bB.calls.Load())
		}
		hookPublish(t, p, 2*round+1, "game:g1", map[string]any{"pad": pad})
		m := p.Next(t, replyWait)
		switch {
		case inA && m["code"] != "message_too_large":
			t.Fatalf("round %d: file A's hook was called, but a 300-byte payload under its 200-byte cap got %v", round, m)
		case !inA && m["type"] != "ack":
			t.Fatalf("round %d: file B's hook was called, but a 300-byte payload under its 1000-byte cap got %v", round, m)
		}
	}
	bg.Halt()
	if bC.calls.Load() == 0 {
		t.Fatal("the busy publisher's hook was never called")
	}
	// One more SIGHUP-like reload settles on file A: B's hook is dropped.
	s.ReloadFile(pathA, nil)
	if !s.Logs.Contains("configuration reloaded", 2*time.Second) {
		t.Fatal("final reload not logged")
	}
	waitNoConns(t, bB, "after the last reload")

	if err := s.Stop(t); err != nil {
		t.Fatal(err)
	}
	bA.Close()
	bB.Close()
	bC.Close()
	http.DefaultClient.CloseIdleConnections() // adminCall's
	goleak.VerifyNone(t, leaks)
}
