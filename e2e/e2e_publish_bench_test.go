package e2e

import (
	"bytes"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/conn/transport"
	"github.com/wsgate/wsgate/internal/state/redis/redistest"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest"
)

// BenchmarkPublishPathRedisVsMemory measures the client publish path (publish
// message in, ack out, one subscriber per channel receiving) on one node with
// memory state and one with Redis state, in the same run (issue 16: Redis ≥ 0.7×
// memory with 1 and with 32 publications in flight). Each publisher connection
// keeps one publication in flight (a session handles its messages in order);
// "inflight" is the number of publisher connections (one user each), spread
// over "channels". Per-connection budgets are on; the per-user and per-IP
// budgets (which in Redis mode spend local leases refilled from Redis, a cost
// of the limiter, not of publishing) are off unless user-ip-budgets=true.
// ns/op counts one publication on each node; redis/memory is the throughput
// ratio:
//
//	go test -run x -bench PublishPathRedisVsMemory -benchtime 3s -count 3 .
func BenchmarkPublishPathRedisVsMemory(b *testing.B) {
	rs := redistest.Start(b)
	lots := config.RateLimit{Rate: 1e9, Burst: 1e9}
	start := func(backend string, budgets bool) *wsgatetest.Server {
		cfg := wsgatetest.Config()
		cfg.Log.Level = "warn"
		cfg.Limits.Connections.PerUser = 1000
		cfg.Limits.Connections.PerIP = 10000
		cfg.Limits.HandshakeRate = config.RateLimit{Rate: 1000, Burst: 1000}
		cfg.Rate.Tiers["default"] = config.Tier{Messages: lots, Bytes: lots}
		if budgets {
			t := cfg.Rate.Tiers["default"]
			t.UserMessages, t.UserBytes, t.IPMessages, t.IPBytes = lots, lots, lots, lots
			cfg.Rate.Tiers["default"] = t
		}
		if backend == "redis" {
			redisState(cfg, rs.Addr(), "wsgate-bench:")
		}
		return wsgatetest.Start(b, cfg)
	}
	var all [2][]*wsgatetest.Server // without, with user/IP budgets
	for i, budgets := range []bool{false, true} {
		all[i] = []*wsgatetest.Server{start("memory", budgets), start("redis", budgets)}
	}
	for _, tc := range []struct {
		inflight, channels int
		budgets            bool
	}{{1, 1, false}, {32, 1, false}, {32, 8, false}, {32, 32, false}, {1, 1, true}, {32, 8, true}} {
		type side struct{ pubs []*wsgatetest.Client }
		nodes := all[0]
		if tc.budgets {
			nodes = all[1]
		}
		prefix := fmt.Sprintf("chat:bench-%d-%d-", tc.inflight, tc.channels)
		stop := make(chan struct{})
		var drains sync.WaitGroup
		sides := make([]side, len(nodes))
		for k, n := range nodes {
			for ch := range tc.channels {
				sub := n.Connect(b, "bench-sub", chatPerms)
				sub.SendJSON(b, map[string]any{"type": "subscribe", "id": "s", "channel": prefix + strconv.Itoa(ch)})
				sub.Expect(b, "ack", 5*time.Second)
				drains.Go(func() { // the subscriber's queue must never fill
					for {
						select {
						case <-sub.Msgs:
						case <-stop:
							return
						}
					}
				})
			}
			for range tc.inflight {
				sides[k].pubs = append(sides[k].pubs, n.Connect(b, fmt.Sprintf("bench-pub-%d", len(sides[k].pubs)), chatPerms))
			}
		}
		b.Run(fmt.Sprintf("inflight=%d/channels=%d/user-ip-budgets=%v", tc.inflight, tc.channels, tc.budgets), func(b *testing.B) {
			// Slices of at most 2,000 publications alternate between the two
			// nodes, so both see the same load from the rest of the machine.
			var spent, cpu [2]time.Duration
			var redisCPU time.Duration
			for done := 0; done < b.N; {
				n := min(b.N-done, 2000)
				for k := range sides {
					var left atomic.Int64
					left.Store(int64(n))
					var wg sync.WaitGroup
					t0, c0, r0 := time.Now(), processCPU(), rs.CPU()
					for i, c := range sides[k].pubs {
						channel := prefix + strconv.Itoa(i%tc.channels)
						wg.Go(func() { publishLoop(b, c, channel, &left) })
					}
					wg.Wait()
					spent[k] += time.Since(t0)
					cpu[k] += processCPU() - c0
					if k == 1 {
						redisCPU += rs.CPU() - r0
					}
				}
				done += n
			}
			per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(b.N) }
			b.ReportMetric(float64(b.N)/spent[0].Seconds(), "memory-pubs/s")
			b.ReportMetric(float64(b.N)/spent[1].Seconds(), "redis-pubs/s")
			b.ReportMetric(spent[0].Seconds()/spent[1].Seconds(), "redis/memory")
			// CPU per publication of this process (nodes and clients) and of
			// redis-server: less sensitive to the machine's load than time.
			b.ReportMetric(per(cpu[0]), "memory-cpu-µs/pub")
			b.ReportMetric(per(cpu[1]), "redis-cpu-µs/pub")
			b.ReportMetric(per(redisCPU), "redis-server-cpu-µs/pub")
		})
		close(stop)
		drains.Wait()
	}
}

// processCPU is the CPU time this process has used (user + system).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// publishLoop publishes on c, one at a time, until left runs out.
func publishLoop(b *testing.B, c *wsgatetest.Client, channel string, left *atomic.Int64) {
	msg := []byte(`{"type":"publish","id":"p","channel":"` + channel + `","payload":{"text":"hello, world"}}`)
	for left.Add(-1) >= 0 {
		if err := c.Conn.WriteMessage(transport.Text, msg); err != nil {
			b.Error(err)
			return
		}
		select {
		case m := <-c.Msgs:
			if !bytes.Contains(m, []byte(`"type":"ack"`)) {
				b.Errorf("publish answered %s", m)
				return
			}
		case <-time.After(10 * time.Second):
			b.Error("no ack within 10s")
			return
		}
	}
}
