package room_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/wsgate/wsgate/internal/route/room"
)

// countClient only counts: the benchmark measures the room's fan-out, not a queue.
type countClient struct {
	id    string
	n     atomic.Int64
	bytes atomic.Int64
}

func (c *countClient) ConnID() string         { return c.id }
func (c *countClient) User() string           { return "bench" }
func (c *countClient) Claims() map[string]any { return benchClaims }
func (c *countClient) Send(b []byte) error {
	c.n.Add(1)
	c.bytes.Add(int64(len(b)))
	return nil
}

var benchClaims = map[string]any{"channels": map[string]any{"sub": []any{"chat:*"}}}

// BenchmarkFanout10k publishes one message to a channel with 10,000 local
// subscribers: one encoding, 10,000 Sends of the same bytes.
func BenchmarkFanout10k(b *testing.B) {
	const subs = 10000
	e := start(b, room.Options{})
	clients := make([]*countClient, subs)
	for i := range clients {
		clients[i] = &countClient{id: fmt.Sprint("b", i)}
		if err := e.s.Handle(context.Background(), clients[i], "subscribe", nil, []byte(`{"channel":"chat:bench"}`)); err != nil {
			b.Fatal(err)
		}
	}
	for _, c := range clients {
		c.n.Store(0)
	}
	payload := json.RawMessage(`{"text":"hello everyone, this is a benchmark message"}`)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := e.s.Publish(ctx, "chat:bench", payload, "server"); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/subs, "ns/delivery")
	var total int64
	for _, c := range clients {
		total += c.n.Load()
	}
	if total != int64(b.N)*subs {
		b.Fatalf("delivered %d, want %d", total, int64(b.N)*subs)
	}
}
