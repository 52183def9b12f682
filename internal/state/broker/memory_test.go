package broker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wsgate/wsgate/internal/state/broker"
	"github.com/wsgate/wsgate/internal/state/broker/brokertest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestBrokerConformance(t *testing.T) {
	brokertest.Run(t, func(t *testing.T) broker.Broker {
		return broker.NewMemory(broker.MemoryOptions{SweepInterval: 20 * time.Millisecond})
	})
}

type nopHandler struct{}

func (nopHandler) HandlePublication(broker.Publication)  {}
func (nopHandler) HandleJoin(string, broker.ClientInfo)  {}
func (nopHandler) HandleLeave(string, broker.ClientInfo) {}

// runBench runs m with a no-op handler for the benchmark's duration.
func runBench(b *testing.B, m *broker.Memory) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := m.Run(ctx, nopHandler{}); err != nil {
			b.Error(err)
		}
	}()
	b.Cleanup(func() { cancel(); <-done })
}

func BenchmarkPublishWithHistory(b *testing.B) {
	m := broker.NewMemory(broker.MemoryOptions{})
	runBench(b, m)
	ctx := context.Background()
	if err := m.Subscribe(ctx, "bench"); err != nil {
		b.Fatal(err)
	}
	opts := broker.PublishOptions{HistorySize: 100, HistoryTTL: time.Minute}
	data := []byte(`{"text":"hello, world"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Publish(ctx, "bench", data, "u1", opts); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPublishParallelChannels(b *testing.B) {
	m := broker.NewMemory(broker.MemoryOptions{})
	runBench(b, m)
	ctx := context.Background()
	chans := make([]string, 64)
	for i := range chans {
		chans[i] = fmt.Sprintf("bench-%d", i)
		if err := m.Subscribe(ctx, chans[i]); err != nil {
			b.Fatal(err)
		}
	}
	opts := broker.PublishOptions{HistorySize: 100, HistoryTTL: time.Minute}
	data := []byte(`{"text":"hello, world"}`)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			if _, err := m.Publish(ctx, chans[i%len(chans)], data, "u1", opts); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkHistory(b *testing.B) {
	m := broker.NewMemory(broker.MemoryOptions{})
	ctx := context.Background()
	opts := broker.PublishOptions{HistorySize: 100, HistoryTTL: time.Minute}
	var pos broker.StreamPosition
	for range 100 {
		var err error
		if pos, err = m.Publish(ctx, "bench", []byte(`{}`), "", opts); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("recover10", func(b *testing.B) {
		since := broker.StreamPosition{Offset: pos.Offset - 10, Epoch: pos.Epoch}
		b.ReportAllocs()
		for b.Loop() {
			if pubs, _, err := m.History(ctx, "bench", &since, 0); err != nil || len(pubs) != 10 {
				b.Fatal(err, len(pubs))
			}
		}
	})
	b.Run("latest100", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if pubs, _, err := m.History(ctx, "bench", nil, 0); err != nil || len(pubs) != 100 {
				b.Fatal(err, len(pubs))
			}
		}
	})
	b.Run("current", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := m.History(ctx, "bench", &pos, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
}
