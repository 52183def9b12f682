package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wsgate/wsgate/internal/state/statetest"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/wait"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newClock() *statetest.Clock { return statetest.At(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)) }

// hook is a webhook receiver on a real socket recording what it got.
type hook struct {
	srv    *httptest.Server
	mu     sync.Mutex
	bodies [][]byte
	codes  []int // status to answer for each successive request; 200 after
}

func newHook(t *testing.T, codes ...int) *hook {
	h := &hook{codes: codes}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.bodies = append(h.bodies, b)
		code := http.StatusOK
		if n := len(h.bodies); n <= len(h.codes) {
			code = h.codes[n-1]
		}
		h.mu.Unlock()
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			code = http.StatusBadRequest
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hook) requests() [][]byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([][]byte(nil), h.bodies...)
}

func TestTwentyFailedHandshakesFireOneAlertToWebhook(t *testing.T) {
	h := newHook(t)
	wh, err := WebhookSink(h.srv.URL, WebhookOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer wh.Close()
	clk := newClock()
	var banned []Alert
	e, err := New(Options{
		Now: clk.Now,
		Rules: []Rule{
			{Name: "auth_failures_per_ip", Event: EventAuthFailure, Threshold: 20, PerIP: true, AutoBan: true},
			{Name: "auth_failures", Event: EventAuthFailure, Threshold: 100},
		},
		OnAlert: func(a Alert) { banned = append(banned, a) },
	}, wh)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 30 { // 20 within the minute fire it; 10 more stay quiet
		e.Observe(EventAuthFailure, "203.0.113.7")
		if i%3 == 0 {
			e.Observe(EventAuthFailure, "198.51.100.1")
		}
		e.Observe(EventHandshake, "203.0.113.7") // no rule watches it
		clk.Advance(time.Second)
	}
	wait.For(t, "webhook delivery", 5*time.Second, func() bool { return wh.Stats().Delivered == 1 })
	time.Sleep(20 * time.Millisecond) // a second delivery, if any, would show now
	got := h.requests()
	if len(got) != 1 {
		t.Fatalf("webhook got %d requests, want exactly 1", len(got))
	}
	var body struct {
		ID, Rule, Event, IP, Window string
		Count, Threshold            int
		TopIPs                      []IPCount `json:"top_ips"`
		AutoBan                     bool      `json:"auto_ban"`
		BanTTLs                     string    `json:"ban_ttl"`
	}
	if err := json.Unmarshal(got[0], &body); err != nil {
		t.Fatal(err)
	}
	if body.Rule != "auth_failures_per_ip" || body.Event != EventAuthFailure || body.IP != "203.0.113.7" ||
		body.Count != 20 || body.Threshold != 20 || body.Window != "1m0s" || body.ID == "" ||
		len(body.TopIPs) != 1 || body.TopIPs[0] != (IPCount{"203.0.113.7", 20}) || !body.AutoBan || body.BanTTLs != "10m0s" {
		t.Fatalf("webhook body = %s", got[0])
	}
	if len(banned) != 1 || fmt.Sprint(banned[0].Offenders()) != "[203.0.113.7]" {
		t.Fatalf("OnAlert got %+v", banned)
	}
	if r := e.Recent(10); len(r) != 1 || r[0].ID != body.ID {
		t.Fatalf("Recent = %+v", r)
	}
}

func TestGlobalRuleCarriesTopIPs(t *testing.T) {
	clk := newClock()
	var got []Alert
	e, err := New(Options{Now: clk.Now, Rules: []Rule{{Name: "oversize_spike", Event: EventOversize, Threshold: 28}}},
		SinkFunc(func(a Alert) { got = append(got, a) }))
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 7; i++ { // IP i sends i events: 28 in all
		for range i {
			e.Observe(EventOversize, fmt.Sprintf("10.0.0.%d", i))
		}
	}
	if len(got) != 1 {
		t.Fatalf("%d alerts, want 1", len(got))
	}
	a := got[0]
	want := "[{10.0.0.7 7} {10.0.0.6 6} {10.0.0.5 5} {10.0.0.4 4} {10.0.0.3 3}]"
	if a.Count != 28 || a.IP != "" || fmt.Sprint(a.TopIPs) != want || a.Offenders() != nil {
		t.Fatalf("alert = %+v", a)
	}
}

func TestWindowSlides(t *testing.T) {
	clk := newClock()
	n := 0
	e, _ := New(Options{Now: clk.Now, Rules: []Rule{{Name: "r", Event: EventInvalidMessage, Threshold: 20, PerIP: true}}},
		SinkFunc(func(Alert) { n++ }))
	for range 40 { // one every 4s: at most 15 within any minute
		e.Observe(EventInvalidMessage, "192.0.2.1")
		clk.Advance(4 * time.Second)
	}
	if n != 0 {
		t.Fatalf("fired %d times for a rate below the threshold", n)
	}
}

func TestCooldownRearms(t *testing.T) {
	clk := newClock()
	var got []Alert
	e, _ := New(Options{Now: clk.Now, Rules: []Rule{{Name: "bans", Event: EventBan, Threshold: 3, Cooldown: 5 * time.Minute}}},
		SinkFunc(func(a Alert) { got = append(got, a) }))
	burst := func(k int) {
		for range k {
			e.Observe(EventBan, "")
		}
	}
	burst(3)
	if len(got) != 1 {
		t.Fatalf("%d alerts after first burst", len(got))
	}
	for range 4 { // still hot, but cooling down
		clk.Advance(time.Minute)
		burst(5)
	}
	if len(got) != 1 {
		t.Fatalf("%d alerts during cooldown, want 1", len(got))
	}
	clk.Advance(time.Minute) // 5m after the first alert
	burst(2)
	if len(got) != 1 {
		t.Fatal("fired below threshold after cooldown")
	}
	burst(1)
	if len(got) != 2 || got[1].Count != 3 {
		t.Fatalf("did not re-arm after cooldown: %+v", got)
	}
	if r := e.Recent(1); r[0].ID != got[1].ID {
		t.Fatal("Recent is not newest first")
	}
}

func TestWebhookRetriesWithBackoff(t *testing.T) {
	h := newHook(t, 500, 503) // then 200
	wh, err := WebhookSink(h.srv.URL, WebhookOptions{Backoff: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var waits []time.Duration
	wh.sleep = func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		waits = append(waits, d)
		mu.Unlock()
		return sleepCtx(ctx, time.Millisecond)
	}
	wh.Send(Alert{ID: "a1", Rule: "r"})
	wait.For(t, "delivery", 5*time.Second, func() bool { return wh.Stats().Delivered == 1 })
	mu.Lock()
	if fmt.Sprint(waits) != "[10ms 20ms]" {
		t.Errorf("backoff waits = %v, want [10ms 20ms]", waits)
	}
	mu.Unlock()
	if s := wh.Stats(); s.Attempts != 3 || s.Failed != 0 {
		t.Errorf("stats = %+v", s)
	}
	wh.Close()

	// Always failing: 1 try + MaxRetries, exponential, then counted failed.
	h2 := newHook(t, 500, 500, 500, 500, 500)
	wh2, _ := WebhookSink(h2.srv.URL, WebhookOptions{Backoff: 10 * time.Millisecond, MaxBackoff: 25 * time.Millisecond})
	waits = nil
	wh2.sleep = wh.sleep
	wh2.Send(Alert{ID: "a2"})
	wait.For(t, "failure", 5*time.Second, func() bool { return wh2.Stats().Failed == 1 })
	if s := wh2.Stats(); s.Attempts != 4 {
		t.Errorf("attempts = %d, want 4", s.Attempts)
	}
	mu.Lock()
	if fmt.Sprint(waits) != "[10ms 20ms 25ms]" {
		t.Errorf("capped backoff waits = %v", waits)
	}
	mu.Unlock()
	wh2.Close()

	// A 4xx is not retried.
	h3 := newHook(t, 400)
	wh3, _ := WebhookSink(h3.srv.URL, WebhookOptions{})
	wh3.Send(Alert{ID: "a3"})
	wait.For(t, "refusal", 5*time.Second, func() bool { return wh3.Stats().Failed == 1 })
	if s := wh3.Stats(); s.Attempts != 1 {
		t.Errorf("4xx retried: %+v", s)
	}
	wh3.Close()
}

func TestWebhookQueueBoundedAndCloseStops(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(block)
	wh, _ := WebhookSink(srv.URL, WebhookOptions{QueueSize: 2})
	for i := range 10 {
		wh.Send(Alert{ID: fmt.Sprint(i)})
	}
	if d := wh.Stats().Dropped; d < 7 {
		t.Fatalf("dropped %d of 10 with queue 2", d)
	}
	wh.Close() // must not wait for the blocked receiver
	select {
	case <-wh.done:
	default:
		t.Fatal("goroutine still running after Close")
	}
	if s := wh.Stats(); s.Dropped != 10 || s.Delivered != 0 {
		t.Fatalf("stats after Close = %+v", s)
	}
	wh.Send(Alert{}) // after Close: counted, no panic
	if _, err := WebhookSink("ftp://x", WebhookOptions{}); err == nil {
		t.Fatal("ftp URL accepted")
	}
}

func TestSetRules(t *testing.T) {
	clk := newClock()
	n := 0
	e, _ := New(Options{Now: clk.Now, Rules: []Rule{{Name: "r", Event: EventHandshake, Threshold: 10}}},
		SinkFunc(func(Alert) { n++ }))
	for range 8 {
		e.Observe(EventHandshake, "192.0.2.9")
	}
	for _, bad := range [][]Rule{
		{{Name: "", Event: EventHandshake, Threshold: 1}},
		{{Name: "x", Event: "nope", Threshold: 1}},
		{{Name: "x", Event: EventBan, Threshold: 0}},
		{{Name: "x", Event: EventBan, Threshold: 1}, {Name: "x", Event: EventBan, Threshold: 2}},
	} {
		if err := e.SetRules(bad); err == nil {
			t.Errorf("SetRules(%+v) accepted", bad)
		}
	}
	// Lowering the threshold keeps the 8 counted events: the next one fires.
	if err := e.SetRules([]Rule{{Name: "r", Event: EventHandshake, Threshold: 9}}); err != nil {
		t.Fatal(err)
	}
	e.Observe(EventHandshake, "192.0.2.9")
	if n != 1 {
		t.Fatalf("%d alerts after reload, want 1", n)
	}
	if r := e.Rules(); len(r) != 1 || r[0].Cooldown != DefaultCooldown || r[0].Window != DefaultWindow {
		t.Fatalf("Rules = %+v", r)
	}
}

func TestMemoryBoundedUnderIPSpray(t *testing.T) {
	clk := newClock()
	e, _ := New(Options{Now: clk.Now, MaxIPs: 160, Rules: []Rule{{Name: "r", Event: EventAuthFailure, Threshold: 5, PerIP: true}}})
	for i := range 20000 {
		e.Observe(EventAuthFailure, fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255))
	}
	d := e.rules.Load().byName["r"].data
	if total := d.ips.Len(); total > 160 {
		t.Fatalf("tracking %d IPs, bound 160", total)
	}
}

func TestSubscribeAndLogSink(t *testing.T) {
	var buf bytes.Buffer
	e, _ := New(Options{Rules: []Rule{{Name: "r", Event: EventBan, Threshold: 1}}},
		LogSink(slog.New(slog.NewTextHandler(&buf, nil))))
	ch, cancel := e.Subscribe(1)
	e.Observe(EventBan, "192.0.2.5")
	select {
	case a := <-ch:
		if a.Rule != "r" {
			t.Fatalf("got %+v", a)
		}
	default:
		t.Fatal("subscriber got nothing")
	}
	cancel()
	cancel()
	if !strings.Contains(buf.String(), "alert fired") || !strings.Contains(buf.String(), "rule=r") {
		t.Fatalf("log = %q", buf.String())
	}
	var nilE *Engine
	nilE.Observe(EventBan, "x")
}
