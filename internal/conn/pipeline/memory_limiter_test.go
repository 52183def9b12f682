package pipeline

import (
	"context"
	"testing"

	"github.com/wsgate/wsgate/internal/conn/protocol"
	"github.com/wsgate/wsgate/internal/state/limit"
)

// TestFloodWithMemoryLimiter: the guide's flood of 2,000 messages on one connection is
// throttled and then closed with 1008, while another user on another connection (and
// address) keeps getting through.
func TestFloodWithMemoryLimiter(t *testing.T) {
	lim := limit.NewMemory(limit.MemoryOptions{MaxKeys: 10000, SweepInterval: -1})
	defer lim.Close()
	p := newTestPipeline(t, Options{Limiter: lim})
	ctx := context.Background()
	flooder := &ConnState{ConnID: "c1", User: "mallory", IP: "192.0.2.1"}
	other := &ConnState{ConnID: "c2", User: "alice", IP: "192.0.2.2"}
	ping := []byte(`{"type":"ping","id":1}`)
	closedAt, accepted := -1, 0
	for i := 0; i < 2000; i++ {
		_, rej := p.Process(ctx, flooder, ping)
		if rej == nil {
			accepted++
		} else if rej.Close == protocol.ReasonRateLimit {
			closedAt = i
			break
		}
		if i%100 == 0 {
			if _, rej := p.Process(ctx, other, ping); rej != nil {
				t.Fatalf("bystander refused at %d: %v", i, rej)
			}
		}
	}
	burst := DefaultTier().Messages.Burst
	if accepted < burst || accepted > burst+5 {
		t.Errorf("flooder got %d messages through, want about the burst %d", accepted, burst)
	}
	if closedAt < 0 {
		t.Fatal("flood never closed")
	}
	t.Logf("accepted %d, closed with 1008 at message %d", accepted, closedAt+1)
}

func BenchmarkProcessChat1KMemoryLimiter(b *testing.B) {
	lim := limit.NewMemory(limit.MemoryOptions{SweepInterval: -1})
	defer lim.Close()
	benchProcessChat1K(b, Options{Limiter: lim, Tiers: neverLimited()})
}
