package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/observe/alert"
	"github.com/wsgate/wsgate/internal/observe/audit"
	"github.com/wsgate/wsgate/internal/observe/metrics"
	"github.com/wsgate/wsgate/internal/state/ban"
)

const testToken = "admin-token-admin-token-admin-token-0123"

type fakeConns struct {
	mu     sync.Mutex
	conns  []Conn
	kicked map[string]bool
}

func (f *fakeConns) RangeConns(fn func(Conn) bool) {
	f.mu.Lock()
	list := append([]Conn(nil), f.conns...)
	f.mu.Unlock()
	for _, c := range list {
		if !fn(c) {
			return
		}
	}
}

func (f *fakeConns) Kick(id string, banned bool) (Conn, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, c := range f.conns {
		if c.ID == id {
			f.kicked[id] = banned
			f.conns = append(f.conns[:i], f.conns[i+1:]...)
			return c, true
		}
	}
	return Conn{}, false
}

type fakeAudit struct {
	mu     sync.Mutex
	events []audit.Event
}

func (a *fakeAudit) Log(e audit.Event) {
	a.mu.Lock()
	a.events = append(a.events, e)
	a.mu.Unlock()
}

func (a *fakeAudit) names() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, e := range a.events {
		out = append(out, e.Event)
	}
	return out
}

type env struct {
	h     *Handler
	srv   *httptest.Server
	conns *fakeConns
	audit *fakeAudit
	bans  *ban.MemoryList
	eng   *alert.Engine
	done  chan struct{}
}

func newEnv(t *testing.T, mod func(*Options)) *env {
	t.Helper()
	eng, err := alert.New(alert.Options{Rules: []alert.Rule{{Name: "r", Event: alert.EventAuthFailure, Threshold: 1, PerIP: true}}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	e := &env{
		conns: &fakeConns{kicked: map[string]bool{}, conns: []Conn{
			{ID: "a1", User: "alice", IP: "10.0.0.1", Route: "/ws", Since: now.Add(-time.Minute)},
			{ID: "b2", User: "bob", IP: "10.0.0.2", Route: "/ws", Since: now.Add(-time.Second), Channels: []string{"chat:lobby"}},
			{ID: "c3", User: "carol", IP: "10.0.0.1", Route: "/gw", Since: now.Add(-time.Hour)},
		}},
		audit: &fakeAudit{}, bans: ban.NewMemoryList(100), eng: eng, done: make(chan struct{}),
	}
	o := Options{
		Token: func() string { return testToken }, Conns: e.conns, Bans: e.bans, Alerts: eng,
		Stats: metrics.NewSeries(nil), Audit: e.audit, Done: e.done, StreamInterval: 20 * time.Millisecond,
		Reload: func(context.Context) error { return nil },
	}
	if mod != nil {
		mod(&o)
	}
	h, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	e.h = h
	e.srv = httptest.NewServer(h)
	t.Cleanup(e.srv.Close)
	return e
}

func (e *env) do(t *testing.T, method, path, token, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s %s: %d not JSON: %q", method, path, resp.StatusCode, b)
	}
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("%s %s: API answer is cacheable", method, path)
	}
	return resp.StatusCode, out
}

func TestAuth(t *testing.T) {
	e := newEnv(t, nil)
	for _, tok := range []string{"", "x", testToken + "x", testToken[:len(testToken)-1]} {
		if st, _ := e.do(t, "GET", "/api/v1/connections", tok, ""); st != 401 {
			t.Fatalf("token %q: %d", tok, st)
		}
	}
	if st, _ := e.do(t, "GET", "/api/v1/connections", testToken, ""); st != 200 {
		t.Fatal("good token refused")
	}
	if got := e.audit.names(); len(got) != 4 || got[0] != audit.AdminAction {
		t.Fatalf("failed auth not audited: %v", got)
	}
	for _, h := range []string{"bearer " + testToken, "BEARER  " + testToken} {
		req, _ := http.NewRequest("GET", e.srv.URL+"/api/v1/status", nil)
		req.Header.Set("Authorization", h)
		resp, _ := http.DefaultClient.Do(req)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%q: %d", h, resp.StatusCode)
		}
	}
	off := newEnv(t, func(o *Options) { o.Token = func() string { return "" } })
	if st, out := off.do(t, "GET", "/api/v1/status", testToken, ""); st != 403 || out["error"] != "admin token not configured" {
		t.Fatalf("no token configured: %d %v", st, out)
	}
	if st, _ := off.do(t, "POST", "/api/v1/nothing", "", ""); st != 403 {
		t.Fatalf("unknown path, no token configured: %d", st)
	}
}

func TestListConnections(t *testing.T) {
	e := newEnv(t, nil)
	st, out := e.do(t, "GET", "/api/v1/connections", testToken, "")
	list := out["connections"].([]any)
	if st != 200 || out["total"] != float64(3) || len(list) != 3 || list[0].(map[string]any)["id"] != "b2" || list[2].(map[string]any)["id"] != "c3" {
		t.Fatalf("list: %d %v", st, out)
	}
	if ch := list[1].(map[string]any)["channels"]; ch == nil {
		t.Fatal("channels must be [] not null")
	}
	// Search and limit: the newest matches are kept, total counts all.
	_, out = e.do(t, "GET", "/api/v1/connections?q=10.0.0.1&limit=1", testToken, "")
	list = out["connections"].([]any)
	if out["total"] != float64(2) || len(list) != 1 || list[0].(map[string]any)["id"] != "a1" {
		t.Fatalf("search: %v", out)
	}
	if _, out = e.do(t, "GET", "/api/v1/connections?q=LOBBY", testToken, ""); out["total"] != float64(1) {
		t.Fatalf("channel search: %v", out)
	}
	if st, _ = e.do(t, "GET", "/api/v1/connections?limit=0", testToken, ""); st != 400 {
		t.Fatalf("bad limit: %d", st)
	}
	if st, _ = e.do(t, "GET", "/api/v1/connections/zz", testToken, ""); st != 404 {
		t.Fatalf("missing conn: %d", st)
	}
}

func TestKickAndBan(t *testing.T) {
	e := newEnv(t, nil)
	if st, _ := e.do(t, "POST", "/api/v1/connections/a1/kick", testToken, `{"note":"bye"}`); st != 200 {
		t.Fatal("kick")
	}
	if st, _ := e.do(t, "POST", "/api/v1/connections/a1/kick", testToken, ""); st != 404 {
		t.Fatal("second kick")
	}
	if st, _ := e.do(t, "POST", "/api/v1/connections/b2/kick", testToken, `{"x":1}`); st != 400 {
		t.Fatal("unknown field accepted")
	}
	st, out := e.do(t, "POST", "/api/v1/bans", testToken, `{"ip":"::ffff:10.0.0.1","ttl":"5m","kick":true}`)
	if st != 200 || out["ban"].(map[string]any)["subject"] != "ip:10.0.0.1" || len(out["kicked"].([]any)) != 1 {
		t.Fatalf("ban ip: %d %v", st, out)
	}
	if !e.conns.kicked["c3"] {
		t.Fatal("banned IP's connection not closed as banned")
	}
	if _, ok, _ := e.bans.Banned(context.Background(), "ip:10.0.0.1"); !ok {
		t.Fatal("ban not stored")
	}
	if st, _ := e.do(t, "DELETE", "/api/v1/bans/ip:10.0.0.1", testToken, ""); st != 200 {
		t.Fatal("unban")
	}
	if _, ok, _ := e.bans.Banned(context.Background(), "ip:10.0.0.1"); ok {
		t.Fatal("still banned")
	}
	if st, _ := e.do(t, "DELETE", "/api/v1/bans/alice", testToken, ""); st != 400 {
		t.Fatal("bare subject accepted")
	}
	big := `{"user":"` + strings.Repeat("u", DefaultMaxBodyBytes) + `"}`
	if st, out := e.do(t, "POST", "/api/v1/bans", testToken, big); st != 400 || !strings.Contains(out["error"].(string), "larger") {
		t.Fatalf("oversized body: %d %v", st, out)
	}
	want := []string{audit.Kick, audit.Ban, audit.Unban}
	if got := e.audit.names(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("audit %v, want %v", got, want)
	}
	if st, _ := e.do(t, "PUT", "/api/v1/bans", testToken, ""); st != 405 {
		t.Fatal("wrong method")
	}
}

func TestReload(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Reload = func(context.Context) error { return fmt.Errorf("limits.max_message_bytes: must be positive") }
	})
	st, out := e.do(t, "POST", "/api/v1/reload", testToken, "")
	if st != 422 || !strings.Contains(out["reason"].(string), "max_message_bytes") {
		t.Fatalf("refused reload: %d %v", st, out)
	}
	if got := e.audit.names(); len(got) != 1 || got[0] != audit.ConfigRejected {
		t.Fatalf("audit %v", got)
	}
	if st, _ := newEnv(t, func(o *Options) { o.Reload = nil }).do(t, "POST", "/api/v1/reload", testToken, ""); st != 501 {
		t.Fatalf("no reload: %d", st)
	}
}

func TestStream(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MaxStreams = 1 })
	req, _ := http.NewRequest("GET", e.srv.URL+"/api/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if st, _ := e.do(t, "GET", "/api/v1/events", testToken, ""); st != 503 {
		t.Fatalf("second stream: %d", st)
	}
	sc := bufio.NewScanner(resp.Body)
	seen := map[string]bool{}
	e.eng.Observe(alert.EventAuthFailure, "10.9.9.9")
	e.conns.mu.Lock()
	e.conns.conns = append(e.conns.conns, Conn{ID: "d4", User: "dave", IP: "10.0.0.4", Since: time.Now()})
	e.conns.mu.Unlock()
	for sc.Scan() && !(seen["hello"] && seen["stats"] && seen["alert"] && seen["conn"]) {
		if ev, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
			seen[ev] = true
		}
	}
	if !(seen["hello"] && seen["stats"] && seen["alert"] && seen["conn"]) {
		t.Fatalf("events seen %v", seen)
	}
	// Shutdown ends the stream.
	close(e.done)
	ended := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, resp.Body)
		close(ended)
	}()
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("stream did not end on Done")
	}
}

func TestDashboardAssets(t *testing.T) {
	e := newEnv(t, nil)
	for path, ctype := range map[string]string{"/": "text/html", "/dashboard": "text/html", "/dashboard/app.js": "text/javascript", "/dashboard/app.css": "text/css"} {
		resp, err := http.Get(e.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), ctype) ||
			!strings.Contains(resp.Header.Get("Content-Security-Policy"), "script-src 'self'") {
			t.Fatalf("%s: %d %v", path, resp.StatusCode, resp.Header)
		}
	}
	resp, _ := http.Get(e.srv.URL + "/dashboard/../admin.go")
	resp.Body.Close()
	if resp.StatusCode == 200 {
		t.Fatal("path escape served")
	}
}

func TestNewRequiresDeps(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Fatal("New without deps succeeded")
	}
}
