package fakeclock

import (
	"sync"
	"testing"
	"time"
)

func TestClock(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 5)
	c := New(t0)
	if !c.Now().Equal(t0) {
		t.Fatalf("Now = %v, want %v", c.Now(), t0)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { c.Advance(time.Second); _ = c.Now() })
	}
	wg.Wait()
	if got := c.Now().Sub(t0); got != 8*time.Second {
		t.Fatalf("advanced %v, want 8s", got)
	}
	c.Set(t0)
	c.Advance(-time.Minute)
	if !c.Now().Equal(t0.Add(-time.Minute)) {
		t.Fatalf("Now = %v after going back", c.Now())
	}
}
