package redis_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/broker"
	"github.com/wsgate/wsgate/internal/cluster/redis"
	"github.com/wsgate/wsgate/internal/cluster/redis/redistest"
	"github.com/wsgate/wsgate/internal/limit"
)

// BenchmarkLimiter compares one Allow on a shared (per-user) key: in memory,
// in Redis with one script per call (exact), and in Redis with local leases.
// Run: go test -run x -bench Limiter -benchmem ./internal/cluster/redis/
func BenchmarkLimiter(b *testing.B) {
	srv := redistest.Start(b)
	c := node(b, srv, "bench")
	lim := limit.Limit{Rate: 1e9, Burst: 1e6} // never refuses: measure the cost of saying yes
	mem := limit.NewMemory(limit.MemoryOptions{})
	b.Cleanup(func() { _ = mem.Close() })
	for _, tc := range []struct {
		name string
		l    limit.Limiter
		lim  limit.Limit
	}{
		{"memory", mem, lim},
		{"redis-exact", c.Limiter(redis.LimiterOptions{LeaseFraction: -1}), lim},
		// Default lease (10% of burst) on a burst of 100: one script per 10 calls.
		{"redis-lease-burst100", c.Limiter(redis.LimiterOptions{}), limit.Limit{Rate: 1e7, Burst: 100}},
		{"redis-lease-burst1e6", c.Limiter(redis.LimiterOptions{LeaseFraction: 0.001}), lim},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var n atomic.Int64
			ctx := context.Background()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				key := "u:m:user" + strconv.Itoa(int(n.Add(1))%64)
				for pb.Next() {
					if ok, _, err := tc.l.Allow(ctx, key, tc.lim, 1); !ok || err != nil {
						b.Error(ok, err)
						return
					}
				}
			})
			if rl, ok := tc.l.(*redis.Limiter); ok {
				st := rl.Stats()
				b.ReportMetric(float64(st.RedisCalls)/float64(st.RedisCalls+st.LeaseHits), "redis-calls/op")
			}
		})
	}
}

// BenchmarkBrokerPublish measures a Publish with history (one script: offset,
// XADD, PUBLISH) against memory.
func BenchmarkBrokerPublish(b *testing.B) {
	srv := redistest.Start(b)
	c := node(b, srv, "bench")
	rb, err := c.Broker(redis.BrokerOptions{})
	if err != nil {
		b.Fatal(err)
	}
	keep := broker.PublishOptions{HistorySize: 100, HistoryTTL: time.Minute}
	payload := []byte(`{"type":"chat","text":"hello, world"}`)
	for _, tc := range []struct {
		name string
		br   broker.Broker
	}{{"memory", broker.NewMemory(broker.MemoryOptions{})}, {"redis", rb}} {
		b.Run(tc.name, func(b *testing.B) {
			var n atomic.Int64
			ctx := context.Background()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				ch := "bench:" + strconv.Itoa(int(n.Add(1))%16)
				for pb.Next() {
					if _, err := tc.br.Publish(ctx, ch, payload, "", keep); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
