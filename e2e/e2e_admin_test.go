package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/wait"
)

// adminCall makes one admin API request and decodes the JSON answer.
func adminCall(t *testing.T, s *wsgatetest.Server, method, path, token string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.AdminURL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: %d, not JSON: %q", method, path, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, out
}

// adminConnID finds the live connection of user through the admin API.
func adminConnID(t *testing.T, s *wsgatetest.Server, user string) (string, map[string]any) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, out := adminCall(t, s, "GET", "/api/v1/connections?q="+url.QueryEscape(user), s.Cfg.Admin.Token, nil)
		if st != 200 {
			t.Fatalf("list connections: %d %v", st, out)
		}
		list, _ := out["connections"].([]any)
		for _, c := range list {
			m := c.(map[string]any)
			if m["user"] == user {
				return m["id"].(string), m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("connection of %q not listed: %v", user, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func adminTestConfig() *config.Config {
	cfg := wsgatetest.Config()
	cfg.Limits.HandshakeRate = config.RateLimit{Rate: 1000, Burst: 1000}
	return cfg
}

func TestAdminAPI(t *testing.T) {
	s := wsgatetest.Start(t, adminTestConfig())
	tok := s.Cfg.Admin.Token

	// Without the token, with a wrong one, or another scheme: 401, and nothing leaks.
	for _, h := range []string{"", "Bearer wrong-token-wrong-token-wrong-token-00", "Basic " + tok, tok} {
		if resp, _ := httpDo(t, nil, "GET", s.AdminURL+"/api/v1/connections", h, ""); resp.StatusCode != 401 {
			t.Fatalf("Authorization %q: status %d, want 401", h, resp.StatusCode)
		}
	}
	// Unknown paths and methods are only answered after auth.
	if st, _ := adminCall(t, s, "GET", "/api/v1/nope", "", nil); st != 401 {
		t.Fatalf("unknown path without token: %d", st)
	}
	if st, _ := adminCall(t, s, "GET", "/api/v1/nope", tok, nil); st != 404 {
		t.Fatalf("unknown path: %d", st)
	}
	if st, _ := adminCall(t, s, "PUT", "/api/v1/bans", tok, nil); st != 405 {
		t.Fatalf("wrong method: %d", st)
	}

	// A live connection is listed with its details and counters.
	alice := s.Connect(t, "alice", nil)
	alice.Send(t, `{"type":"ping","id":1}`)
	alice.Expect(t, "pong", 5*time.Second)
	id, c := adminConnID(t, s, "alice")
	if c["ip"] != "127.0.0.1" || c["route"] != s.Cfg.Path || c["since"] == nil {
		t.Fatalf("connection details %v", c)
	}
	if _, ok := c["channels"].([]any); !ok {
		t.Fatalf("channels field missing: %v", c)
	}
	if st, one := adminCall(t, s, "GET", "/api/v1/connections/"+id, tok, nil); st != 200 || one["id"] != id {
		t.Fatalf("get connection: %d %v", st, one)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, c = adminConnID(t, s, "alice")
		if c["messages_in"].(float64) >= 1 && c["messages_out"].(float64) >= 2 && c["bytes_in"].(float64) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("counters did not move: %v", c)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Kick: the client gets 1008 "kicked"; kicking again is a 404.
	if st, out := adminCall(t, s, "POST", "/api/v1/connections/"+id+"/kick", tok, map[string]any{"note": "test"}); st != 200 {
		t.Fatalf("kick: %d %v", st, out)
	}
	if r := alice.ExpectClose(t, 1008, 5*time.Second); r != "kicked" {
		t.Fatalf("kick reason %q", r)
	}
	wait.For(t, "kicked session gone", 10*time.Second, func() bool {
		st, _ := adminCall(t, s, "POST", "/api/v1/connections/"+id+"/kick", tok, nil)
		return st == 404
	})

	// Ban a user: the live connection is closed (kick: true), new handshakes get 403.
	bob := s.Connect(t, "bob", nil)
	st, out := adminCall(t, s, "POST", "/api/v1/bans", tok, map[string]any{"user": "bob", "ttl": "10m", "reason": "test ban", "kick": true})
	if st != 200 {
		t.Fatalf("ban: %d %v", st, out)
	}
	if r := bob.ExpectClose(t, 1008, 5*time.Second); r != "banned" {
		t.Fatalf("ban close reason %q", r)
	}
	expectRefused(t, s, wsgatetest.DialOptions{Header: bearer(s.Token(t, "bob", nil))}, 403, "")
	s.Connect(t, "carol", nil) // others are unaffected

	// Bad ban requests are refused with the reason.
	for _, body := range []map[string]any{
		{"user": "x", "ip": "1.2.3.4"}, {"ip": "not-an-ip"}, {"user": "x", "ttl": "-5m"}, {"user": "x", "ttl": "1h", "permanent": true},
		{"subject": "host:x"}, {"user": "x", "extra": 1},
	} {
		if st, out := adminCall(t, s, "POST", "/api/v1/bans", tok, body); st != 400 || out["error"] == "" {
			t.Fatalf("ban %v: %d %v", body, st, out)
		}
	}
	if st, _ := adminCall(t, s, "POST", "/api/v1/bans", tok, map[string]any{"ip": "203.0.113.9", "permanent": true}); st != 200 {
		t.Fatalf("ip ban: %d", st)
	}

	// The list shows both bans.
	st, out = adminCall(t, s, "GET", "/api/v1/bans", tok, nil)
	if st != 200 {
		t.Fatalf("bans: %d", st)
	}
	subjects := map[string]map[string]any{}
	for _, b := range out["bans"].([]any) {
		m := b.(map[string]any)
		subjects[m["subject"].(string)] = m
	}
	if subjects["user:bob"] == nil || subjects["user:bob"]["reason"] != "test ban" || subjects["user:bob"]["until"] == nil {
		t.Fatalf("bans list %v", out)
	}
	if ip := subjects["ip:203.0.113.9"]; ip == nil || ip["permanent"] != true || ip["until"] != nil {
		t.Fatalf("permanent ip ban %v", out)
	}

	// Unban: accepted again.
	if st, out := adminCall(t, s, "DELETE", "/api/v1/bans/user:bob", tok, nil); st != 200 || out["unbanned"] != "user:bob" {
		t.Fatalf("unban: %d %v", st, out)
	}
	s.Connect(t, "bob", nil)

	// Alerts: none yet, an empty list (not null).
	st, out = adminCall(t, s, "GET", "/api/v1/alerts", tok, nil)
	if list, ok := out["alerts"].([]any); st != 200 || !ok || len(list) != 0 {
		t.Fatalf("alerts: %d %v", st, out)
	}
	// Stats: the dashboard's series.
	st, out = adminCall(t, s, "GET", "/api/v1/stats?window=1m", tok, nil)
	if pts, ok := out["points"].([]any); st != 200 || !ok || len(pts) != 60 || out["connections"].(float64) < 2 {
		t.Fatalf("stats: %d %v", st, out)
	}
	if rs := out["reasons"].(map[string]any); len(rs) == 0 {
		t.Fatalf("stats reasons do not show the ban rejection: %v", out["reasons"])
	}
	// Reload without a configuration file is refused with the reason.
	if st, out := adminCall(t, s, "POST", "/api/v1/reload", tok, nil); st != 422 || !strings.Contains(fmt.Sprint(out["reason"]), "configuration file") {
		t.Fatalf("reload without file: %d %v", st, out)
	}
	// /metrics and /healthz stay open on the admin listener.
	if resp, err := http.Get(s.AdminURL + "/metrics"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("metrics: %v", err)
	} else {
		resp.Body.Close()
	}
}

func TestAdminWithoutTokenRefusesEverything(t *testing.T) {
	cfg := adminTestConfig()
	cfg.Admin.Token = ""
	s := wsgatetest.Start(t, cfg)
	for _, p := range []string{"/api/v1/connections", "/api/v1/bans", "/api/v1/events", "/api/v1/status"} {
		st, out := adminCall(t, s, "GET", p, "anything-anything-anything-anything", nil)
		if st != 403 || out["error"] != "admin token not configured" {
			t.Fatalf("%s: %d %v", p, st, out)
		}
	}
	// The dashboard page itself loads (and tells the operator).
	resp, body := httpDo(t, nil, "GET", s.AdminURL+"/", "", "")
	if resp.StatusCode != 200 || !strings.Contains(string(body), "wsgate") || resp.Header.Get("Content-Security-Policy") == "" {
		t.Fatalf("dashboard: %d %s", resp.StatusCode, resp.Header)
	}
}

// webhookRecorder is a test alert webhook.
type webhookRecorder struct {
	mu     sync.Mutex
	alerts []map[string]any
	got    chan struct{}
}

func newWebhook(t *testing.T) (*webhookRecorder, string) {
	w := &webhookRecorder{got: make(chan struct{}, 100)}
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var a map[string]any
		if err := json.NewDecoder(r.Body).Decode(&a); err != nil {
			rw.WriteHeader(400)
			return
		}
		w.mu.Lock()
		w.alerts = append(w.alerts, a)
		w.mu.Unlock()
		w.got <- struct{}{}
	}))
	t.Cleanup(srv.Close)
	return w, srv.URL
}

func (w *webhookRecorder) list() []map[string]any {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]map[string]any(nil), w.alerts...)
}

// failHandshakes makes n handshakes with a forged token (401 each).
func failHandshakes(t *testing.T, s *wsgatetest.Server, n int) {
	t.Helper()
	forged := s.Token(t, "mallory", nil)
	forged = forged[:len(forged)-4] + "AAAA"
	for i := 0; i < n; i++ {
		c, resp, err := s.Dial(t, wsgatetest.DialOptions{Header: bearer(forged)})
		if err == nil {
			c.Conn.Close()
			t.Fatal("forged token accepted")
		}
		// 401, until the default auth_failures_per_ip rule auto-bans the address at
		// its threshold (IP bans come from failed handshakes): then 403.
		if resp == nil || (resp.StatusCode != 401 && resp.StatusCode != 403) {
			t.Fatalf("forged token: %v %v", resp, err)
		}
	}
}

// sseReader reads the admin event stream.
type sseEvent struct {
	Event string
	Data  map[string]any
}

func openEvents(t *testing.T, s *wsgatetest.Server) <-chan sseEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", s.AdminURL+"/api/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+s.Cfg.Admin.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		cancel()
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	out := make(chan sseEvent, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(out)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				ev.Event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				_ = json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev.Data)
			case line == "":
				select {
				case out <- ev:
				default:
				}
				ev = sseEvent{}
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		resp.Body.Close()
		<-done
	})
	return out
}

func nextEvent(t *testing.T, ch <-chan sseEvent, name string, within time.Duration, ok func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case ev, open := <-ch:
			if !open {
				t.Fatalf("event stream ended while waiting for %q", name)
			}
			if ev.Event == name && (ok == nil || ok(ev.Data)) {
				return ev.Data
			}
		case <-deadline:
			t.Fatalf("no %q event within %s", name, within)
		}
	}
}

// Twenty failed handshakes from one IP within a minute: exactly one alert, at the
// webhook with its evidence, in the admin API and on the live stream.
func TestAuthFailureAlert(t *testing.T) {
	hook, hookURL := newWebhook(t)
	cfg := adminTestConfig()
	cfg.Alerts.Webhook = hookURL
	// This test is about the alert; the rule's default auto-ban would refuse the
	// failures past the threshold with 403 and the later client too.
	for i := range cfg.Alerts.Rules {
		cfg.Alerts.Rules[i].AutoBan = false
	}
	s := wsgatetest.Start(t, cfg)
	events := openEvents(t, s)
	hello := nextEvent(t, events, "hello", 5*time.Second, nil)
	if hello["stats"] == nil {
		t.Fatalf("hello %v", hello)
	}

	failHandshakes(t, s, 19)
	time.Sleep(200 * time.Millisecond)
	if n := len(hook.list()); n != 0 {
		t.Fatalf("%d alerts after 19 failures, want 0", n)
	}
	failHandshakes(t, s, 1)
	select {
	case <-hook.got:
	case <-time.After(10 * time.Second):
		t.Fatal("no alert delivered to the webhook")
	}
	// More failures within the cooldown do not fire again.
	failHandshakes(t, s, 10)
	time.Sleep(500 * time.Millisecond)
	got := hook.list()
	if len(got) != 1 {
		t.Fatalf("%d webhook alerts, want exactly 1: %v", len(got), got)
	}
	a := got[0]
	top, _ := a["top_ips"].([]any)
	if a["rule"] != "auth_failures_per_ip" || a["event"] != "auth_failure" || a["ip"] != "127.0.0.1" ||
		a["count"] != float64(20) || a["threshold"] != float64(20) || a["window"] != "1m0s" || len(top) == 0 {
		t.Fatalf("webhook alert evidence %v", a)
	}
	if ip := top[0].(map[string]any); ip["ip"] != "127.0.0.1" || ip["count"].(float64) < 20 {
		t.Fatalf("top IPs %v", top)
	}
	// The admin API lists the same alert.
	st, out := adminCall(t, s, "GET", "/api/v1/alerts", s.Cfg.Admin.Token, nil)
	list, _ := out["alerts"].([]any)
	if st != 200 || len(list) != 1 || list[0].(map[string]any)["id"] != a["id"] {
		t.Fatalf("alerts API: %d %v (webhook had %v)", st, out, a["id"])
	}
	// The live stream carried it, and the stats show the rejections.
	ev := nextEvent(t, events, "alert", 5*time.Second, nil)
	if ev["id"] != a["id"] {
		t.Fatalf("stream alert %v", ev)
	}
	nextEvent(t, events, "stats", 5*time.Second, func(m map[string]any) bool {
		r, _ := m["reasons"].(map[string]any)
		for _, v := range r {
			if v.(float64) >= 30 {
				return true
			}
		}
		return false
	})
	// Connection open and close show up on the stream.
	c := s.Connect(t, "streamed", nil)
	nextEvent(t, events, "conn", 5*time.Second, func(m map[string]any) bool {
		cn, _ := m["conn"].(map[string]any)
		return m["op"] == "open" && cn["user"] == "streamed"
	})
	c.Conn.Close()
	nextEvent(t, events, "conn", 5*time.Second, func(m map[string]any) bool {
		cn, _ := m["conn"].(map[string]any)
		return m["op"] == "close" && cn["user"] == "streamed"
	})
}

// scrape returns the admin listener's /metrics text.
func scrape(t *testing.T, s *wsgatetest.Server) string {
	t.Helper()
	resp, err := http.Get(s.AdminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// metricSum adds the values of every series of name whose labels include all of
// want (each like `result="accepted"`).
func metricSum(text, name string, want ...string) float64 {
	sum := 0.0
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		labels := line[len(name):sp]
		ok := true
		for _, w := range want {
			if !strings.Contains(labels, w) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

// /metrics moves for every kind of event.
func TestMetricsMove(t *testing.T) {
	cfg := adminTestConfig()
	cfg.Abuse.MaxStrikes = 2
	s := wsgatetest.Start(t, cfg)
	tok := s.Cfg.Admin.Token
	before := scrape(t, s)

	// Accepted handshake, accepted message, bytes both ways.
	c := s.Connect(t, "metered", nil)
	c.Send(t, `{"type":"ping","id":1}`)
	c.Expect(t, "pong", 5*time.Second)
	// Rejected handshake with a reason.
	expectRefused(t, s, wsgatetest.DialOptions{}, 401, "no_credential")
	// Rejected messages and strikes: invalid messages until the strike limit bans the user.
	v := s.Connect(t, "violator", nil)
	for i := 0; i < 3; i++ {
		if err := v.Conn.WriteMessage(1, []byte(`{"type":"ping","id":`)); err != nil {
			break
		}
	}
	select {
	case <-v.Closed():
	case <-time.After(5 * time.Second):
	}
	// An admin ban, and a kick (close 1008).
	if st, _ := adminCall(t, s, "POST", "/api/v1/bans", tok, map[string]any{"user": "someone", "ttl": "1m"}); st != 200 {
		t.Fatal("ban")
	}
	id, _ := adminConnID(t, s, "metered")
	if st, _ := adminCall(t, s, "POST", "/api/v1/connections/"+id+"/kick", tok, nil); st != 200 {
		t.Fatal("kick")
	}
	c.ExpectClose(t, 1008, 5*time.Second)

	var after string
	checks := []struct {
		name   string
		labels []string
	}{
		{"wsgate_handshakes_total", []string{`result="accepted"`}},
		{"wsgate_handshakes_total", []string{`result="rejected"`, `reason="no_credential"`}},
		{"wsgate_connections_total", nil},
		{"wsgate_messages_total", []string{`type="ping"`, `result="accepted"`}},
		{"wsgate_messages_total", nil}, // plus the rejected ones, checked below
		{"wsgate_received_bytes_total", nil},
		{"wsgate_sent_bytes_total", nil},
		{"wsgate_strikes_total", nil},
		{"wsgate_bans_total", []string{`kind="user"`}},
		{"wsgate_closes_total", []string{`code="1008"`}},
		{"wsgate_pipeline_duration_seconds_count", nil},
	}
	wait.For(t, "metrics to move", 10*time.Second, func() bool {
		after = scrape(t, s)
		for _, ck := range checks {
			if metricSum(after, ck.name, ck.labels...) <= metricSum(before, ck.name, ck.labels...) {
				return false
			}
		}
		return true
	})
	rejected := metricSum(after, "wsgate_messages_total") - metricSum(after, "wsgate_messages_total", `result="accepted"`)
	if rejected < 1 {
		t.Fatalf("no rejected message counted:\n%s", grepLines(after, "wsgate_messages_total"))
	}
	for _, ck := range checks {
		t.Logf("%s%v: %g -> %g", ck.name, ck.labels, metricSum(before, ck.name, ck.labels...), metricSum(after, ck.name, ck.labels...))
	}
}

func grepLines(text, prefix string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// reloadYAML is a configuration file for the hot-reload tests.
func reloadYAML(maxBytes int, msgRate string) string {
	return fmt.Sprintf(`
listen: 127.0.0.1:0
admin:
  listen: 127.0.0.1:0
  token: %q
auth:
  keys:
    - id: test
      algorithms: [HS256]
      secret: %q
limits:
  max_message_bytes: %d
  handshake_rate: {rate: 1000, burst: 1000}
rate:
  tiers:
    default:
      messages: {rate: %s, burst: %s}
log:
  level: debug
`, wsgatetest.Config().Admin.Token, wsgatetest.Secret, maxBytes, msgRate, msgRate)
}

func writeAdminFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startReloadable starts a server from a configuration file, with the admin
// reload pointed at it, and one open connection that has sent a 600-byte message
// (under the 8192 limit: the pipeline passes the size check and the schema then
// refuses the extra property with an error reply, keeping the connection).
func startReloadable(t *testing.T) (s *wsgatetest.Server, path string, c *wsgatetest.Client, big string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "wsgate.yaml")
	writeAdminFile(t, path, reloadYAML(8192, "100"))
	cfg, err := config.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	s = wsgatetest.Start(t, cfg, wsgate.WithConfigFile(path))
	c = s.Connect(t, "stayer", nil)
	big = `{"type":"ping","id":1,"pad":"` + strings.Repeat("x", 600) + `"}`
	c.Send(t, big)
	if e := c.Expect(t, "error", 5*time.Second); e["code"] != "invalid_message" {
		t.Fatalf("before reload: %v", e)
	}
	return s, path, c, big
}

// Hot reload through the admin API: a lower limit applies without dropping the
// open connection; a broken file is refused with the reason and the running
// configuration stays in force.
func TestHotReloadAdminAPI(t *testing.T) {
	s, path, c, big := startReloadable(t)
	tok := s.Cfg.Admin.Token
	writeAdminFile(t, path, reloadYAML(512, "100"))
	if st, out := adminCall(t, s, "POST", "/api/v1/reload", tok, nil); st != 200 || out["status"] != "reloaded" {
		t.Fatalf("reload: %d %v", st, out)
	}
	if !s.Logs.Contains("configuration reloaded", 2*time.Second) {
		t.Fatal("reload not logged")
	}
	// The open connection was not dropped.
	c.Send(t, `{"type":"ping","id":2}`)
	c.Expect(t, "pong", 5*time.Second)
	// The new limit is in force: announced to and enforced on a new connection.
	n, _, err := s.Dial(t, wsgatetest.DialOptions{Header: bearer(s.Token(t, "newcomer", nil))})
	if err != nil {
		t.Fatal(err)
	}
	if w := n.Expect(t, "welcome", 5*time.Second); w["limits"].(map[string]any)["max_message_bytes"] != float64(512) {
		t.Fatalf("welcome after reload: %v", w)
	}
	n.Send(t, big)
	n.ExpectClose(t, 1009, 5*time.Second)

	// A broken file: refused with the reason, the old configuration stays.
	writeAdminFile(t, path, "limits:\n  max_message_bytes: -5\n")
	st, out := adminCall(t, s, "POST", "/api/v1/reload", tok, nil)
	if st != 422 || !strings.Contains(fmt.Sprint(out["reason"]), "max_message_bytes") {
		t.Fatalf("broken reload: %d %v", st, out)
	}
	writeAdminFile(t, path, "limits: [not, a, map\n")
	if st, out = adminCall(t, s, "POST", "/api/v1/reload", tok, nil); st != 422 || out["reason"] == "" {
		t.Fatalf("unparsable reload: %d %v", st, out)
	}
	// Still serving, with the last valid limits and the same admin token.
	c2 := s.Connect(t, "after-broken", nil)
	c2.Send(t, `{"type":"ping","id":3}`)
	c2.Expect(t, "pong", 5*time.Second)
	c2.Send(t, big)
	c2.ExpectClose(t, 1009, 5*time.Second)
	if st, _ := adminCall(t, s, "GET", "/api/v1/status", tok, nil); st != 200 {
		t.Fatalf("admin after broken reload: %d", st)
	}
	c.Send(t, `{"type":"ping","id":4}`)
	c.Expect(t, "pong", 5*time.Second)
}

// Issue 7: a reloaded limit takes effect for new messages on a connection that
// was already open.
func TestHotReloadLimitAppliesToOpenConnection(t *testing.T) {
	s, path, c, big := startReloadable(t)
	writeAdminFile(t, path, reloadYAML(512, "100"))
	if st, out := adminCall(t, s, "POST", "/api/v1/reload", s.Cfg.Admin.Token, nil); st != 200 {
		t.Fatalf("reload: %d %v", st, out)
	}
	c.Send(t, big)
	select {
	case <-c.Closed():
		c.ExpectClose(t, 1009, time.Second)
	case m := <-c.Msgs:
		t.Fatalf("the connection opened before the reload still runs the old limits: a 600-byte message "+
			"after max_message_bytes was reloaded to 512 got %s instead of close 1009", m)
	case <-time.After(5 * time.Second):
		t.Fatal("no answer to a 600-byte message after the reload")
	}
}

// SIGHUP calls ReloadFile: same effect, outcome in the log.
func TestHotReloadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wsgate.yaml")
	writeAdminFile(t, path, "insecure_plaintext: true\n"+reloadYAML(8192, "100"))
	cfg, err := config.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := wsgatetest.Start(t, cfg)
	c := s.Connect(t, "a", nil)
	if w := s.Connect(t, "b", nil); w == nil {
		t.Fatal("no client")
	}
	writeAdminFile(t, path, "insecure_plaintext: true\n"+reloadYAML(1024, "100"))
	s.ReloadFile(path, nil)
	if !s.Logs.Contains("configuration reloaded", 2*time.Second) {
		t.Fatalf("ReloadFile did not reload:\n%s", s.Logs.String())
	}
	h := bearer(s.Token(t, "fresh", nil))
	fresh, _, err := s.Dial(t, wsgatetest.DialOptions{Header: h})
	if err != nil {
		t.Fatal(err)
	}
	w := fresh.Expect(t, "welcome", 5*time.Second)
	if lim, _ := w["limits"].(map[string]any); lim == nil || lim["max_message_bytes"] != float64(1024) {
		t.Fatalf("welcome after reload %v", w)
	}
	writeAdminFile(t, path, "insecure_plaintext: true\nlimits: {max_message_bytes: 0}\n")
	s.ReloadFile(path, nil)
	if !s.Logs.Contains("configuration reload refused", 2*time.Second) {
		t.Fatal("refused reload not logged")
	}
	c.Send(t, `{"type":"ping","id":1}`)
	c.Expect(t, "pong", 5*time.Second)
}

// A full run — token, ticket, refresh, admin calls, failed attempts — leaves no
// secret in the server log or the audit file.
func TestNoSecretsInLogsOrAudit(t *testing.T) {
	cfg := adminTestConfig()
	auditPath := filepath.Join(t.TempDir(), "audit.jsonl")
	cfg.Audit.Path = auditPath
	cfg.Audit.MessageSampleRate = 1
	s := wsgatetest.Start(t, cfg)
	admin := s.Cfg.Admin.Token
	secrets := map[string]string{"admin token": admin, "HMAC secret": wsgatetest.Secret}

	// Token connect, refresh.
	tok := s.Token(t, "secretive", nil)
	secrets["token"] = tok
	c, _, err := s.Dial(t, wsgatetest.DialOptions{Header: bearer(tok)})
	if err != nil {
		t.Fatal(err)
	}
	c.Expect(t, "welcome", 5*time.Second)
	refresh := s.TokenTTL(t, "secretive", 2*time.Hour, map[string]any{"n": 2})
	secrets["refresh token"] = refresh
	c.SendJSON(t, map[string]any{"type": "refresh", "id": "r", "token": refresh})
	c.Expect(t, "refreshed", 5*time.Second)
	// A message carrying a token in its body (message logging is on).
	c.SendJSON(t, map[string]any{"type": "ping", "id": 9, "token": tok})
	c.Expect(t, "error", 5*time.Second)

	// Ticket.
	req, _ := http.NewRequest("POST", s.HTTPURL+"/v1/tickets", nil)
	ticketTok := s.Token(t, "ticketed", nil)
	secrets["ticket owner token"] = ticketTok
	req.Header.Set("Authorization", "Bearer "+ticketTok)
	resp, err := s.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tk struct {
		Ticket string `json:"ticket"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&tk)
	resp.Body.Close()
	if tk.Ticket == "" {
		t.Fatalf("no ticket: %d", resp.StatusCode)
	}
	secrets["ticket"] = tk.Ticket
	tc, _, err := s.Dial(t, wsgatetest.DialOptions{URL: s.URL + "?ticket=" + tk.Ticket})
	if err != nil {
		t.Fatal(err)
	}
	tc.Expect(t, "welcome", 5*time.Second)
	// Replayed ticket, forged token, token in the query string: all refused.
	expectRefused(t, s, wsgatetest.DialOptions{URL: s.URL + "?ticket=" + tk.Ticket}, 401, "")
	forged := tok[:len(tok)-4] + "AAAA"
	secrets["forged token"] = forged
	expectRefused(t, s, wsgatetest.DialOptions{Header: bearer(forged)}, 401, "")
	expectRefused(t, s, wsgatetest.DialOptions{URL: s.URL + "?access_token=" + tok}, 401, "")

	// Admin calls, a wrong admin token, a kick, a ban.
	wrongAdmin := "wrong-admin-token-" + strings.Repeat("z", 20)
	secrets["wrong admin token"] = wrongAdmin
	adminCall(t, s, "GET", "/api/v1/connections", wrongAdmin, nil)
	id, _ := adminConnID(t, s, "secretive")
	adminCall(t, s, "POST", "/api/v1/connections/"+id+"/kick", admin, map[string]any{"note": "token was " + tok})
	c.ExpectClose(t, 1008, 5*time.Second)
	adminCall(t, s, "POST", "/api/v1/bans", admin, map[string]any{"user": "x", "ttl": "1m", "reason": "leaked " + admin})
	adminCall(t, s, "POST", "/api/v1/reload", admin, nil)

	auditLog := stoppedAudit(t, s, auditPath)
	logs := s.Logs.String()
	for _, want := range []string{`"event":"kick"`, `"event":"ban"`, `"event":"handshake_rejected"`, `"event":"admin_action"`} {
		if !strings.Contains(auditLog, want) {
			t.Fatalf("audit log lacks %s:\n%s", want, auditLog)
		}
	}
	for name, v := range secrets {
		if strings.Contains(logs, v) {
			t.Errorf("%s found in the server log", name)
		}
		if strings.Contains(string(auditLog), v) {
			t.Errorf("%s found in the audit log", name)
		}
	}
}

// dashboardLogin opens s's admin dashboard and signs in with the admin token.
func dashboardLogin(s *wsgatetest.Server) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.Navigate(s.AdminURL+"/"),
		chromedp.WaitVisible("#token"),
		chromedp.SendKeys("#token", s.Cfg.Admin.Token),
		chromedp.Click("#login-btn"),
	)
}

// The dashboard in real headless Chromium: sign in, see a live connection, see the
// alert arrive, kick the connection; a screenshot is kept as an artifact.
func TestDashboardInBrowser(t *testing.T) {
	s := wsgatetest.Start(t, adminTestConfig())
	ctx := wsgatetest.Browser(t, 25*time.Second)
	victim := s.Connect(t, "dashboard-victim", nil)
	for _, u := range []string{"alice", "bob"} {
		c := s.Connect(t, u, nil)
		c.Send(t, `{"type":"ping","id":1}`)
	}
	expectRefused(t, s, wsgatetest.DialOptions{}, 401, "")
	id, _ := adminConnID(t, s, "dashboard-victim")
	row := `#conn-body tr[data-id="` + id + `"]`

	if err := chromedp.Do(ctx,
		chromedp.EmulateViewport(1440, 1300),
		dashboardLogin(s),
		chromedp.WaitVisible(row),
		waitText("#live-text", "Live"),
	); err != nil {
		t.Fatalf("sign in and see the connection: %v", err)
	}
	// Twenty failed handshakes: the alert appears in the feed, live.
	failHandshakes(t, s, 20)
	if err := chromedp.Do(ctx, chromedp.WaitVisible(`#alerts li[data-rule="auth_failures_per_ip"]`),
		waitText("#alerts", "127.0.0.1"), waitText("#reasons", "no_credential")); err != nil {
		t.Fatalf("alert not shown: %v", err)
	}
	time.Sleep(1200 * time.Millisecond) // one more stats tick for the charts
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	p := filepath.Join(wsgatetest.ArtifactDir(t), "admin-dashboard.png")
	if err := os.WriteFile(p, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("dashboard screenshot: %s", p)

	if err := chromedp.Do(ctx, chromedp.Click(`button.kick[data-id="`+id+`"]`)); err != nil {
		t.Fatalf("click kick: %v", err)
	}
	if r := victim.ExpectClose(t, 1008, 5*time.Second); r != "kicked" {
		t.Fatalf("close reason %q", r)
	}
	if err := chromedp.Do(ctx, chromedp.WaitNotPresent(row)); err != nil {
		t.Fatalf("kicked connection still listed: %v", err)
	}
}

// reloadBothWays reloads s from path as SIGHUP does (ReloadFile) and, at the
// same time, through the admin API (which re-reads WithConfigFile's file); it
// returns when both are done.
func reloadBothWays(t *testing.T, s *wsgatetest.Server, path, tok string) {
	t.Helper()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		s.ReloadFile(path, nil)
	}()
	go func() {
		defer wg.Done()
		if st, out := adminCall(t, s, "POST", "/api/v1/reload", tok, nil); st != 200 {
			t.Errorf("admin reload: %d %v", st, out)
		}
	}()
	wg.Wait()
}

// Issue 14/12: SIGHUP (ReloadFile) and the admin API reloading at the same time,
// in a loop, always leave one configuration that was loaded whole: what a new
// connection is told in its welcome (session options) and what its pipeline
// enforces (the pipeline) come from the same file.
func TestConcurrentReloadsLeaveOneConfig(t *testing.T) {
	dir := t.TempDir()
	pathA, pathB := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	writeAdminFile(t, pathA, reloadYAML(512, "100"))
	writeAdminFile(t, pathB, reloadYAML(4096, "100"))
	cfg, err := config.Load(pathB, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := wsgatetest.Start(t, cfg, wsgate.WithConfigFile(pathB))
	tok := s.Cfg.Admin.Token
	big := `{"type":"ping","id":1,"pad":"` + strings.Repeat("x", 1000) + `"}`
	for round := 0; round < 10; round++ {
		reloadBothWays(t, s, pathA, tok)
		c, _, err := s.Dial(t, wsgatetest.DialOptions{Header: bearer(s.Token(t, fmt.Sprintf("r%d", round), nil))})
		if err != nil {
			t.Fatal(err)
		}
		w := c.Expect(t, "welcome", 5*time.Second)
		lim, _ := w["limits"].(map[string]any)
		announced, _ := lim["max_message_bytes"].(float64)
		if announced != 512 && announced != 4096 {
			t.Fatalf("round %d: welcome announces max_message_bytes %v, from neither file", round, lim)
		}
		c.Send(t, big)
		select {
		case <-c.Closed():
			if announced != 512 {
				t.Fatalf("round %d: welcome says %v but a 1000-byte message was refused: two configurations are mixed", round, announced)
			}
		case m := <-c.Msgs:
			if announced != 4096 {
				t.Fatalf("round %d: welcome says %v but a 1000-byte message got %s: two configurations are mixed", round, announced, m)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: no answer to a 1000-byte message", round)
		}
		_ = c.Conn.Close()
	}
}
