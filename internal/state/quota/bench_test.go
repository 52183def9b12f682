package quota_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/wsgate/wsgate/internal/state/quota"
)

func BenchmarkAcquireRelease(b *testing.B) {
	q := quota.New(quota.NewMemoryStore(), quota.Limits{PerIP: 1 << 30, PerUser: 1 << 30, Global: 1 << 30})
	ctx := context.Background()
	var n atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ip := "10.0.0." + strconv.Itoa(int(n.Add(1)))
		for pb.Next() {
			l, err := q.Acquire(ctx, ip, "alice")
			if err != nil {
				b.Error(err)
				return
			}
			l.Release()
		}
	})
}
