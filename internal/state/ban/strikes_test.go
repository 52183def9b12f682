package ban_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/state/ban"
	"github.com/wsgate/wsgate/internal/state/statetest"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/wait"
)

type strikesEnv struct {
	c    *statetest.Clock
	list *ban.MemoryList
	s    *ban.Strikes
	mu   sync.Mutex
	bans []ban.Ban
}

func newStrikes(t *testing.T, p ban.Policy, opts ban.StrikesOptions) *strikesEnv {
	t.Helper()
	e := &strikesEnv{c: statetest.New()}
	e.list = newList(0, e.c)
	if opts.SweepInterval == 0 {
		opts.SweepInterval = -1
	}
	opts.Now = e.c.Now
	opts.OnBan = func(b ban.Ban) {
		e.mu.Lock()
		e.bans = append(e.bans, b)
		e.mu.Unlock()
	}
	e.s = ban.NewStrikes(p, e.list, opts)
	t.Cleanup(func() { _ = e.s.Close() })
	return e
}

func (e *strikesEnv) record(t *testing.T, ip, user string) bool {
	t.Helper()
	b, err := e.s.Record(context.Background(), ip, user, "bad frame")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestStrikesBanOnMax(t *testing.T) {
	e := newStrikes(t, ban.DefaultPolicy(), ban.StrikesOptions{})
	for i := range 9 {
		if e.record(t, "192.0.2.1", "alice") {
			t.Fatalf("banned after %d strikes", i+1)
		}
	}
	if n := e.s.Count(ban.IPSubject("192.0.2.1")); n != 9 {
		t.Fatalf("Count = %d, want 9", n)
	}
	if !e.record(t, "192.0.2.1", "alice") {
		t.Fatal("not banned on the 10th strike")
	}
	for _, s := range []string{"ip:192.0.2.1", "user:alice"} {
		b, ok := banned(t, e.list, s)
		if !ok || b.Reason != "bad frame" || !b.Until.Equal(e.c.Now().Add(ban.DefaultBanTTL)) {
			t.Fatalf("%s: %+v %v", s, b, ok)
		}
		if n := e.s.Count(s); n != 0 {
			t.Fatalf("%s count not reset: %d", s, n)
		}
	}
	if len(e.bans) != 2 {
		t.Fatalf("OnBan called %d times, want 2", len(e.bans))
	}
	if e.s.Len() != 0 {
		t.Fatalf("state kept after ban: %d", e.s.Len())
	}
}

func TestStrikesSlidingWindow(t *testing.T) {
	p := ban.DefaultPolicy()
	e := newStrikes(t, p, ban.StrikesOptions{})
	// 10 strikes spread over 54s: a fixed 60s window could split them; a sliding
	// one must ban.
	for i := range 10 {
		if i > 0 {
			e.c.Advance(6 * time.Second)
		}
		if got := e.record(t, "192.0.2.7", ""); got != (i == 9) {
			t.Fatalf("strike %d: banned=%v", i+1, got)
		}
	}
	// 9 strikes, then the window passes (at most Window+Window/15): they are forgotten.
	for range 9 {
		e.record(t, "192.0.2.8", "")
	}
	e.c.Advance(p.Window - time.Nanosecond)
	if n := e.s.Count("ip:192.0.2.8"); n != 9 {
		t.Fatalf("strikes forgotten before Window: %d", n)
	}
	e.c.Advance(p.Window/15 + time.Nanosecond)
	if n := e.s.Count("ip:192.0.2.8"); n != 0 {
		t.Fatalf("strikes kept after Window+Window/15: %d", n)
	}
	if e.record(t, "192.0.2.8", "") {
		t.Fatal("banned on old strikes")
	}
}

func TestStrikesPolicy(t *testing.T) {
	// BanIP only: users are neither counted nor banned.
	e := newStrikes(t, ban.Policy{MaxStrikes: 3, BanIP: true}, ban.StrikesOptions{})
	for range 3 {
		e.record(t, "192.0.2.1", "bob")
	}
	if _, ok := banned(t, e.list, "user:bob"); ok {
		t.Fatal("user banned with BanUser=false")
	}
	if _, ok := banned(t, e.list, "ip:192.0.2.1"); !ok {
		t.Fatal("ip not banned")
	}
	// Hot reload: lower MaxStrikes takes effect on live counts; both-false means both.
	e.s.SetPolicy(ban.Policy{MaxStrikes: 2, BanTTL: time.Hour})
	got := e.s.Policy()
	if !got.BanIP || !got.BanUser || got.Window != ban.DefaultWindow || got.BanTTL != time.Hour {
		t.Fatalf("policy defaults: %+v", got)
	}
	e.record(t, "", "carol")
	if !e.record(t, "", "carol") {
		t.Fatal("not banned at new MaxStrikes")
	}
	if b, _ := banned(t, e.list, "user:carol"); !b.Until.Equal(e.c.Now().Add(time.Hour)) {
		t.Fatalf("BanTTL not applied: %+v", b)
	}
	if err := (ban.Policy{Window: -1, MaxStrikes: -1, BanTTL: -1}).Validate(); err == nil {
		t.Fatal("negative policy accepted")
	}
	if err := ban.DefaultPolicy().Validate(); err != nil {
		t.Fatal(err)
	}
}

type failingList struct{ *ban.MemoryList }

var errListDown = errors.New("list down")

func (failingList) Ban(context.Context, ban.Ban) error { return errListDown }

func TestStrikesListError(t *testing.T) {
	var calls atomic.Int32
	s := ban.NewStrikes(ban.Policy{MaxStrikes: 1}, failingList{ban.NewMemoryList(1)}, ban.StrikesOptions{
		SweepInterval: -1, OnBan: func(ban.Ban) { calls.Add(1) },
	})
	defer s.Close()
	b, err := s.Record(context.Background(), "192.0.2.1", "u", "x")
	if b || !errors.Is(err, errListDown) {
		t.Fatalf("Record = %v, %v", b, err)
	}
	if calls.Load() != 0 {
		t.Fatal("OnBan called for a failed ban")
	}
}

func TestStrikesConcurrentExact(t *testing.T) {
	e := newStrikes(t, ban.Policy{MaxStrikes: 10, BanIP: true}, ban.StrikesOptions{})
	var bans atomic.Int64
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			for range 50 {
				b, err := e.s.Record(context.Background(), "192.0.2.1", "", "x")
				if err != nil {
					t.Error(err)
				}
				if b {
					bans.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if bans.Load() != 100 || len(e.bans) != 100 {
		t.Fatalf("1000 strikes gave %d bans (%d events), want 100", bans.Load(), len(e.bans))
	}
}

func TestStrikesBounded(t *testing.T) {
	e := newStrikes(t, ban.DefaultPolicy(), ban.StrikesOptions{MaxKeys: 1000})
	for i := range 100_000 {
		e.record(t, fmt.Sprintf("10.%d.%d.%d", i>>16&0xff, i>>8&0xff, i&0xff), fmt.Sprint("u", i))
	}
	if n := e.s.Len(); n > 1000+15 {
		t.Fatalf("Len = %d, bound ~1000", n)
	}
}

func TestStrikesEvictsIdleThenLeastRecent(t *testing.T) {
	// MaxKeys 8: one shard whose whole content is sampled, so eviction is deterministic.
	e := newStrikes(t, ban.Policy{MaxStrikes: 100, BanIP: true}, ban.StrikesOptions{MaxKeys: 8})
	for i := range 7 {
		e.record(t, fmt.Sprint("old", i), "")
	}
	e.c.Advance(2 * time.Minute) // the 7 are idle
	for range 5 {
		e.record(t, "hot", "")
	}
	e.c.Advance(5 * time.Second) // more than one 4s bucket: recency is bucket-grained
	e.record(t, "new0", "")      // full: drops all idle subjects, keeps "hot"
	if e.s.Len() != 2 || e.s.Count("ip:hot") != 5 {
		t.Fatalf("Len=%d hot=%d", e.s.Len(), e.s.Count("ip:hot"))
	}
	for i := 1; i < 7; i++ {
		e.c.Advance(5 * time.Second)
		e.record(t, fmt.Sprint("new", i), "")
	}
	e.c.Advance(5 * time.Second)
	e.record(t, "newest", "") // full of live subjects: the least recently struck ("hot") goes
	if e.s.Len() != 8 || e.s.Count("ip:hot") != 0 || e.s.Count("ip:new0") != 1 {
		t.Fatalf("Len=%d hot=%d new0=%d", e.s.Len(), e.s.Count("ip:hot"), e.s.Count("ip:new0"))
	}
}

func TestStrikesSweeper(t *testing.T) {
	s := ban.NewStrikes(ban.Policy{Window: 30 * time.Millisecond}, ban.NewMemoryList(10), ban.StrikesOptions{SweepInterval: 5 * time.Millisecond})
	for i := range 50 {
		_, _ = s.Record(context.Background(), fmt.Sprint("192.0.2.", i), "", "x")
	}
	wait.For(t, "the sweeper to drop every subject", 5*time.Second, func() bool { return s.Len() == 0 })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
}

// fakeCounter is a shared counter that counts per subject, or fails.
type fakeCounter struct {
	mu   sync.Mutex
	n    map[string]int
	fail bool
}

func (f *fakeCounter) Strike(_ context.Context, subject string, _ time.Duration, max int) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return false, errors.New("store down")
	}
	f.n[subject]++
	if f.n[subject] >= max {
		delete(f.n, subject)
		return true, nil
	}
	return false, nil
}

func TestStrikesSharedCounterAndKick(t *testing.T) {
	fc := &fakeCounter{n: map[string]int{}}
	var kicked []string
	e := newStrikes(t, ban.Policy{MaxStrikes: 3, BanUser: true}, ban.StrikesOptions{
		Counter: fc,
		Kick: func(_ context.Context, subject string) error {
			kicked = append(kicked, subject)
			return nil
		},
	})
	// Two strikes counted elsewhere (another node) plus one here reach 3.
	fc.n["user:carol"] = 2
	if !e.record(t, "", "carol") {
		t.Fatal("shared count reaching max did not ban")
	}
	if e.s.Count("user:carol") != 0 || len(kicked) != 1 || kicked[0] != "user:carol" {
		t.Fatalf("local count %d, kicked %v; want 0 and [user:carol]", e.s.Count("user:carol"), kicked)
	}
	// The counter failing: strikes are counted in memory, so bans still happen.
	fc.mu.Lock()
	fc.fail = true
	fc.mu.Unlock()
	for i := range 2 {
		if e.record(t, "", "dave") {
			t.Fatalf("banned after %d strikes, want 3", i+1)
		}
	}
	if !e.record(t, "", "dave") {
		t.Fatal("fallback count did not ban at max")
	}
}

func TestStrikesKickErrorReturned(t *testing.T) {
	e := newStrikes(t, ban.Policy{MaxStrikes: 1, BanUser: true}, ban.StrikesOptions{
		Kick: func(context.Context, string) error { return errors.New("publish failed") },
	})
	banned, err := e.s.Record(context.Background(), "", "erin", "x")
	if !banned || err == nil {
		t.Fatalf("banned=%v err=%v; want the ban placed and the kick error returned", banned, err)
	}
	if _, ok, _ := e.list.Banned(context.Background(), "user:erin"); !ok {
		t.Fatal("ban not stored")
	}
}
