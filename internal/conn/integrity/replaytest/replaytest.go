// Package replaytest is the conformance suite every integrity.ReplayCache must
// pass: an atomic check-and-set (one first sighting under concurrent calls),
// expiry after the TTL, and failing closed on a TTL it cannot honour.
//
// Run(t, clock, newCache) builds a fresh cache per subtest; clock is the
// manual clock the cache reads, or nil for a cache on a real clock (Redis),
// for which the suite sleeps past short TTLs.
package replaytest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/conn/integrity"
	"github.com/wsgate/wsgate/internal/state/statetest"
)

// Run runs the suite.
func Run(t *testing.T, clock *statetest.Clock, newCache func(t *testing.T) integrity.ReplayCache) {
	statetest.Run(t, func(t *testing.T) any { return suite{newCache(t), clock} })
}

type suite statetest.Suite[integrity.ReplayCache]

var ctx = context.Background()

func seen(t *testing.T, c integrity.ReplayCache, key string, ttl time.Duration) bool {
	t.Helper()
	dup, err := c.Seen(ctx, key, ttl)
	if err != nil {
		t.Fatalf("Seen(%q): %v", key, err)
	}
	return dup
}

func (x suite) FirstThenDup(t *testing.T) {
	c := x.Store
	if seen(t, c, "n1", time.Minute) {
		t.Fatal("first sighting reported as a duplicate")
	}
	if !seen(t, c, "n1", time.Minute) {
		t.Fatal("second sighting not a duplicate")
	}
	if seen(t, c, "n2", time.Minute) {
		t.Fatal("another nonce reported as a duplicate")
	}
}

func (x suite) Concurrent(t *testing.T) {
	c := x.Store
	var first atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			dup, err := c.Seen(ctx, "nonce", time.Minute)
			if err != nil {
				t.Error(err)
			} else if !dup {
				first.Add(1)
			}
		})
	}
	wg.Wait()
	if first.Load() != 1 {
		t.Fatalf("%d of 16 concurrent sightings were first, want 1", first.Load())
	}
}

func (x suite) Expiry(t *testing.T) {
	c, clock := x.Store, x.Clock
	const ttl = 50 * time.Millisecond
	if seen(t, c, "n", ttl) || !seen(t, c, "n", ttl) {
		t.Fatal("nonce not remembered within its TTL")
	}
	clock.Pass(ttl + ttl/2)
	if seen(t, c, "n", time.Minute) {
		t.Fatal("expired nonce still a duplicate")
	}
}

func (x suite) BadTTL(t *testing.T) {
	c := x.Store
	for _, ttl := range []time.Duration{0, -time.Second} {
		if dup, err := c.Seen(ctx, "x", ttl); !dup || err == nil {
			t.Errorf("ttl %v: dup=%v err=%v, want a duplicate with an error (fail closed)", ttl, dup, err)
		}
	}
}
