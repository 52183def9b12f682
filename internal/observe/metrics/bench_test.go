package metrics_test

import (
	"strconv"
	"sync/atomic"
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

// BenchmarkPerMessage is what the server's observer records for an accepted
// ping and its pong, on every core at once, one connection per goroutine:
// the per-message series every connection writes. CPU per message is ns/op ×
// GOMAXPROCS.
func BenchmarkPerMessage(b *testing.B) {
	m := metrics.New()
	m.SetKnownTypes([]string{"ping", "chat"})
	var n atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		conn := "conn-" + strconv.FormatInt(n.Add(1), 10)
		for pb.Next() {
			m.ClientMessage(conn, "ping", "accepted", 26, 2*time.Microsecond)
			m.SentTo(conn, 40)
		}
	})
}
