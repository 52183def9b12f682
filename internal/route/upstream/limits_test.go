package upstream

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/state/limit"
)

type failingLimiter struct{}

func (failingLimiter) Allow(context.Context, string, limit.Limit, int) (bool, time.Duration, error) {
	return false, 0, errors.New("store down")
}

func TestRawLimiter(t *testing.T) {
	mem := limit.NewMemory(limit.MemoryOptions{})
	defer mem.Close()
	r := &RawLimiter{Limiter: mem, Tiers: map[string]RawTier{
		"default": {Messages: limit.Limit{Rate: 0.001, Burst: 2}, IPBytes: limit.Limit{Rate: 0.001, Burst: 100}},
	}}
	ctx := context.Background()
	c := RawConn{ConnID: "c1", User: "u", IP: "1.2.3.4", Tier: "unknown-tier"}
	for i := range 2 {
		if ok, _, err := r.Allow(ctx, c, 10); !ok || err != nil {
			t.Fatalf("message %d refused: %v", i, err)
		}
	}
	if ok, retry, err := r.Allow(ctx, c, 10); ok || err != nil || retry <= 0 {
		t.Fatalf("third message: ok %v retry %v err %v", ok, retry, err)
	}
	// Another connection from the same IP shares the IP byte budget (80 left).
	c2 := RawConn{ConnID: "c2", IP: "1.2.3.4"}
	if ok, _, _ := r.Allow(ctx, c2, 90); ok {
		t.Fatal("IP byte budget not shared")
	}
	// Store failures: closed by default, open when asked.
	r2 := &RawLimiter{Limiter: failingLimiter{}, Tiers: r.Tiers}
	if ok, _, err := r2.Allow(ctx, c, 1); ok || err == nil {
		t.Fatal("fail-closed limiter let a message through")
	}
	r2.FailOpen = true
	if ok, _, err := r2.Allow(ctx, c, 1); !ok || err != nil {
		t.Fatal("fail-open limiter refused")
	}
	var none *RawLimiter
	if ok, _, _ := none.Allow(ctx, c, 1); !ok {
		t.Fatal("nil limiter refused")
	}
}
