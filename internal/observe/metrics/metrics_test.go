package metrics_test

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/wsgate/wsgate/internal/observe/metrics"
)

// scrape fetches /metrics over a real socket and parses the text format.
func scrape(t *testing.T, m *metrics.Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set("Accept", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// value returns the sample of family name whose labels include want
// (histograms: the sample count).
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, want ...string) float64 {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("metric %s missing", name)
	}
next:
	for _, m := range f.Metric {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(want); i += 2 {
			if labels[want[i]] != want[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	t.Fatalf("metric %s%v not found", name, want)
	return 0
}

func TestCountersMoveForEveryEvent(t *testing.T) {
	m := metrics.New()
	m.SetKnownTypes([]string{"chat", "join"})
	m.ConnOpened("chat")
	m.ConnOpened("chat")
	m.ConnOpened("feed")
	m.ConnClosed("chat", 1008)
	m.Handshake(true, "")
	m.Handshake(false, "origin")
	m.Handshake(false, "origin")
	m.Handshake(false, "jwt_expired")
	m.Message("chat", "ok")
	m.Message("chat", "schema")
	m.Message("<script>", "ok")
	m.Message("unknown_type", "ok")
	m.BytesReceived(100)
	m.BytesSent(250)
	m.RateLimited("ip")
	m.RateLimited("bogus")
	m.Strike("oversize")
	m.Ban("ip")
	m.Ban("user")
	m.SlowConsumerClose()
	m.QueueDropped(3)
	m.ObservePipeline(3 * time.Microsecond)
	m.ObserveFanout(2 * time.Millisecond)
	m.Alert("auth_failures")
	m.UpstreamUp("feed", true)
	m.UpstreamDialError("feed")
	m.RedisUp(true)

	f := scrape(t, m)
	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"wsgate_connections", []string{"route", "chat"}, 1},
		{"wsgate_connections", []string{"route", "feed"}, 1},
		{"wsgate_connections_total", []string{"route", "chat"}, 2},
		{"wsgate_handshakes_total", []string{"result", "accepted"}, 1},
		{"wsgate_handshakes_total", []string{"result", "rejected", "reason", "origin"}, 2},
		{"wsgate_handshakes_total", []string{"result", "rejected", "reason", "jwt_expired"}, 1},
		{"wsgate_messages_total", []string{"type", "chat", "result", "ok"}, 1},
		{"wsgate_messages_total", []string{"type", "chat", "result", "schema"}, 1},
		{"wsgate_messages_total", []string{"type", "other", "result", "ok"}, 2},
		{"wsgate_received_bytes_total", nil, 100},
		{"wsgate_sent_bytes_total", nil, 250},
		{"wsgate_rate_limited_total", []string{"scope", "ip"}, 1},
		{"wsgate_rate_limited_total", []string{"scope", "other"}, 1},
		{"wsgate_strikes_total", []string{"reason", "oversize"}, 1},
		{"wsgate_bans_total", []string{"kind", "ip"}, 1},
		{"wsgate_bans_total", []string{"kind", "user"}, 1},
		{"wsgate_slow_consumer_closes_total", nil, 1},
		{"wsgate_queue_dropped_messages_total", nil, 3},
		{"wsgate_pipeline_duration_seconds", nil, 1},
		{"wsgate_fanout_duration_seconds", nil, 1},
		{"wsgate_closes_total", []string{"code", "1008"}, 1},
		{"wsgate_alerts_total", []string{"rule", "auth_failures"}, 1},
		{"wsgate_upstream_up", []string{"route", "feed"}, 1},
		{"wsgate_upstream_dial_errors_total", []string{"route", "feed"}, 1},
		{"wsgate_redis_up", nil, 1},
	}
	for _, c := range checks {
		if got := value(t, f, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	for _, name := range []string{"go_goroutines", "process_open_fds"} {
		if _, ok := f[name]; !ok {
			t.Errorf("collector metric %s missing", name)
		}
	}
	// The smallest pipeline bucket is 1µs.
	h := f["wsgate_pipeline_duration_seconds"].Metric[0].Histogram
	if b := h.Bucket[0].GetUpperBound(); b != 1e-6 {
		t.Errorf("first pipeline bucket = %v, want 1e-6", b)
	}
}

func TestCardinalityIsBounded(t *testing.T) {
	m := metrics.New()
	for i := range 5000 {
		v := fmt.Sprintf("attacker-%d", i)
		m.Message(v, v)
		m.Handshake(false, v)
		m.ConnOpened(v)
		m.ConnClosed(v, i)
		m.Strike(v)
		m.Alert(v)
	}
	f := scrape(t, m)
	limits := map[string]int{
		"wsgate_messages_total":    (64 + 1) * (32 + 1),
		"wsgate_handshakes_total":  64 + 1,
		"wsgate_connections":       256 + 1,
		"wsgate_closes_total":      64 + 1,
		"wsgate_strikes_total":     64 + 1,
		"wsgate_alerts_total":      64 + 1,
		"wsgate_connections_total": 256 + 1,
	}
	for name, max := range limits {
		if n := len(f[name].Metric); n > max {
			t.Errorf("%s has %d series, bound %d", name, n, max)
		}
	}
	if value(t, f, "wsgate_handshakes_total", "reason", "other") == 0 {
		t.Error("overflow reasons not collapsed to other")
	}
}

func TestRegistriesAreIndependent(t *testing.T) {
	a, b := metrics.New(), metrics.New() // would panic on the global registry
	a.SlowConsumerClose()
	if got := value(t, scrape(t, b), "wsgate_slow_consumer_closes_total"); got != 0 {
		t.Fatalf("b sees a's counter: %v", got)
	}
	var nilM *metrics.Metrics
	nilM.ConnOpened("x") // no panic
	nilM.Series().Handshake(true, "")
}

// TestMessageCacheFollowsKnownTypes: the per-(type, result) counter cache never
// keeps counting a type under its own label after SetKnownTypes dropped it.
func TestMessageCacheFollowsKnownTypes(t *testing.T) {
	m := metrics.New()
	m.SetKnownTypes([]string{"chat"})
	for range 3 {
		m.Message("chat", "accepted")
	}
	m.SetKnownTypes([]string{"join"})
	m.Message("chat", "accepted")
	m.Message("join", "accepted")
	f := scrape(t, m)
	if v := value(t, f, "wsgate_messages_total", "type", "chat", "result", "accepted"); v != 3 {
		t.Errorf("chat = %v, want 3", v)
	}
	if v := value(t, f, "wsgate_messages_total", "type", "other", "result", "accepted"); v != 1 {
		t.Errorf("other = %v, want 1", v)
	}
	if v := value(t, f, "wsgate_messages_total", "type", "join", "result", "accepted"); v != 1 {
		t.Errorf("join = %v, want 1", v)
	}
}

// TestClientMessageStripesSum: the per-message series are striped by
// connection; a scrape sums the stripes, and the histogram's buckets follow
// Prometheus' "le" rule at the exact bounds.
func TestClientMessageStripesSum(t *testing.T) {
	m := metrics.New()
	m.SetKnownTypes([]string{"ping"})
	for i := range 100 {
		conn := fmt.Sprintf("conn-%d", i)
		m.ClientMessage(conn, "ping", "accepted", 10, time.Microsecond) // on the 1µs bound
		m.SentTo(conn, 3)
	}
	m.ClientMessage("conn-x", "ping", "rate_limited", 5, 4*time.Microsecond+1)
	m.Message("ping", "accepted")
	m.BytesReceived(1)
	m.BytesSent(1)
	f := scrape(t, m)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"wsgate_messages_total", []string{"type", "ping", "result", "accepted"}, 101},
		{"wsgate_messages_total", []string{"type", "ping", "result", "rate_limited"}, 1},
		{"wsgate_received_bytes_total", nil, 1006},
		{"wsgate_sent_bytes_total", nil, 301},
		{"wsgate_pipeline_duration_seconds", nil, 101},
	} {
		if got := value(t, f, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	h := f["wsgate_pipeline_duration_seconds"].Metric[0].Histogram
	if got := h.Bucket[0].GetCumulativeCount(); got != 100 {
		t.Errorf("le=1e-06 holds %d, want 100", got)
	}
	if got := h.Bucket[1].GetCumulativeCount(); got != 100 {
		t.Errorf("le=4e-06 holds %d, want 100 (4µs+1ns is above it)", got)
	}
	if got := h.Bucket[2].GetCumulativeCount(); got != 101 {
		t.Errorf("le=1.6e-05 holds %d, want 101", got)
	}
	if want := 100e-6 + 4e-6 + 1e-9; math.Abs(h.GetSampleSum()-want) > 1e-12 {
		t.Errorf("sum = %v, want %v", h.GetSampleSum(), want)
	}
}
