// Package tickettest is the conformance suite every ticket.Store must pass:
// single use under concurrent Takes, no overwrite of a live ticket, expiry,
// bounded keys, and a payload that is the caller's copy.
//
// Run(t, clock, newStore) builds a fresh store per subtest; clock is the
// manual clock the store reads, or nil for a store on a real clock (Redis),
// for which the suite sleeps past short TTLs.
package tickettest

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/state/statetest"
	"github.com/wsgate/wsgate/internal/state/ticket"
)

// Run runs the suite.
func Run(t *testing.T, clock *statetest.Clock, newStore func(t *testing.T) ticket.Store) {
	statetest.Run(t, func(t *testing.T) any { return suite{newStore(t), clock} })
}

type suite statetest.Suite[ticket.Store]

var ctx = context.Background()

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (x suite) PutTakeOnce(t *testing.T) {
	s := x.Store
	must(t, s.Put(ctx, "t1", []byte("alice"), time.Minute))
	if p, err := s.Take(ctx, "t1"); err != nil || string(p) != "alice" {
		t.Fatalf("Take = %q, %v", p, err)
	}
	if _, err := s.Take(ctx, "t1"); !errors.Is(err, ticket.ErrNotFound) {
		t.Fatalf("second Take: %v, want ErrNotFound", err)
	}
	if _, err := s.Take(ctx, "never"); !errors.Is(err, ticket.ErrNotFound) {
		t.Fatalf("Take of an unknown ticket: %v, want ErrNotFound", err)
	}
}

func (x suite) NoOverwrite(t *testing.T) {
	s := x.Store
	must(t, s.Put(ctx, "t1", []byte("alice"), time.Minute))
	if err := s.Put(ctx, "t1", []byte("mallory"), time.Minute); !errors.Is(err, ticket.ErrExists) {
		t.Fatalf("second Put: %v, want ErrExists", err)
	}
	if p, err := s.Take(ctx, "t1"); err != nil || string(p) != "alice" {
		t.Fatalf("Take after a refused Put = %q, %v", p, err)
	}
}

func (x suite) ConcurrentTake(t *testing.T) {
	s := x.Store
	must(t, s.Put(ctx, "t1", []byte("alice"), time.Minute))
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			p, err := s.Take(ctx, "t1")
			switch {
			case err == nil && string(p) == "alice":
				wins.Add(1)
			case !errors.Is(err, ticket.ErrNotFound):
				t.Errorf("Take: %q, %v", p, err)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d concurrent Takes succeeded, want 1", wins.Load())
	}
}

func (x suite) Expiry(t *testing.T) {
	s, clock := x.Store, x.Clock
	const ttl = 50 * time.Millisecond
	must(t, s.Put(ctx, "short", []byte("x"), ttl))
	must(t, s.Put(ctx, "long", []byte("y"), time.Hour))
	clock.Pass(ttl + ttl/2)
	if _, err := s.Take(ctx, "short"); !errors.Is(err, ticket.ErrNotFound) {
		t.Fatalf("expired ticket: %v, want ErrNotFound", err)
	}
	// An expired ticket's key can be issued again.
	must(t, s.Put(ctx, "short", []byte("z"), time.Minute))
	if p, err := s.Take(ctx, "long"); err != nil || string(p) != "y" {
		t.Fatalf("live ticket after another expired: %q, %v", p, err)
	}
}

func (x suite) Invalid(t *testing.T) {
	s := x.Store
	long := strings.Repeat("x", 257)
	for name, err := range map[string]error{
		"empty key": s.Put(ctx, "", nil, time.Minute),
		"long key":  s.Put(ctx, long, nil, time.Minute),
		"zero ttl":  s.Put(ctx, "t2", nil, 0),
		"neg ttl":   s.Put(ctx, "t3", nil, -time.Second),
	} {
		if err == nil {
			t.Errorf("Put with %s accepted", name)
		}
	}
	for _, k := range []string{"", long} {
		if _, err := s.Take(ctx, k); !errors.Is(err, ticket.ErrNotFound) {
			t.Errorf("Take(%.8q…): %v, want ErrNotFound", k, err)
		}
	}
}

func (x suite) PayloadCopied(t *testing.T) {
	s := x.Store
	p := []byte("alice")
	must(t, s.Put(ctx, "t1", p, time.Minute))
	copy(p, "mallo")
	if got, err := s.Take(ctx, "t1"); err != nil || string(got) != "alice" {
		t.Fatalf("Take = %q, %v: the store kept the caller's slice", got, err)
	}
}
