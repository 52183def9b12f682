package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/wsframe"
)

var chatPerms = map[string]any{"channels": map[string]any{"sub": []string{"chat:*"}, "pub": []string{"chat:*"}}}

func subscribe(t *testing.T, c *wsgatetest.Client, ch string, since map[string]any) map[string]any {
	t.Helper()
	m := map[string]any{"type": "subscribe", "id": "s-" + ch, "channel": ch}
	if since != nil {
		m["since"] = since
	}
	c.SendJSON(t, m)
	for {
		r := c.Next(t, 5*time.Second)
		switch r["type"] {
		case "ack":
			if r["ref"] == "s-"+ch {
				return r
			}
		case "error":
			t.Fatalf("subscribe %s: %v", ch, r)
		}
	}
}

// subscriber connects sub with claims to s and subscribes it to ch.
func subscriber(t *testing.T, s *wsgatetest.Server, sub string, claims map[string]any, ch string) *wsgatetest.Client {
	t.Helper()
	c := s.Connect(t, sub, claims)
	subscribe(t, c, ch, nil)
	return c
}

func realtimeServer(t *testing.T, mutate func(*config.Config)) *wsgatetest.Server {
	cfg := wsgatetest.Config()
	cfg.Rate.Tiers["default"] = config.Tier{Messages: config.RateLimit{Rate: 1000, Burst: 1000}, Bytes: config.RateLimit{Rate: 1 << 24, Burst: 1 << 24},
		UserMessages: config.RateLimit{Rate: 1000, Burst: 1000}, UserBytes: config.RateLimit{Rate: 1 << 24, Burst: 1 << 24},
		IPMessages: config.RateLimit{Rate: 5000, Burst: 5000}, IPBytes: config.RateLimit{Rate: 1 << 24, Burst: 1 << 24}}
	return startMutated(t, cfg, mutate)
}

func TestTwoClientsChat(t *testing.T) {
	s := realtimeServer(t, nil)
	alice := subscriber(t, s, "alice", chatPerms, "chat:room1")
	bob := subscriber(t, s, "bob", chatPerms, "chat:room1")
	alice.SendJSON(t, map[string]any{"type": "publish", "id": 1, "channel": "chat:room1", "payload": map[string]any{"text": "hi bob"}})
	m := bob.Expect(t, "message", 5*time.Second)
	if m["from"] != "alice" || m["channel"] != "chat:room1" || m["payload"].(map[string]any)["text"] != "hi bob" {
		t.Fatalf("bob got %v", m)
	}
	bob.SendJSON(t, map[string]any{"type": "chat", "channel": "chat:room1", "text": "hello alice"})
	for {
		m := alice.Expect(t, "message", 5*time.Second)
		if m["from"] == "bob" {
			if m["payload"].(map[string]any)["text"] != "hello alice" {
				t.Fatalf("alice got %v", m)
			}
			break
		}
	}
	// Presence lists both.
	alice.SendJSON(t, map[string]any{"type": "presence", "id": "p", "channel": "chat:room1"})
	p := alice.Expect(t, "presence", 5*time.Second)
	if users, _ := p["users"].([]any); len(users) != 2 {
		t.Fatalf("presence %v", p)
	}
}

func TestChannelPermissions(t *testing.T) {
	s := realtimeServer(t, nil)
	reader := s.Connect(t, "reader", map[string]any{"channels": map[string]any{"sub": []string{"chat:lobby"}}})
	reader.SendJSON(t, map[string]any{"type": "subscribe", "id": 1, "channel": "chat:secret"})
	if e := reader.Expect(t, "error", 5*time.Second); e["code"] != "permission_denied" || e["ref"] != float64(1) {
		t.Fatalf("subscribe without permission: %v", e)
	}
	subscribe(t, reader, "chat:lobby", nil)
	reader.SendJSON(t, map[string]any{"type": "publish", "id": 2, "channel": "chat:lobby", "payload": map[string]any{"x": 1}})
	if e := reader.Expect(t, "error", 5*time.Second); e["code"] != "permission_denied" {
		t.Fatalf("publish without permission: %v", e)
	}
	reader.SendJSON(t, map[string]any{"type": "subscribe", "id": 3, "channel": "nosuchns:x"})
	if e := reader.Expect(t, "error", 5*time.Second); e["code"] == nil {
		t.Fatalf("unknown namespace: %v", e)
	}
	none := s.Connect(t, "nobody", nil)
	none.SendJSON(t, map[string]any{"type": "subscribe", "id": 4, "channel": "chat:lobby"})
	if e := none.Expect(t, "error", 5*time.Second); e["code"] != "permission_denied" {
		t.Fatalf("token without channel claim: %v", e)
	}
}

func TestRecoveryAfterReconnect(t *testing.T) {
	s := realtimeServer(t, func(c *config.Config) {
		ns := c.Channels.Namespaces["chat"]
		ns.HistorySize = 150
		c.Channels.Namespaces["chat"] = ns
	})
	pub := s.Connect(t, "pub", chatPerms)
	sub := s.Connect(t, "sub", chatPerms)
	ack := subscribe(t, sub, "chat:feed", nil)
	pub.SendJSON(t, map[string]any{"type": "publish", "channel": "chat:feed", "payload": map[string]any{"n": 0}})
	first := sub.Expect(t, "message", 5*time.Second)
	last := map[string]any{"offset": first["offset"], "epoch": first["epoch"]}
	_ = ack
	sub.Conn.Close()
	// 100 messages while the subscriber is away.
	for i := 1; i <= 100; i++ {
		pub.SendJSON(t, map[string]any{"type": "publish", "id": i, "channel": "chat:feed", "payload": map[string]any{"n": i}})
		pub.Expect(t, "ack", 5*time.Second)
	}
	back := s.Connect(t, "sub", chatPerms)
	back.SendJSON(t, map[string]any{"type": "subscribe", "id": "r", "channel": "chat:feed", "since": last})
	got := 0
	for got < 100 {
		m := back.Next(t, 5*time.Second)
		switch m["type"] {
		case "message":
			got++
			if n := m["payload"].(map[string]any)["n"]; n != float64(got) {
				t.Fatalf("message %d has n=%v: out of order or gap", got, n)
			}
		case "recovery_failed", "error":
			t.Fatalf("recovery: %v", m)
		}
	}
	// Nothing more than the 100 missed ones (a live message proves the stream is quiet).
	pub.SendJSON(t, map[string]any{"type": "publish", "channel": "chat:feed", "payload": map[string]any{"n": "live"}})
	if m := back.Expect(t, "message", 5*time.Second); m["payload"].(map[string]any)["n"] != "live" {
		t.Fatalf("duplicate after recovery: %v", m)
	}

	// Too far behind: more than the history holds.
	for i := 0; i < 200; i++ {
		pub.SendJSON(t, map[string]any{"type": "publish", "channel": "chat:feed", "payload": map[string]any{"n": i}})
	}
	// One connection's messages are handled in order: once this one is
	// acked, the 200 before it are in the history (no sleep to guess).
	pub.SendJSON(t, map[string]any{"type": "publish", "id": "burst-end", "channel": "chat:feed", "payload": map[string]any{"n": "end"}})
	for pub.Expect(t, "ack", 10*time.Second)["ref"] != "burst-end" {
	}
	late := s.Connect(t, "late", chatPerms)
	late.SendJSON(t, map[string]any{"type": "subscribe", "id": "l", "channel": "chat:feed", "since": last})
	if m := late.Expect(t, "recovery_failed", 5*time.Second); m["channel"] != "chat:feed" {
		t.Fatalf("recovery_failed %v", m)
	}
	// Wrong epoch.
	late2 := s.Connect(t, "late2", chatPerms)
	late2.SendJSON(t, map[string]any{"type": "subscribe", "id": "e", "channel": "chat:feed", "since": map[string]any{"offset": 1, "epoch": "nope"}})
	late2.Expect(t, "recovery_failed", 5*time.Second)
}

func TestCommandRoundTrip(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Name    string          `json:"name"`
			User    string          `json:"user"`
			Payload json.RawMessage `json:"payload"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		if req.Name == "slow" {
			time.Sleep(2 * time.Second)
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"echo":%s,"user":%q}`, req.Payload, req.User)
	}))
	defer backend.Close()
	s := realtimeServer(t, func(c *config.Config) {
		c.Command.URL = backend.URL
		c.Command.Timeout = 500 * time.Millisecond
	})
	c := s.Connect(t, "cmd-user", nil)
	c.SendJSON(t, map[string]any{"type": "command", "id": "c1", "name": "add", "payload": map[string]any{"a": 1}})
	r := c.Expect(t, "command_result", 5*time.Second)
	res, _ := r["result"].(map[string]any)
	if r["ref"] != "c1" || res["user"] != "cmd-user" {
		t.Fatalf("command result %v", r)
	}
	c.SendJSON(t, map[string]any{"type": "command", "id": "c2", "name": "slow"})
	if e := c.Expect(t, "error", 5*time.Second); e["code"] != "command_timeout" || e["ref"] != "c2" {
		t.Fatalf("timeout: %v", e)
	}
}

// A client that never reads, subscribed to a busy channel, is closed as a slow
// consumer; the others keep receiving and the server's memory stays bounded.
func TestSlowConsumerClosed(t *testing.T) {
	s := realtimeServer(t, func(c *config.Config) {
		c.InsecurePlaintext = true
		c.Limits.Outbox = config.Outbox{MaxMessages: 1024, MaxBytes: 256 << 10}
		c.Timeouts.Write = time.Second
		// The publisher sends 3,000 messages as fast as it can: its own budget must
		// not be what ends the test (a rate-limited publisher is closed 1008 before
		// the slow subscriber's write deadline fires on a fast machine).
		d := c.Rate.Tiers["default"]
		d.Messages = config.RateLimit{Rate: 1e6, Burst: 1e6}
		d.UserMessages = config.RateLimit{Rate: 1e6, Burst: 1e6}
		d.IPMessages = config.RateLimit{Rate: 1e6, Burst: 1e6}
		c.Rate.Tiers["default"] = d
	})
	pub := s.Connect(t, "pub", chatPerms)
	fast := subscriber(t, s, "fast", chatPerms, "chat:busy")
	// The slow client is a raw socket with a tiny receive buffer that subscribes
	// and then never reads again.
	slow := rawDialPerms(t, s, chatPerms)
	if _, err := slow.Write(frame(true, 0, 1, []byte(`{"type":"subscribe","id":"x","channel":"chat:busy"}`), false)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	payload := map[string]any{"blob": string(make([]byte, 0)) + fmt.Sprintf("%02000d", 0)}
	delivered := 0
	for i := 0; i < 3000; i++ {
		pub.SendJSON(t, map[string]any{"type": "publish", "channel": "chat:busy", "payload": payload})
		if i%50 == 49 {
			pub.Expect(t, "ack", 5*time.Second)
		}
		for len(fast.Msgs) > 0 {
			<-fast.Msgs
			delivered++
		}
		if i%200 == 199 && s.Logs.Contains(`"close_reason":"slow consumer"`, time.Millisecond) {
			break
		}
	}
	if !s.Logs.Contains(`"close_reason":"slow consumer"`, 10*time.Second) {
		t.Fatal("slow consumer was not closed")
	}
	if delivered == 0 {
		t.Fatal("the fast subscriber got nothing")
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grow := int64(after.HeapInuse) - int64(before.HeapInuse); grow > 32<<20 {
		t.Fatalf("heap grew by %d MiB while a client did not read", grow>>20)
	}
	_ = context.Background()
	_ = httptest.NewRecorder
}

// rawDialPerms is rawDial with a small receive buffer and channel permissions.
func rawDialPerms(t *testing.T, s *wsgatetest.Server, claims map[string]any) *wsgatetest.RawConn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		_ = c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return serr
	}}
	r := wsgatetest.RawHandshake(t, &d, s.Addr, wsframe.Request(s.Addr, s.Cfg.Path, "Authorization: Bearer "+s.Token(t, "slowpoke", claims)))
	if r.Resp.StatusCode != 101 {
		t.Fatalf("upgrade: %d", r.Resp.StatusCode)
	}
	_ = r.SetDeadline(time.Now().Add(30 * time.Second))
	return r
}

func TestServerSidePublishAPI(t *testing.T) {
	key := "publish-key-publish-key-publish-key-0001"
	s := realtimeServer(t, func(c *config.Config) { c.Channels.PublishAPIKeys = []string{key} })
	sub := subscriber(t, s, "listener", chatPerms, "chat:news")
	post := func(auth string) int {
		if auth != "" {
			auth = "Bearer " + auth
		}
		resp, _ := httpDo(t, nil, "POST", s.AdminURL+"/v1/publish", auth, `{"channel":"chat:news","payload":{"headline":"hello"}}`)
		return resp.StatusCode
	}
	if code := post(""); code != 401 {
		t.Fatalf("publish without key: %d", code)
	}
	if code := post("wrong-key-wrong-key-wrong-key-wrong-key"); code != 401 {
		t.Fatalf("publish with a wrong key: %d", code)
	}
	if code := post(key); code != 200 {
		t.Fatalf("publish with key: %d", code)
	}
	m := sub.Expect(t, "message", 5*time.Second)
	if m["payload"].(map[string]any)["headline"] != "hello" {
		t.Fatalf("pushed %v", m)
	}
	if strings.Contains(s.Logs.String(), key) {
		t.Fatal("publish key in the log")
	}
}

// A small history request cannot buy an unbounded reply: replies are capped in
// bytes and say so.
func TestHistoryReplyBounded(t *testing.T) {
	s := realtimeServer(t, nil)
	c := subscriber(t, s, "historian", chatPerms, "chat:big")
	blob := strings.Repeat("x", 3000)
	for i := 0; i < 40; i++ {
		c.SendJSON(t, map[string]any{"type": "publish", "id": i, "channel": "chat:big", "payload": map[string]any{"b": blob}})
		c.Expect(t, "ack", 5*time.Second)
	}
	c.SendJSON(t, map[string]any{"type": "history", "id": "h", "channel": "chat:big", "limit": 100})
	h := c.Expect(t, "history", 5*time.Second)
	pubs, _ := h["publications"].([]any)
	if h["truncated"] != true || len(pubs) == 0 || len(pubs) >= 40 {
		t.Fatalf("history reply: truncated=%v with %d publications", h["truncated"], len(pubs))
	}
}

// Namespaces reload without dropping connections: a namespace added by a reload
// accepts subscriptions on a connection opened before it.
func TestNamespacesReload(t *testing.T) {
	s := realtimeServer(t, nil)
	perms := map[string]any{"channels": map[string]any{"sub": []string{"*:*"}, "pub": []string{"*:*"}}}
	c := s.Connect(t, "reloader", perms)
	c.SendJSON(t, map[string]any{"type": "subscribe", "id": 1, "channel": "news:today"})
	if e := c.Expect(t, "error", 5*time.Second); e["code"] != "unknown_namespace" {
		t.Fatalf("before reload: %v", e)
	}
	cfg := *s.Cfg
	cfg.Channels.Namespaces = map[string]config.Namespace{
		"chat": s.Cfg.Channels.Namespaces["chat"],
		"news": {ClientPublish: true, HistorySize: 10, HistoryTTL: time.Minute},
	}
	if err := s.Reload(&cfg); err != nil {
		t.Fatal(err)
	}
	subscribe(t, c, "news:today", nil)
	// A reload that would orphan the default channel is refused whole.
	bad := cfg
	bad.Channels.Namespaces = map[string]config.Namespace{"news": cfg.Channels.Namespaces["news"]}
	if err := s.Reload(&bad); err == nil {
		t.Fatal("reload without the default channel's namespace accepted")
	}
	subscribe(t, c, "chat:still", nil)
}
