// Package bantest is the conformance suite every ban.List must pass: bans in
// force until they expire, never shortened, the full list keeping the longest
// bans, subjects and reasons bounded, List sorted and in force only.
//
// Run(t, clock, newList) builds a fresh list per subtest, bounded to
// maxEntries; clock is the manual clock the list reads, or nil for a list on
// a real clock (Redis), for which the suite sleeps past short bans.
package bantest

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/wsgate/wsgate/internal/state/ban"
	"github.com/wsgate/wsgate/internal/state/statetest"
)

// NewList returns a fresh list bounded to maxEntries (0: the default).
type NewList func(t *testing.T, maxEntries int) ban.List

// Run runs the suite.
func Run(t *testing.T, clock *statetest.Clock, newList NewList) {
	statetest.Run(t, func(*testing.T) any { return suite{newList, clock} })
}

// suite's store is the list factory: cases choose the bound.
type suite statetest.Suite[NewList]

var ctx = context.Background()

func mustBan(t *testing.T, l ban.List, b ban.Ban) {
	t.Helper()
	if err := l.Ban(ctx, b); err != nil {
		t.Fatalf("Ban(%s): %v", b.Subject, err)
	}
}

func banned(t *testing.T, l ban.List, subject string) (ban.Ban, bool) {
	t.Helper()
	b, ok, err := l.Banned(ctx, subject)
	if err != nil {
		t.Fatalf("Banned(%s): %v", subject, err)
	}
	return b, ok
}

func subjects(t *testing.T, l ban.List) string {
	t.Helper()
	list, err := l.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	s := make([]string, len(list))
	for i, b := range list {
		s[i] = b.Subject
	}
	return strings.Join(s, ",")
}

func (x suite) BanExpireUnban(t *testing.T) {
	newList, clock := x.Store, x.Clock
	l := newList(t, 0)
	const short = 100 * time.Millisecond
	ip := ban.IPSubject("192.0.2.1")
	mustBan(t, l, ban.Ban{Subject: ip, Until: clock.Now().Add(short), Reason: "flood"})
	mustBan(t, l, ban.Ban{Subject: ban.UserSubject("mallory"), Reason: "operator"}) // permanent
	b, ok := banned(t, l, ip)
	if !ok || b.Reason != "flood" || b.Created.IsZero() || b.Permanent() {
		t.Fatalf("Banned = %+v, %v", b, ok)
	}
	if _, ok := banned(t, l, ban.IPSubject("192.0.2.2")); ok {
		t.Fatal("another subject banned")
	}
	clock.Pass(short + short/2)
	if _, ok := banned(t, l, ip); ok {
		t.Fatal("expired ban in force")
	}
	if b, ok := banned(t, l, "user:mallory"); !ok || !b.Permanent() {
		t.Fatalf("permanent ban: %+v, %v", b, ok)
	}
	must(t, l.Unban(ctx, "user:mallory"))
	must(t, l.Unban(ctx, "user:nobody")) // not banned: not an error
	if _, ok := banned(t, l, "user:mallory"); ok {
		t.Fatal("unbanned subject still banned")
	}
	// A ban that is already over is a no-op.
	mustBan(t, l, ban.Ban{Subject: "user:late", Until: clock.Now().Add(-time.Second)})
	if _, ok := banned(t, l, "user:late"); ok {
		t.Fatal("ban in the past in force")
	}
}

func (x suite) NeverShortens(t *testing.T) {
	newList, clock := x.Store, x.Clock
	l := newList(t, 0)
	now := clock.Now()
	mustBan(t, l, ban.Ban{Subject: "user:a", Until: now.Add(time.Hour), Reason: "r1"})
	mustBan(t, l, ban.Ban{Subject: "user:a", Until: now.Add(time.Minute), Reason: "r2"})
	if b, ok := banned(t, l, "user:a"); !ok || b.Until.Before(now.Add(59*time.Minute)) || b.Reason != "r1" {
		t.Fatalf("ban shortened: %+v, %v", b, ok)
	}
	mustBan(t, l, ban.Ban{Subject: "user:a", Until: now.Add(2 * time.Hour), Reason: "r3"})
	if b, _ := banned(t, l, "user:a"); b.Until.Before(now.Add(119*time.Minute)) || b.Reason != "r3" {
		t.Fatalf("ban not lengthened: %+v", b)
	}
	mustBan(t, l, ban.Ban{Subject: "user:a", Reason: "permanent"})
	mustBan(t, l, ban.Ban{Subject: "user:a", Until: now.Add(time.Hour)})
	if b, _ := banned(t, l, "user:a"); !b.Permanent() {
		t.Fatalf("permanent ban shortened: %+v", b)
	}
}

func (x suite) Inputs(t *testing.T) {
	newList, clock := x.Store, x.Clock
	l := newList(t, 0)
	for _, s := range []string{"", strings.Repeat("x", ban.MaxSubjectLen+1)} {
		if err := l.Ban(ctx, ban.Ban{Subject: s}); !errors.Is(err, ban.ErrInvalidSubject) {
			t.Errorf("subject of %d bytes: %v, want ErrInvalidSubject", len(s), err)
		}
	}
	mustBan(t, l, ban.Ban{Subject: strings.Repeat("x", ban.MaxSubjectLen), Until: clock.Now().Add(time.Hour)})
	mustBan(t, l, ban.Ban{Subject: "ip:y", Until: clock.Now().Add(time.Hour), Reason: strings.Repeat("é", ban.MaxReasonLen)})
	b, _ := banned(t, l, "ip:y")
	if len(b.Reason) > ban.MaxReasonLen || len(b.Reason) < ban.MaxReasonLen-1 || !utf8.ValidString(b.Reason) {
		t.Fatalf("reason of %d bytes (valid %v), want cut to %d without splitting a rune", len(b.Reason), utf8.ValidString(b.Reason), ban.MaxReasonLen)
	}
}

func (x suite) FullKeepsLongest(t *testing.T) {
	newList, clock := x.Store, x.Clock
	l := newList(t, 3) // small bounds are exact (one shard)
	now := clock.Now()
	mustBan(t, l, ban.Ban{Subject: "user:a", Until: now.Add(time.Hour)})
	mustBan(t, l, ban.Ban{Subject: "user:p"}) // permanent
	mustBan(t, l, ban.Ban{Subject: "user:s", Until: now.Add(10 * time.Minute)})
	if err := l.Ban(ctx, ban.Ban{Subject: "user:x", Until: now.Add(5 * time.Minute)}); !errors.Is(err, ban.ErrFull) {
		t.Fatalf("ban shorter than every stored one on a full list: %v, want ErrFull", err)
	}
	mustBan(t, l, ban.Ban{Subject: "user:y", Until: now.Add(2 * time.Hour)}) // pushes out user:s
	if got := subjects(t, l); got != "user:a,user:p,user:y" {
		t.Fatalf("List = %s, want user:a,user:p,user:y", got)
	}
	// Permanent bans are never pushed out by timed ones.
	mustBan(t, l, ban.Ban{Subject: "user:q"}) // pushes out user:a
	if err := l.Ban(ctx, ban.Ban{Subject: "user:z", Until: now.Add(24 * time.Hour)}); err != nil {
		t.Fatalf("ban outlasting user:y: %v", err) // pushes out user:y
	}
	if err := l.Ban(ctx, ban.Ban{Subject: "user:w", Until: now.Add(time.Hour)}); !errors.Is(err, ban.ErrFull) {
		t.Fatalf("timed ban against permanent ones: %v, want ErrFull", err)
	}
	if got := subjects(t, l); got != "user:p,user:q,user:z" {
		t.Fatalf("List = %s, want user:p,user:q,user:z", got)
	}
}

func (x suite) List(t *testing.T) {
	newList, clock := x.Store, x.Clock
	l := newList(t, 0)
	if got := subjects(t, l); got != "" {
		t.Fatalf("empty list: %s", got)
	}
	now := clock.Now()
	mustBan(t, l, ban.Ban{Subject: "user:c", Until: now.Add(time.Hour)})
	mustBan(t, l, ban.Ban{Subject: "ip:10.0.0.1", Until: now.Add(100 * time.Millisecond)})
	mustBan(t, l, ban.Ban{Subject: "user:a"})
	if got := subjects(t, l); got != "ip:10.0.0.1,user:a,user:c" {
		t.Fatalf("List = %s", got)
	}
	clock.Pass(150 * time.Millisecond)
	if got := subjects(t, l); got != "user:a,user:c" {
		t.Fatalf("List after a ban expired = %s", got)
	}
}

func (x suite) Concurrent(t *testing.T) {
	newList, clock := x.Store, x.Clock
	l := newList(t, 0)
	until := clock.Now().Add(time.Hour)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 20 {
				s := ban.UserSubject(string(rune('a'+g)) + strings.Repeat("x", i))
				if err := l.Ban(ctx, ban.Ban{Subject: s, Until: until}); err != nil {
					t.Error(err)
					return
				}
				if _, ok, err := l.Banned(ctx, s); !ok || err != nil {
					t.Errorf("Banned(%s) right after Ban: %v, %v", s, ok, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if list, err := l.List(ctx); err != nil || len(list) != 80 {
		t.Fatalf("List: %d bans, %v; want 80", len(list), err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
