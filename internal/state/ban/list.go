package ban

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/wsgate/wsgate/internal/defaults"
	"github.com/wsgate/wsgate/internal/state/shardmap"
	"github.com/wsgate/wsgate/internal/truncate"
)

// Limits on stored strings, so that a list full of bans stays small whatever
// subjects (user names come from tokens) and reasons it is given.
const (
	MaxSubjectLen = 512 // longer subjects are refused with ErrInvalidSubject
	MaxReasonLen  = 256 // longer reasons are truncated
)

// DefaultMaxEntries is the bound NewMemoryList uses when given maxEntries <= 0.
const DefaultMaxEntries = 100_000

var (
	// ErrInvalidSubject is returned by Ban for an empty or oversized subject.
	ErrInvalidSubject = errors.New("invalid ban subject")
	// ErrFull is returned by Ban when the list is full of bans that all run at
	// least as long as the new one.
	ErrFull = errors.New("ban list full")
)

// Ban shuts a subject out until Until. A zero Until means permanent.
type Ban struct {
	Subject string // IPSubject or UserSubject, e.g. "ip:1.2.3.4" or "user:alice"
	Until   time.Time
	Reason  string // short, static-ish; shown to operators, never to the client
	Created time.Time
}

// Permanent reports whether the ban never expires.
func (b Ban) Permanent() bool { return b.Until.IsZero() }

// IPSubject returns the subject for a client's per-IP key (limit.IPPrefixes.Key):
// an address or, for a client keyed by its network (an IPv6 /64 by default), a
// prefix in CIDR form, "ip:2001:db8:1:2::/64". Parsable values are canonicalised
// (IPv4-mapped IPv6 unmapped, IPv6 compressed, zone dropped, prefix masked, a
// full-length prefix written as its address) so that equal keys are one subject;
// anything else is used as given.
func IPSubject(ip string) string {
	if a, err := netip.ParseAddr(ip); err == nil {
		ip = a.Unmap().WithZone("").String()
	} else if p, err := netip.ParsePrefix(ip); err == nil {
		a := p.Addr().Unmap()
		bits := p.Bits()
		if p.Addr().Is4In6() {
			bits -= 96
		}
		if bits < 0 {
			bits = 0
		}
		if bits == a.BitLen() {
			ip = a.String()
		} else if m, err := a.Prefix(bits); err == nil {
			ip = m.String()
		}
	}
	return "ip:" + ip
}

// UserSubject returns the subject for an authenticated user id.
func UserSubject(user string) string { return "user:" + user }

// List is the ban store.
//
// Ban never shortens an existing ban: banning a subject again keeps the later
// expiry (Unban first to shorten). A ban whose Until has already passed is a
// no-op. Banned reports the ban in force, if any; expired bans are never reported.
// err is non-nil only when the store could not answer; the guard then applies its
// documented fail-open or fail-closed policy.
type List interface {
	Ban(ctx context.Context, b Ban) error
	Unban(ctx context.Context, subject string) error
	Banned(ctx context.Context, subject string) (Ban, bool, error)
	List(ctx context.Context) ([]Ban, error)
}

// MemoryList is a bounded, expiring, in-memory List, safe for concurrent use.
//
// When full it drops expired bans first, then the ban that expires soonest if the
// new ban outlasts it; if every stored ban runs at least as long as the new one,
// Ban returns ErrFull. So under a flood of bans the list keeps the longest-running
// ones, and permanent (operator) bans are never pushed out by automatic ones. The
// bound is enforced per shard: the real ceiling is maxEntries rounded up to a
// multiple of the shard count (16 at 1024 entries and more, else 1).
type MemoryList struct {
	bans *shardmap.Map[string, *entry]
	// heaps[i] holds shard i's entries, soonest expiry on top, under shard i's
	// lock.
	heaps []expiryHeap
	now   func() time.Time
}

type listShard = shardmap.Shard[string, *entry]

type entry struct {
	ban Ban
	exp int64 // Until in Unix ns; math.MaxInt64 for permanent
	idx int   // position in the heap
}

// NewMemoryList returns an empty MemoryList holding at most about maxEntries bans
// (DefaultMaxEntries if maxEntries <= 0). It starts no goroutine: expired bans are
// dropped as operations touch their shard.
func NewMemoryList(maxEntries int) *MemoryList {
	defaults.Positive(&maxEntries, DefaultMaxEntries)
	n := 1
	if maxEntries >= 1024 {
		n = 16
	}
	bans := shardmap.New[string, *entry](shardmap.Options{MaxKeys: maxEntries, Shards: n})
	return &MemoryList{bans: bans, heaps: make([]expiryHeap, n), now: time.Now}
}

// maxUnixNano is the last instant UnixNano can represent (year 2262).
var maxUnixNano = time.Unix(0, math.MaxInt64)

func expiry(b Ban) int64 {
	if b.Until.IsZero() || b.Until.After(maxUnixNano) {
		return math.MaxInt64
	}
	return b.Until.UnixNano()
}

// Ban implements List.
func (l *MemoryList) Ban(_ context.Context, b Ban) error {
	if b.Subject == "" || len(b.Subject) > MaxSubjectLen {
		return fmt.Errorf("ban %.64q: %w", b.Subject, ErrInvalidSubject)
	}
	now := l.now()
	if !b.Until.IsZero() && !b.Until.After(now) {
		return nil
	}
	if b.Created.IsZero() {
		b.Created = now
	}
	b.Reason = truncate.UTF8(b.Reason, MaxReasonLen)
	// Drop monotonic readings so stored bans compare and print like the Redis ones.
	b.Until, b.Created = b.Until.Round(0), b.Created.Round(0)
	exp := expiry(b)

	s := l.bans.For(b.Subject)
	s.Lock()
	defer s.Unlock()
	h := &l.heaps[s.Index()]
	l.expire(s, now.UnixNano())
	if e, ok := s.Get(b.Subject); ok {
		if exp > e.exp {
			e.ban, e.exp = b, exp
			heap.Fix(h, e.idx)
		}
		return nil
	}
	if s.Full() {
		top := (*h)[0]
		if exp <= top.exp {
			return fmt.Errorf("ban %.64q: %w", b.Subject, ErrFull)
		}
		l.remove(s, top)
	}
	e := &entry{ban: b, exp: exp}
	s.Set(b.Subject, e)
	heap.Push(h, e)
	return nil
}

// Unban implements List. Unbanning a subject that is not banned is not an error.
func (l *MemoryList) Unban(_ context.Context, subject string) error {
	s := l.bans.For(subject)
	s.Lock()
	defer s.Unlock()
	if e, ok := s.Get(subject); ok {
		l.remove(s, e)
	}
	return nil
}

// Banned implements List. It never fails.
func (l *MemoryList) Banned(_ context.Context, subject string) (Ban, bool, error) {
	now := l.now().UnixNano()
	s := l.bans.For(subject)
	s.Lock()
	defer s.Unlock()
	e, ok := s.Get(subject)
	if !ok {
		return Ban{}, false, nil
	}
	if e.exp <= now {
		l.remove(s, e)
		return Ban{}, false, nil
	}
	return e.ban, true, nil
}

// List implements List: the bans in force, sorted by subject. It never fails.
func (l *MemoryList) List(_ context.Context) ([]Ban, error) {
	now := l.now().UnixNano()
	var out []Ban
	l.bans.Each(func(s *listShard) {
		l.expire(s, now)
		for _, e := range s.All() {
			out = append(out, e.ban)
		}
	})
	slices.SortFunc(out, func(a, b Ban) int { return strings.Compare(a.Subject, b.Subject) })
	return out, nil
}

// Len returns the number of stored bans, including expired ones not yet dropped.
func (l *MemoryList) Len() int { return l.bans.Len() }

// expire drops s's expired bans; s is locked.
func (l *MemoryList) expire(s *listShard, now int64) {
	h := &l.heaps[s.Index()]
	for len(*h) > 0 && (*h)[0].exp <= now {
		l.remove(s, (*h)[0])
	}
}

// remove drops e from s and its heap; s is locked.
func (l *MemoryList) remove(s *listShard, e *entry) {
	heap.Remove(&l.heaps[s.Index()], e.idx)
	s.Delete(e.ban.Subject)
}

// expiryHeap is a min-heap of entries by expiry.
type expiryHeap []*entry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].exp < h[j].exp }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}

func (h *expiryHeap) Push(x any) {
	e := x.(*entry)
	e.idx = len(*h)
	*h = append(*h, e)
}

func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}

// Interface guards.
var _ List = (*MemoryList)(nil)
