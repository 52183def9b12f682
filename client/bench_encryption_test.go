package client_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wsgate/wsgate/client"
	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest"
)

// benchSubscribers is the fan-out of BenchmarkEncryptionFanout.
const benchSubscribers = 100

func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkEncryptionFanout measures the cost of each encryption mode through
// the real path: an in-process wsgate (TLS, memory state, history 100) and Go
// SDK clients over loopback, one publisher and benchSubscribers subscribers of
// one channel. Each op publishes one ~100-byte trade and waits until every
// subscriber has received it (closed loop, one publication in flight).
//
//   - cpu-us/pub: the whole process's CPU per publication (wsgate, the
//     publisher and the subscribers), from getrusage;
//   - p50-us, p99-us: fan-out latency, from Publish being called to each
//     subscriber's OnMessage (after opening, for end_to_end).
//
// Modes: off; at_rest (wsgate seals once, opens once per node); end_to_end
// (the publisher seals, every subscriber opens, wsgate checks the envelope);
// end_to_end_relay (the same envelopes, subscribers without the key: the
// server's and the publisher's share of end_to_end). docs/benchmarks.md.
func BenchmarkEncryptionFanout(b *testing.B) {
	for _, mode := range []string{"off", "at_rest", "end_to_end", "end_to_end_relay"} {
		b.Run(mode, func(b *testing.B) { benchFanout(b, mode) })
	}
}

func benchFanout(b *testing.B, mode string) {
	cfg := wsgatetest.Config()
	cfg.Log.Level = "warn"
	cfg.Limits.HandshakeRate = config.RateLimit{Rate: 10000, Burst: 10000}
	cfg.Limits.Connections.PerIP = 10 * benchSubscribers
	cfg.Rate.Tiers = map[string]config.Tier{"default": {
		Messages: config.RateLimit{Rate: 1e6, Burst: 1e6}, Bytes: config.RateLimit{Rate: 1e9, Burst: 1e9},
		UserMessages: config.RateLimit{Rate: 1e6, Burst: 1e6}, UserBytes: config.RateLimit{Rate: 1e9, Burst: 1e9},
		IPMessages: config.RateLimit{Rate: 1e6, Burst: 1e6}, IPBytes: config.RateLimit{Rate: 1e9, Burst: 1e9},
	}}
	ns := config.Namespace{ClientPublish: true, MaxSubscribers: 10 * benchSubscribers, HistorySize: 100, HistoryTTL: time.Minute}
	switch mode {
	case "at_rest":
		ns.Encryption = "at_rest"
		cfg.Encryption.Keys = []string{"k1=base64:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}
	case "end_to_end", "end_to_end_relay":
		ns.Encryption = "end_to_end"
	}
	cfg.Channels.Namespaces["trades"] = ns
	s := wsgatetest.Start(b, cfg)
	claims := map[string]any{"channels": map[string]any{"sub": []string{"trades:*"}, "pub": []string{"trades:*"}}}
	key := []client.EncryptionKey{{ID: "app1", Secret: []byte(strings.Repeat("k", 32))}}
	dialB := func(sub string, withKey bool) *client.Client {
		o := &client.DialOptions{RootCAs: s.RootCAs, Token: func(context.Context) (string, error) { return s.Token(b, sub, claims), nil }}
		if withKey {
			o.Encryption = &client.Encryption{Keys: key, Channels: func(ch string) bool { return strings.HasPrefix(ch, "trades:") }}
		}
		return dial(b, s, o)
	}
	const ch = "trades:eurusd"
	var (
		start     atomic.Int64 // UnixNano of the Publish call in flight
		remaining atomic.Int64
		done      = make(chan struct{}, 1)
		mu        sync.Mutex
		lat       []time.Duration
		bad       atomic.Int64
	)
	onMessage := func(m client.Message) {
		d := time.Duration(time.Now().UnixNano() - start.Load())
		if mode != "end_to_end_relay" && !strings.HasPrefix(string(m.Payload), `{"px"`) {
			bad.Add(1)
		}
		mu.Lock()
		lat = append(lat, d)
		mu.Unlock()
		if remaining.Add(-1) == 0 {
			done <- struct{}{}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	for i := range benchSubscribers {
		c := dialB(fmt.Sprintf("sub%d", i), mode == "end_to_end")
		if _, err := c.Subscribe(ctx, ch, &client.SubscribeOptions{OnMessage: onMessage}); err != nil {
			b.Fatal(err)
		}
	}
	pub := dialB("publisher", mode != "off" && mode != "at_rest")
	payload := []byte(`{"px":1.08423,"qty":250000,"side":"buy","sym":"EURUSD","trader":"desk-7","ts":1765000000000}`)
	publish := func() {
		remaining.Store(benchSubscribers)
		start.Store(time.Now().UnixNano())
		if _, err := pub.Publish(ctx, ch, payload); err != nil {
			b.Fatal(err)
		}
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			b.Fatalf("%d of %d subscribers still waiting after 30 s", remaining.Load(), benchSubscribers)
		}
	}
	for range 20 { // warm up: connections, caches, derived keys
		publish()
	}
	mu.Lock()
	lat = lat[:0]
	mu.Unlock()
	b.ReportAllocs()
	cpu0 := processCPU()
	b.ResetTimer()
	for range b.N {
		publish()
	}
	b.StopTimer()
	cpu := processCPU() - cpu0
	if n := bad.Load(); n > 0 {
		b.Fatalf("%d deliveries were not opened", n)
	}
	mu.Lock()
	slices.Sort(lat)
	p := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) }
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/pub")
	b.ReportMetric(p(0.50), "p50-us")
	b.ReportMetric(p(0.99), "p99-us")
	mu.Unlock()
}
