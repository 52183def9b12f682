package metrics_test

import (
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/observe/metrics"
)

func BenchmarkMessage(b *testing.B) {
	m := metrics.New()
	m.SetKnownTypes([]string{"chat", "join", "leave"})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Message("chat", "ok")
			m.BytesReceived(128)
			m.ObservePipeline(2 * time.Microsecond)
		}
	})
}

func BenchmarkHandshake(b *testing.B) {
	m := metrics.New()
	b.ReportAllocs()
	for b.Loop() {
		m.Handshake(false, "origin")
	}
}
