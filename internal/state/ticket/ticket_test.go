package ticket

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wsgate/wsgate/internal/edge/auth"
	"github.com/wsgate/wsgate/internal/state/statetest"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/wait"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newStore(t *testing.T, max int, clk *statetest.Clock) *MemoryStore {
	s := NewMemoryStore(MemoryOptions{MaxEntries: max, SweepInterval: -1, Now: clk.Now})
	t.Cleanup(s.Close)
	return s
}

func ident(clk *statetest.Clock, ttl time.Duration) auth.Identity {
	return auth.Identity{
		Subject:   "alice",
		Claims:    map[string]any{"sub": "alice", "tier": "pro", "n": json.Number("12345678901234567")},
		ExpiresAt: clk.Now().Add(ttl),
		IssuedAt:  clk.Now(),
		Source:    auth.IdentitySourceJWT,
	}
}

func TestLenConstant(t *testing.T) {
	if Len != base64.RawURLEncoding.EncodedLen(ticketBytes) {
		t.Fatal("Len out of sync")
	}
}

func TestIssueRedeem(t *testing.T) {
	clk := statetest.New()
	iss := &Issuer{Store: newStore(t, 100, clk), Now: clk.Now}
	id := ident(clk, time.Hour)
	tk, exp, err := iss.Issue(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if !ValidFormat(tk) || !exp.Equal(clk.Now().Add(DefaultTTL)) {
		t.Fatalf("ticket %q exp %v", tk, exp)
	}
	got, err := iss.Redeem(context.Background(), tk)
	if err != nil {
		t.Fatal(err)
	}
	if got.Subject != "alice" || got.Source != "ticket" || !got.ExpiresAt.Equal(id.ExpiresAt) || got.Tier("tier") != "pro" {
		t.Fatalf("redeemed %+v", got)
	}
	if n, ok := got.Claims["n"].(json.Number); !ok || n != "12345678901234567" {
		t.Fatalf("claim n = %#v", got.Claims["n"])
	}
	if _, err := iss.Redeem(context.Background(), tk); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second redeem: %v", err)
	}
}

func TestRedeemConcurrentSingleUse(t *testing.T) {
	clk := statetest.New()
	iss := NewIssuer(NewMemoryStore(MemoryOptions{}), 0)
	defer iss.Store.(*MemoryStore).Close()
	iss.Now = clk.Now
	for round := range 5 {
		tk, _, err := iss.Issue(context.Background(), ident(clk, time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		var wins, notFound atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range 100 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, err := iss.Redeem(context.Background(), tk)
				switch {
				case err == nil:
					wins.Add(1)
				case errors.Is(err, ErrNotFound):
					notFound.Add(1)
				default:
					t.Error(err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if wins.Load() != 1 || notFound.Load() != 99 {
			t.Fatalf("round %d: wins=%d notFound=%d", round, wins.Load(), notFound.Load())
		}
	}
}

func TestExpiry(t *testing.T) {
	clk := statetest.New()
	iss := &Issuer{Store: newStore(t, 100, clk), TTL: 10 * time.Second, Now: clk.Now}
	tk, _, err := iss.Issue(context.Background(), ident(clk, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(10 * time.Second)
	if _, err := iss.Redeem(context.Background(), tk); !errors.Is(err, ErrNotFound) {
		t.Fatalf("expired ticket: %v", err)
	}
	// A ticket never outlives the identity's token.
	tk, exp, err := iss.Issue(context.Background(), ident(clk, 3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if !exp.Equal(clk.Now().Add(3 * time.Second)) {
		t.Fatalf("exp = %v", exp)
	}
	clk.Advance(3 * time.Second)
	if _, err := iss.Redeem(context.Background(), tk); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ticket outlived token: %v", err)
	}
	if _, _, err := iss.Issue(context.Background(), ident(clk, -time.Second)); err == nil {
		t.Fatal("issued for an expired identity")
	}
	if _, _, err := iss.Issue(context.Background(), auth.Identity{}); err == nil {
		t.Fatal("issued for an empty identity")
	}
}

// The memory store's bound, beside the suite (internal/state/ticket/tickettest).
func TestStoreBounds(t *testing.T) {
	clk := statetest.New()
	s := newStore(t, 10, clk)
	ctx := context.Background()
	for i := range 10 {
		if err := s.Put(ctx, fmt.Sprint("k", i), []byte("v"), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Put(ctx, "k10", []byte("v"), time.Minute); !errors.Is(err, ErrFull) {
		t.Fatalf("11th put: %v", err)
	}
	if err := s.Put(ctx, "k1", []byte("v"), time.Minute); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate put: %v", err)
	}
	if _, err := s.Take(ctx, "k0"); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "k10", []byte("v"), time.Minute); err != nil {
		t.Fatalf("after take: %v", err)
	}
	// Once entries expire, a full store makes room by dropping them only.
	clk.Advance(time.Minute)
	if err := s.Put(ctx, "fresh", []byte("v"), time.Minute); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
	if s.Len() != 1 {
		t.Fatalf("Len = %d", s.Len())
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Put(cctx, "y", nil, time.Second); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled put: %v", err)
	}
}

func TestShardedStoreBound(t *testing.T) {
	clk := statetest.New()
	s := newStore(t, 2048, clk)
	ctx := context.Background()
	n := 0
	for i := range 5000 {
		if err := s.Put(ctx, fmt.Sprint("k", i), nil, time.Minute); err == nil {
			n++
		} else if !errors.Is(err, ErrFull) {
			t.Fatal(err)
		}
	}
	if n > 2048 || s.Len() != n {
		t.Fatalf("stored %d (Len %d), bound 2048", n, s.Len())
	}
}

func TestMalformedNeverTouchesStore(t *testing.T) {
	spy := &spyStore{}
	iss := &Issuer{Store: spy}
	for _, s := range []string{"", "short", strings.Repeat("a", Len-1) + "=", strings.Repeat("a", Len+1), strings.Repeat("a", Len-1) + "/", strings.Repeat("é", Len)} {
		if _, err := iss.Redeem(context.Background(), s); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%q: %v", s, err)
		}
	}
	if spy.takes.Load() != 0 {
		t.Fatal("store consulted for a malformed ticket")
	}
}

func TestSweeperAndClose(t *testing.T) {
	clk := statetest.New()
	s := NewMemoryStore(MemoryOptions{MaxEntries: 10, SweepInterval: time.Millisecond, Now: clk.Now})
	if err := s.Put(context.Background(), "a", nil, time.Second); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Second)
	wait.For(t, "the sweeper to drop the expired ticket", 5*time.Second, func() bool { return s.Len() == 0 })
	s.Close()
	s.Close()
	goleak.VerifyNone(t) // the sweeper is gone once Close returns
}

type spyStore struct{ takes, puts atomic.Int32 }

func (s *spyStore) Put(context.Context, string, []byte, time.Duration) error {
	s.puts.Add(1)
	return nil
}

func (s *spyStore) Take(context.Context, string) ([]byte, error) {
	s.takes.Add(1)
	return nil, ErrNotFound
}

func BenchmarkIssueRedeem(b *testing.B) {
	s := NewMemoryStore(MemoryOptions{})
	defer s.Close()
	iss := NewIssuer(s, 0)
	id := auth.Identity{Subject: "alice", ExpiresAt: time.Now().Add(time.Hour), Claims: map[string]any{"sub": "alice"}}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tk, _, err := iss.Issue(context.Background(), id)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := iss.Redeem(context.Background(), tk); err != nil {
				b.Fatal(err)
			}
		}
	})
}
