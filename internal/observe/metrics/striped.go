package metrics

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The per-message metrics (wsgate_messages_total, wsgate_received_bytes_total,
// wsgate_sent_bytes_total, wsgate_pipeline_duration_seconds) are written for
// every client message, by every connection's goroutine at once. Prometheus'
// own counters and histograms hold one value per series, so every core writes
// the same cache lines: one message cost seven atomic writes to lines shared by
// all cores (a histogram observation alone is four, one of them a
// compare-and-swap loop on the float sum), and under load those lines move
// between cores on every message. Here each series is split into stripes on
// cache lines of their own; a connection writes the stripe its id picks (see
// stripeOf), so two cores serving different connections seldom share a line,
// and a scrape sums the stripes. Counts stay exact: a scrape sees every
// recorded message, except that it may catch one being recorded half-way,
// as it could with the separate Prometheus counters.

// stripes is how many stripes each per-message series has: a power of two.
// Connections pick one at random (their ids are random), so with c cores busy
// the chance that two of them write the same stripe is about c/stripes; 8
// keeps that low on small machines while a series costs 512 bytes.
const stripes = 8

// paddedUint64 is a counter alone on its cache line.
type paddedUint64 struct {
	atomic.Uint64
	_ [56]byte
}

// stripedCounter is one counter series split into stripes.
type stripedCounter [stripes]paddedUint64

func (c *stripedCounter) sum() uint64 {
	var n uint64
	for i := range c {
		n += c[i].Load()
	}
	return n
}

// pipelineBounds are wsgate_pipeline_duration_seconds' bucket upper bounds:
// 1µs … 262ms, ×4 each.
var pipelineBounds = prometheus.ExponentialBuckets(1e-6, 4, 10)

// durationStripe is one stripe of the pipeline duration histogram: a count
// per bucket (the last one above every bound) and the sum in nanoseconds,
// followed by 64 bytes of padding: the stripes' counters are never on one
// cache line, however the array is aligned.
type durationStripe struct {
	buckets [10 + 1]atomic.Uint64
	sumNs   atomic.Uint64
	_       [64]byte
}

// perMessage is the striped store behind the per-message metrics, exported to
// the registry as a collector.
type perMessage struct {
	msgDesc, recvDesc, sentDesc, durDesc *prometheus.Desc

	boundsNs [10]int64 // pipelineBounds in ns, for an integer bucket search
	_        [64]byte  // keeps the counters off boundsNs' cache line
	recv     stripedCounter
	sent     stripedCounter
	dur      [stripes]durationStripe

	// fast maps a (type, result) pair to its counter when both are their
	// own label values; replaced (emptied) by SetKnownTypes, added to
	// copy-on-write under mu. all holds every series by its label values,
	// including those that collapsed to "other"; it only grows, as a
	// CounterVec's children did.
	fast atomic.Pointer[map[msgKey]*stripedCounter]
	mu   sync.Mutex
	all  map[msgKey]*stripedCounter
}

func newPerMessage() *perMessage {
	p := &perMessage{
		msgDesc:  prometheus.NewDesc("wsgate_messages_total", "Client messages by type and pipeline result.", []string{"type", "result"}, nil),
		recvDesc: prometheus.NewDesc("wsgate_received_bytes_total", "Payload bytes received from clients.", nil, nil),
		sentDesc: prometheus.NewDesc("wsgate_sent_bytes_total", "Payload bytes sent to clients.", nil, nil),
		durDesc:  prometheus.NewDesc("wsgate_pipeline_duration_seconds", "Time to run one inbound message through the pipeline.", nil, nil),
		all:      map[msgKey]*stripedCounter{},
	}
	for i, b := range pipelineBounds {
		p.boundsNs[i] = int64(math.Round(b * 1e9))
	}
	p.resetFast()
	return p
}

// stripeOf picks a connection's stripe from its key (the connection id, random
// base64): the same stripe for all of its messages, spread over connections.
func stripeOf(key string) int {
	if key == "" {
		return 0
	}
	return int(key[len(key)-1]) & (stripes - 1)
}

func (p *perMessage) resetFast() {
	m := map[msgKey]*stripedCounter{}
	p.fast.Store(&m)
}

// counter returns the series of (typ, result), as the label sets admit them.
func (p *perMessage) counter(m *Metrics, typ, result string) *stripedCounter {
	fast := p.fast.Load() // before the labels: see SetKnownTypes
	key := msgKey{typ, result}
	if c, ok := (*fast)[key]; ok {
		return c
	}
	t, r := m.types.value(typ), m.results.value(result)
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.all[msgKey{t, r}]
	if c == nil {
		c = new(stripedCounter)
		p.all[msgKey{t, r}] = c
	}
	if t == typ && r == result && p.fast.Load() == fast {
		next := make(map[msgKey]*stripedCounter, len(*fast)+1)
		for k, v := range *fast {
			next[k] = v
		}
		next[key] = c
		p.fast.Store(&next)
	}
	return c
}

// msgSeries is one wsgate_messages_total series, as Collect copies it.
type msgSeries struct {
	k msgKey
	c *stripedCounter
}

func (p *perMessage) observe(s int, took time.Duration) {
	ns := int64(took)
	i := 0
	for i < len(p.boundsNs) && ns > p.boundsNs[i] {
		i++
	}
	d := &p.dur[s]
	d.buckets[i].Add(1)
	d.sumNs.Add(uint64(max(ns, 0)))
}

// Describe implements prometheus.Collector.
func (p *perMessage) Describe(ch chan<- *prometheus.Desc) {
	ch <- p.msgDesc
	ch <- p.recvDesc
	ch <- p.sentDesc
	ch <- p.durDesc
}

// Collect implements prometheus.Collector.
func (p *perMessage) Collect(ch chan<- prometheus.Metric) {
	// Copied out first: a slow scrape must not hold up the messages that
	// take the locked path.
	p.mu.Lock()
	series := make([]msgSeries, 0, len(p.all))
	for k, c := range p.all {
		series = append(series, msgSeries{k, c})
	}
	p.mu.Unlock()
	for _, sr := range series {
		ch <- prometheus.MustNewConstMetric(p.msgDesc, prometheus.CounterValue, float64(sr.c.sum()), sr.k.typ, sr.k.result)
	}
	ch <- prometheus.MustNewConstMetric(p.recvDesc, prometheus.CounterValue, float64(p.recv.sum()))
	ch <- prometheus.MustNewConstMetric(p.sentDesc, prometheus.CounterValue, float64(p.sent.sum()))
	var counts [10 + 1]uint64
	var sumNs uint64
	for s := range p.dur {
		for i := range counts {
			counts[i] += p.dur[s].buckets[i].Load()
		}
		sumNs += p.dur[s].sumNs.Load()
	}
	// Cumulative, as Prometheus buckets are; the count is the sum of every
	// bucket, so count and buckets always agree.
	buckets := make(map[float64]uint64, len(pipelineBounds))
	var cum uint64
	for i, b := range pipelineBounds {
		cum += counts[i]
		buckets[b] = cum
	}
	cum += counts[len(pipelineBounds)]
	ch <- prometheus.MustNewConstHistogram(p.durDesc, cum, float64(sumNs)/1e9, buckets)
}
