package e2e

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/state/redis/redistest"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest"
)

// BenchmarkClusterPingDuringRedisStall measures ping round trips on a node with
// Redis state while redis-server runs DEBUG SLEEP 3 (issue 16: pings answered
// within 50 ms p99 during the stall). One ping every 10 ms, closed loop; it
// reports p50/p99/max before and during the stall. Run with -benchtime 1x:
//
//	go test -run x -bench ClusterPingDuringRedisStall -benchtime 1x .
func BenchmarkClusterPingDuringRedisStall(b *testing.B) {
	rs := redistest.Start(b)
	cfg := wsgatetest.Config()
	redisState(cfg, rs.Addr(), "wsgate-bench:")
	// Budgets far above 100 pings/s: the bench measures waits, not refusals.
	big := config.RateLimit{Rate: 1000, Burst: 1000}
	cfg.Rate.Tiers["default"] = config.Tier{Messages: big, UserMessages: big, IPMessages: big,
		Bytes: config.RateLimit{Rate: 1 << 20, Burst: 1 << 20}, UserBytes: config.RateLimit{Rate: 1 << 20, Burst: 1 << 20},
		IPBytes: config.RateLimit{Rate: 1 << 20, Burst: 1 << 20}}
	srv := wsgatetest.Start(b, cfg)
	cl := srv.Connect(b, "bench-user", nil)
	measure := func(d time.Duration) []time.Duration {
		var rtts []time.Duration
		for end := time.Now().Add(d); time.Now().Before(end); {
			t0 := time.Now()
			cl.Send(b, `{"type":"ping"}`)
			if m := cl.Next(b, 10*time.Second); m["type"] != "pong" {
				b.Fatalf("ping answered %v, want pong", m)
			}
			rtts = append(rtts, time.Since(t0))
			time.Sleep(10 * time.Millisecond)
		}
		slices.Sort(rtts)
		return rtts
	}
	q := func(r []time.Duration, p float64) float64 {
		return float64(r[min(int(p*float64(len(r))), len(r)-1)]) / 1e6
	}
	rdb := goredis.NewClient(&goredis.Options{Addr: rs.Addr(), ReadTimeout: 10 * time.Second})
	defer rdb.Close()
	b.ResetTimer()
	for range b.N {
		before := measure(time.Second)
		var wg sync.WaitGroup
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := rdb.Do(ctx, "DEBUG", "SLEEP", "3").Err(); err != nil {
				b.Errorf("DEBUG SLEEP: %v", err)
			}
		})
		during := measure(3 * time.Second)
		wg.Wait()
		b.ReportMetric(q(before, 0.99), "p99-ms-before")
		b.ReportMetric(q(during, 0.5), "p50-ms-stall")
		b.ReportMetric(q(during, 0.99), "p99-ms-stall")
		b.ReportMetric(q(during, 1), "max-ms-stall")
		b.ReportMetric(float64(len(during)), "pings-stall")
	}
}
