package ban_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/state/ban"
)

func BenchmarkBannedMiss(b *testing.B) {
	l := ban.NewMemoryList(0)
	ctx := context.Background()
	for i := range 10_000 {
		_ = l.Ban(ctx, ban.Ban{Subject: "ip:10.0." + strconv.Itoa(i), Until: time.Now().Add(time.Hour)})
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_, _, _ = l.Banned(ctx, "ip:192.0.2.1")
		}
	})
}

func BenchmarkRecordStrike(b *testing.B) {
	s := ban.NewStrikes(ban.Policy{MaxStrikes: 1 << 20}, ban.NewMemoryList(0), ban.StrikesOptions{SweepInterval: -1})
	defer s.Close()
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		_, _ = s.Record(ctx, "10.0.0."+strconv.Itoa(i&1023), "", "x")
	}
}
