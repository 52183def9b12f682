package ban_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wsgate/wsgate/internal/state/ban"
	"github.com/wsgate/wsgate/internal/state/ban/bantest"
	"github.com/wsgate/wsgate/internal/state/statetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newList(max int, c *statetest.Clock) *ban.MemoryList {
	l := ban.NewMemoryList(max)
	ban.SetListClock(l, c.Now)
	return l
}

func mustBan(t *testing.T, l ban.List, b ban.Ban) {
	t.Helper()
	if err := l.Ban(context.Background(), b); err != nil {
		t.Fatalf("Ban(%s): %v", b.Subject, err)
	}
}

func banned(t *testing.T, l ban.List, subject string) (ban.Ban, bool) {
	t.Helper()
	b, ok, err := l.Banned(context.Background(), subject)
	if err != nil {
		t.Fatal(err)
	}
	return b, ok
}

func TestListBanExpireUnban(t *testing.T) {
	c := statetest.New()
	l := newList(0, c)
	ctx := context.Background()
	ip := ban.IPSubject("192.0.2.1")
	mustBan(t, l, ban.Ban{Subject: ip, Until: c.Now().Add(time.Minute), Reason: "flood"})
	mustBan(t, l, ban.Ban{Subject: ban.UserSubject("mallory"), Reason: "operator"}) // permanent

	b, ok := banned(t, l, ip)
	if !ok || b.Reason != "flood" || !b.Created.Equal(c.Now()) {
		t.Fatalf("Banned = %+v, %v", b, ok)
	}
	if _, ok := banned(t, l, ban.IPSubject("192.0.2.2")); ok {
		t.Fatal("unrelated subject banned")
	}
	c.Advance(time.Minute)
	if _, ok := banned(t, l, ip); ok {
		t.Fatal("ban reported at its expiry")
	}
	if l.Len() != 1 {
		t.Fatalf("expired ban not dropped: Len=%d", l.Len())
	}
	c.Advance(100 * 365 * 24 * time.Hour)
	if b, ok := banned(t, l, "user:mallory"); !ok || !b.Permanent() {
		t.Fatal("permanent ban expired")
	}
	list, err := l.List(ctx)
	if err != nil || len(list) != 1 || list[0].Subject != "user:mallory" {
		t.Fatalf("List = %+v, %v", list, err)
	}
	if err := l.Unban(ctx, "user:mallory"); err != nil {
		t.Fatal(err)
	}
	if err := l.Unban(ctx, "user:nobody"); err != nil {
		t.Fatal(err)
	}
	if _, ok := banned(t, l, "user:mallory"); ok || l.Len() != 0 {
		t.Fatal("Unban did not remove")
	}
}

// Memory specifics beside the suite's input checks: a ban already over is not
// stored, and a far-future Until does not overflow into the past.
func TestListInputs(t *testing.T) {
	c := statetest.New()
	l := newList(0, c)
	mustBan(t, l, ban.Ban{Subject: "ip:x", Until: c.Now().Add(-time.Second)})
	if l.Len() != 0 {
		t.Fatal("expired ban stored")
	}
	mustBan(t, l, ban.Ban{Subject: "ip:z", Until: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)})
	if _, ok := banned(t, l, "ip:z"); !ok {
		t.Fatal("year-3000 ban not in force")
	}
}

func TestListFullKeepsLongestBans(t *testing.T) {
	c := statetest.New()
	l := newList(10, c) // one shard of 10
	now := c.Now()
	mustBan(t, l, ban.Ban{Subject: "user:op", Reason: "permanent"})
	for i := range 9 {
		mustBan(t, l, ban.Ban{Subject: fmt.Sprint("ip:", i), Until: now.Add(time.Duration(i+10) * time.Minute)})
	}
	// Shorter than everything stored: refused.
	err := l.Ban(context.Background(), ban.Ban{Subject: "ip:short", Until: now.Add(time.Minute)})
	if !errors.Is(err, ban.ErrFull) {
		t.Fatalf("short ban into a full list: %v, want ErrFull", err)
	}
	// Longer: evicts the soonest expiring (ip:0, 10m).
	mustBan(t, l, ban.Ban{Subject: "ip:long", Until: now.Add(time.Hour)})
	if _, ok := banned(t, l, "ip:0"); ok {
		t.Fatal("soonest-expiring ban not evicted")
	}
	if _, ok := banned(t, l, "ip:1"); !ok {
		t.Fatal("wrong ban evicted")
	}
	// Once bans expire, short bans fit again without evicting live ones.
	c.Advance(15 * time.Minute) // ip:1..ip:5 (11m..15m) expired
	for i := range 5 {
		mustBan(t, l, ban.Ban{Subject: fmt.Sprint("ip:new", i), Until: c.Now().Add(time.Minute)})
	}
	if l.Len() != 10 {
		t.Fatalf("Len = %d, want 10", l.Len())
	}
	for _, s := range []string{"user:op", "ip:long", "ip:6", "ip:8"} {
		if _, ok := banned(t, l, s); !ok {
			t.Fatalf("%s lost", s)
		}
	}
}

func TestListBoundedUnderFlood(t *testing.T) {
	c := statetest.New()
	l := newList(2000, c)
	for i := range 100_000 {
		c.Advance(time.Millisecond) // later bans outlast earlier ones
		mustBan(t, l, ban.Ban{Subject: ban.IPSubject(fmt.Sprintf("10.%d.%d.%d", i>>16&0xff, i>>8&0xff, i&0xff)), Until: c.Now().Add(10 * time.Minute)})
	}
	if n := l.Len(); n > 2000+15 {
		t.Fatalf("Len = %d, bound ~2000", n)
	}
	// The newest bans are the ones kept.
	if _, ok := banned(t, l, ban.IPSubject("10.1.134.159")); !ok { // i = 99,999
		t.Fatal("newest ban lost")
	}
}

func TestListConcurrent(t *testing.T) {
	l := ban.NewMemoryList(500)
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 500 {
				s := ban.IPSubject(fmt.Sprintf("10.0.%d.%d", g, i%50))
				switch i % 4 {
				case 0:
					_ = l.Ban(ctx, ban.Ban{Subject: s, Until: time.Now().Add(time.Duration(i) * time.Millisecond)})
				case 1:
					_, _, _ = l.Banned(ctx, s)
				case 2:
					_ = l.Unban(ctx, s)
				case 3:
					if i%40 == 3 {
						_, _ = l.List(ctx)
					}
				}
			}
		})
	}
	wg.Wait()
	if n := l.Len(); n > 500 {
		t.Fatalf("Len = %d > 500", n)
	}
}

func TestSubjects(t *testing.T) {
	cases := map[string]string{
		"192.0.2.1":            "ip:192.0.2.1",
		"::ffff:192.0.2.1":     "ip:192.0.2.1",
		"2001:DB8:0:0:0:0:0:1": "ip:2001:db8::1",
		"fe80::1%eth0":         "ip:fe80::1",
		"not-an-ip":            "ip:not-an-ip",
	}
	for in, want := range cases {
		if got := ban.IPSubject(in); got != want {
			t.Errorf("IPSubject(%q) = %q, want %q", in, got, want)
		}
	}
	if got := ban.UserSubject("alice"); got != "user:alice" {
		t.Errorf("UserSubject = %q", got)
	}
}

func TestMemoryListConformance(t *testing.T) {
	c := statetest.New()
	bantest.Run(t, c, func(t *testing.T, max int) ban.List { return newList(max, c) })
}
