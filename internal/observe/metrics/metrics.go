package metrics

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Label bounds: how many distinct values a free-form label may take before
// the rest collapse to "other".
const (
	maxRoutes  = 256
	maxReasons = 64
	maxTypes   = 64
	maxResults = 32
	maxCodes   = 64
	maxRules   = 64
)

// Metrics records wsgate's Prometheus metrics. All methods are safe for
// concurrent use and a nil *Metrics ignores every call.
type Metrics struct {
	reg    *prometheus.Registry
	series *Series

	routes, reasons, results, codes, rules, strikeReasons *labelBound
	types                                                 knownSet
	scopes, kinds, hookKinds, hookOutcomes                fixedSet
	// msg holds the per-message series (messages, bytes in and out, pipeline
	// duration), striped over cache lines (see striped.go).
	msg *perMessage

	conns          *prometheus.GaugeVec
	connsTotal     *prometheus.CounterVec
	handshakes     *prometheus.CounterVec
	rateLimited    *prometheus.CounterVec
	strikes        *prometheus.CounterVec
	bans           *prometheus.CounterVec
	slowCloses     prometheus.Counter
	queueDropped   prometheus.Counter
	fanoutDur      prometheus.Histogram
	closes         *prometheus.CounterVec
	alerts         *prometheus.CounterVec
	upstreamUp     *prometheus.GaugeVec
	upstreamErrors *prometheus.CounterVec
	redisUp        prometheus.Gauge
	redisOnce      sync.Once // wsgate_redis_up is exported once Redis is in use
	hookCalls      *prometheus.CounterVec
}

// New builds the metrics on a fresh registry, with the Go runtime and
// process collectors.
func New() *Metrics {
	m := &Metrics{
		reg:           prometheus.NewRegistry(),
		series:        NewSeries(nil),
		routes:        newLabelBound(maxRoutes),
		reasons:       newLabelBound(maxReasons),
		strikeReasons: newLabelBound(maxReasons),
		results:       newLabelBound(maxResults, "ok"),
		codes:         newLabelBound(maxCodes),
		rules:         newLabelBound(maxRules),
		scopes:        newFixedSet("conn", "user", "ip", "handshake"),
		kinds:         newFixedSet("ip", "user"),
		hookKinds:     newFixedSet("connect", "subscribe", "publish"),
		hookOutcomes:  newFixedSet("allow", "refuse", "rewrite", "timeout", "busy", "open", "error", "bad_response"),
	}
	m.types.bound = newLabelBound(maxTypes)
	m.msg = newPerMessage()
	m.reg.MustRegister(m.msg)
	f := factory{m.reg}
	m.conns = f.gaugeVec("wsgate_connections", "Open WebSocket connections.", "route")
	m.connsTotal = f.counterVec("wsgate_connections_total", "WebSocket connections opened.", "route")
	m.handshakes = f.counterVec("wsgate_handshakes_total", "Upgrade requests by result (accepted|rejected) and rejection reason.", "result", "reason")
	m.rateLimited = f.counterVec("wsgate_rate_limited_total", "Requests refused by a rate limit, by scope (conn|user|ip|handshake).", "scope")
	m.strikes = f.counterVec("wsgate_strikes_total", "Strikes counted against clients, by reason.", "reason")
	m.bans = f.counterVec("wsgate_bans_total", "Bans issued, by kind (ip|user).", "kind")
	m.slowCloses = f.counter("wsgate_slow_consumer_closes_total", "Connections closed because the client read too slowly.")
	m.queueDropped = f.counter("wsgate_queue_dropped_messages_total", "Outbound messages dropped from full per-connection queues.")
	m.fanoutDur = f.histogram("wsgate_fanout_duration_seconds", "Time to fan one message out to a channel's subscribers.",
		prometheus.ExponentialBuckets(1e-5, 4, 10)) // 10µs … 2.6s
	m.closes = f.counterVec("wsgate_closes_total", "Connections closed, by WebSocket close code.", "code")
	m.alerts = f.counterVec("wsgate_alerts_total", "Alerts fired, by rule.", "rule")
	m.upstreamUp = f.gaugeVec("wsgate_upstream_up", "Whether the route's upstream is reachable (1) or not (0).", "route")
	m.upstreamErrors = f.counterVec("wsgate_upstream_dial_errors_total", "Failed dials to a route's upstream.", "route")
	m.hookCalls = f.counterVec("wsgate_hook_calls_total", "Application hook calls by kind (connect|subscribe|publish) and outcome (allow|refuse|rewrite|timeout|busy|open|error|bad_response).", "kind", "outcome")
	// Not registered until RedisUp is first called: a server without Redis must
	// not export a gauge saying Redis is down.
	m.redisUp = prometheus.NewGauge(prometheus.GaugeOpts{Name: "wsgate_redis_up", Help: "Whether Redis is reachable (1) or not (0); absent when no Redis is configured."})
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// factory registers as it builds; names are constants, so a registration
// failure is a programming error caught by the tests.
type factory struct{ reg *prometheus.Registry }

func (f factory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	f.reg.MustRegister(c)
	return c
}

func (f factory) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	f.reg.MustRegister(c)
	return c
}

func (f factory) gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
	f.reg.MustRegister(g)
	return g
}

func (f factory) histogram(name, help string, buckets []float64) prometheus.Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets})
	f.reg.MustRegister(h)
	return h
}

// Handler serves the registry in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Registry lets other packages register their own collectors alongside.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Series returns the dashboard time series fed by ConnOpened, ConnClosed
// and Handshake.
func (m *Metrics) Series() *Series {
	if m == nil {
		return nil
	}
	return m.series
}

// SetKnownTypes declares the message types that get their own label value
// in wsgate_messages_total; every other type is counted as "other". Until it
// is called the first 64 well-formed names are admitted.
func (m *Metrics) SetKnownTypes(types []string) {
	if m == nil {
		return
	}
	s := newFixedSet(types...)
	m.types.p.Store(&s)
	// Series cached under the old set may carry labels it no longer admits.
	m.msg.resetFast()
}

// ConnOpened counts a new connection on route.
func (m *Metrics) ConnOpened(route string) {
	if m == nil {
		return
	}
	r := m.routes.value(route)
	m.conns.WithLabelValues(r).Inc()
	m.connsTotal.WithLabelValues(r).Inc()
	m.series.ConnOpened()
}

// ConnClosed counts the end of a connection on route and its close code.
func (m *Metrics) ConnClosed(route string, code int) {
	if m == nil {
		return
	}
	m.conns.WithLabelValues(m.routes.value(route)).Dec()
	m.closes.WithLabelValues(m.codes.value(strconv.Itoa(code))).Inc()
	m.series.ConnClosed()
}

// Handshake counts an upgrade request; reason is the rejection cause
// (ignored when accepted).
func (m *Metrics) Handshake(accepted bool, reason string) {
	if m == nil {
		return
	}
	if accepted {
		m.handshakes.WithLabelValues("accepted", "none").Inc()
	} else {
		m.handshakes.WithLabelValues("rejected", m.reasons.value(reason)).Inc()
	}
	m.series.Handshake(accepted, reason)
}

// Message counts one client message of type typ with pipeline result
// ("ok" or the failing stage, e.g. "schema", "rate", "too_big"). Within a
// connection, ClientMessage records it with the rest at once.
//
// The series of a (type, result) pair that are their own label values is
// looked up once and cached: two bounded label sets bound the cache, and
// values that collapse to "other" or "none" are never cached (they take the
// slow path each time).
func (m *Metrics) Message(typ, result string) {
	if m != nil {
		m.msg.counter(m, typ, result)[0].Add(1)
	}
}

// ClientMessage records one client message of conn (its id, which picks the
// stripe its per-message series are written to): its type and pipeline
// result as Message counts them, its payload size and the time the pipeline
// took.
func (m *Metrics) ClientMessage(conn, typ, result string, size int, took time.Duration) {
	if m == nil {
		return
	}
	s := stripeOf(conn)
	m.msg.counter(m, typ, result)[s].Add(1)
	if size > 0 {
		m.msg.recv[s].Add(uint64(size))
	}
	m.msg.observe(s, took)
}

// msgKey is a (type, result) pair of wsgate_messages_total label values.
type msgKey struct{ typ, result string }

// BytesReceived adds n inbound payload bytes.
func (m *Metrics) BytesReceived(n int) {
	if m != nil && n > 0 {
		m.msg.recv[0].Add(uint64(n))
	}
}

// BytesSent adds n outbound payload bytes.
func (m *Metrics) BytesSent(n int) {
	if m != nil && n > 0 {
		m.msg.sent[0].Add(uint64(n))
	}
}

// SentTo adds n payload bytes sent to conn (its id picks the stripe, as in
// ClientMessage).
func (m *Metrics) SentTo(conn string, n int) {
	if m != nil && n > 0 {
		m.msg.sent[stripeOf(conn)].Add(uint64(n))
	}
}

// RateLimited counts a refusal by the limiter of scope conn, user, ip or
// handshake.
func (m *Metrics) RateLimited(scope string) {
	if m != nil {
		m.rateLimited.WithLabelValues(m.scopes.value(scope)).Inc()
	}
}

// Strike counts a strike against a client.
func (m *Metrics) Strike(reason string) {
	if m != nil {
		m.strikes.WithLabelValues(m.strikeReasons.value(reason)).Inc()
	}
}

// HookCall counts one application hook call by kind and outcome.
func (m *Metrics) HookCall(kind, outcome string) {
	if m != nil {
		m.hookCalls.WithLabelValues(m.hookKinds.value(kind), m.hookOutcomes.value(outcome)).Inc()
	}
}

// Ban counts a ban of kind "ip" or "user".
func (m *Metrics) Ban(kind string) {
	if m != nil {
		m.bans.WithLabelValues(m.kinds.value(kind)).Inc()
	}
}

// SlowConsumerClose counts a connection closed for reading too slowly.
func (m *Metrics) SlowConsumerClose() {
	if m != nil {
		m.slowCloses.Inc()
	}
}

// QueueDropped counts n outbound messages dropped from a full queue.
func (m *Metrics) QueueDropped(n int) {
	if m != nil && n > 0 {
		m.queueDropped.Add(float64(n))
	}
}

// ObservePipeline records how long one message spent in the pipeline.
func (m *Metrics) ObservePipeline(d time.Duration) {
	if m != nil {
		m.msg.observe(0, d)
	}
}

// ObserveFanout records how long one broadcast took.
func (m *Metrics) ObserveFanout(d time.Duration) {
	if m != nil {
		m.fanoutDur.Observe(d.Seconds())
	}
}

// Alert counts a fired alert of rule.
func (m *Metrics) Alert(rule string) {
	if m != nil {
		m.alerts.WithLabelValues(m.rules.value(rule)).Inc()
	}
}

// UpstreamUp sets whether route's upstream is reachable.
func (m *Metrics) UpstreamUp(route string, up bool) {
	if m != nil {
		m.upstreamUp.WithLabelValues(m.routes.value(route)).Set(b2f(up))
	}
}

// UpstreamDialError counts a failed dial to route's upstream.
func (m *Metrics) UpstreamDialError(route string) {
	if m != nil {
		m.upstreamErrors.WithLabelValues(m.routes.value(route)).Inc()
	}
}

// RedisUp sets whether Redis is reachable; the first call exports the gauge.
func (m *Metrics) RedisUp(up bool) {
	if m != nil {
		m.redisOnce.Do(func() { m.reg.MustRegister(m.redisUp) })
		m.redisUp.Set(b2f(up))
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
