package redis_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/state/broker"
	"github.com/wsgate/wsgate/internal/state/limit"
	"github.com/wsgate/wsgate/internal/state/redis"
	"github.com/wsgate/wsgate/internal/state/redis/redistest"
)

// BenchmarkLimiter compares one Allow on a shared (per-user) key: in memory,
// in Redis with one script per call (exact), and in Redis with local leases.
// Run: go test -run x -bench Limiter -benchmem ./internal/state/redis/
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
			runParallel(b, "u:m:user", 64, func(ctx context.Context, key string) error {
				if ok, _, err := tc.l.Allow(ctx, key, tc.lim, 1); !ok || err != nil {
					return fmt.Errorf("Allow = %v, %v", ok, err)
				}
				return nil
			})
			if rl, ok := tc.l.(*redis.Limiter); ok {
				st := rl.Stats()
				b.ReportMetric(float64(st.RedisCalls)/float64(st.RedisCalls+st.LeaseHits), "redis-calls/op")
			}
		})
	}
}

// What the publish benchmarks publish: a chat message, kept in history.
var (
	benchKeep    = broker.PublishOptions{HistorySize: 100, HistoryTTL: time.Minute}
	benchPayload = []byte(`{"type":"chat","text":"hello, world"}`)
)

// benchBroker starts a redis-server and returns a client on it and that
// client's broker.
func benchBroker(b *testing.B) (*redis.Client, *redis.Broker) {
	srv := redistest.Start(b)
	c := node(b, srv, "bench")
	rb, err := c.Broker(redis.BrokerOptions{})
	if err != nil {
		b.Fatal(err)
	}
	return c, rb
}

// BenchmarkBrokerPublish measures a Publish with history (one script: offset,
// XADD, PUBLISH) against memory.
func BenchmarkBrokerPublish(b *testing.B) {
	_, rb := benchBroker(b)
	for _, tc := range []struct {
		name string
		br   broker.Broker
	}{{"memory", broker.NewMemory(broker.MemoryOptions{})}, {"redis", rb}} {
		b.Run(tc.name, func(b *testing.B) {
			runParallel(b, "bench:", 16, func(ctx context.Context, ch string) error {
				_, err := tc.br.Publish(ctx, ch, benchPayload, "", benchKeep)
				return err
			})
		})
	}
}

// runParallel runs op under b.RunParallel, each goroutine on one of keys keys
// (prefix + a number), until b.N ops or the first error.
func runParallel(b *testing.B, prefix string, keys int, op func(ctx context.Context, key string) error) {
	var n atomic.Int64
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		key := prefix + strconv.Itoa(int(n.Add(1))%keys)
		for pb.Next() {
			if err := op(ctx, key); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkBrokerPublishInflight measures Publish with a fixed number of
// publications in flight (goroutines publishing one at a time) spread over a
// number of channels, memory against Redis in the same run; "ping" is the
// floor: one go-redis PING per op. A subscriber on this node receives every
// publication, as with wsgate sessions.
//
//	go test -run x -bench BrokerPublishInflight -benchtime 2s ./internal/state/redis/
func BenchmarkBrokerPublishInflight(b *testing.B) {
	c, rb := benchBroker(b)
	mem := broker.NewMemory(broker.MemoryOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, br := range []broker.Broker{rb, mem} {
		go func() { _ = br.Run(ctx, nopHandler{}) }()
	}
	for _, tc := range []struct{ inflight, channels int }{{1, 1}, {32, 1}, {32, 8}} {
		for _, be := range []struct {
			name string
			br   broker.Broker
		}{{"memory", mem}, {"redis", rb}, {"ping", nil}} {
			prefix := fmt.Sprintf("bench-%d-%d-", tc.inflight, tc.channels)
			for ch := range tc.channels {
				if be.br != nil {
					must(b, be.br.Subscribe(ctx, prefix+strconv.Itoa(ch)))
				}
			}
			b.Run(fmt.Sprintf("inflight=%d/channels=%d/%s", tc.inflight, tc.channels, be.name), func(b *testing.B) {
				var left atomic.Int64
				left.Store(int64(b.N))
				var wg sync.WaitGroup
				b.ReportAllocs()
				b.ResetTimer()
				for i := range tc.inflight {
					ch := prefix + strconv.Itoa(i%tc.channels)
					wg.Go(func() {
						for left.Add(-1) >= 0 {
							var err error
							if be.br == nil {
								err = c.Ping(ctx)
							} else {
								_, err = be.br.Publish(ctx, ch, benchPayload, "", benchKeep)
							}
							if err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
			})
		}
	}
}

type nopHandler struct{}

func (nopHandler) HandlePublication(broker.Publication)  {}
func (nopHandler) HandleJoin(string, broker.ClientInfo)  {}
func (nopHandler) HandleLeave(string, broker.ClientInfo) {}
