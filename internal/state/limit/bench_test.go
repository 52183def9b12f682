package limit_test

import (
	"context"
	"runtime"
	"testing"

	"github.com/wsgate/wsgate/internal/state/limit"
)

var benchLimit = limit.Limit{Rate: 1e9, Burst: 1 << 30} // never refuses: measures the path, not refusals

func BenchmarkAllowHotKey(b *testing.B) {
	m := newMem(b, limit.MemoryOptions{})
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_, _, _ = m.Allow(ctx, "203.0.113.7", benchLimit, 1)
		}
	})
}

func BenchmarkAllowRandomKeys(b *testing.B) {
	keys := make([]string, 1<<20)
	for i := range keys {
		keys[i] = ipv4(i * 2654435761 % (1 << 30))
	}
	m := newMem(b, limit.MemoryOptions{})
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			_, _, _ = m.Allow(ctx, keys[i&(len(keys)-1)], benchLimit, 1)
			i += 7919
		}
	})
}

// BenchmarkMillionIPs inserts 1,000,000 distinct IPs and reports the heap they hold,
// with the default bound (all fit) and with MaxKeys 100,000 (memory stays bounded).
func BenchmarkMillionIPs(b *testing.B) {
	for _, tc := range []struct {
		name    string
		maxKeys int
	}{{"default", 0}, {"max100k", 100_000}} {
		b.Run(tc.name, func(b *testing.B) {
			keys := make([]string, 1_000_000)
			for i := range keys {
				keys[i] = ipv4(i)
			}
			l := limit.Limit{Rate: 1, Burst: 10}
			ctx := context.Background()
			var heap uint64
			var n int
			for b.Loop() {
				m := limit.NewMemory(limit.MemoryOptions{MaxKeys: tc.maxKeys, SweepInterval: -1})
				before := heapInuse()
				for _, k := range keys {
					_, _, _ = m.Allow(ctx, k, l, 1)
				}
				heap = heapInuse() - before
				n = m.Len()
				runtime.KeepAlive(m)
				_ = m.Close()
			}
			b.ReportMetric(float64(heap)/(1<<20), "heapMiB")
			b.ReportMetric(float64(heap)/float64(n), "B/key")
			b.ReportMetric(float64(n), "keys")
		})
	}
}
