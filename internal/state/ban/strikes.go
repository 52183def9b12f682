package ban

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/internal/defaults"
	"github.com/wsgate/wsgate/internal/state/shardmap"
)

// Policy defaults.
const (
	DefaultWindow     = 60 * time.Second
	DefaultMaxStrikes = 10
	DefaultBanTTL     = 10 * time.Minute
	// MaxMaxStrikes caps Policy.MaxStrikes: per-key memory does not depend on it,
	// but counters must not overflow.
	MaxMaxStrikes = 1 << 20
)

// Policy says when strikes become a ban.
//
// Zero Window, MaxStrikes and BanTTL take their defaults. BanIP and BanUser both
// default to true; since a bool cannot tell "unset" from false, a Policy with both
// false is treated as both true (a strikes policy that bans nobody is a mistake: to
// turn strikes off, do not call Record). Use DefaultPolicy as a starting point.
type Policy struct {
	Window     time.Duration // sliding window strikes are counted in (default 60s)
	MaxStrikes int           // strikes within Window that trigger a ban (default 10)
	BanTTL     time.Duration // how long the ban lasts (default 10m)
	BanIP      bool          // ban the client IP (default true)
	BanUser    bool          // ban the authenticated user (default true)
	// Off disables strikes and bans entirely: Record counts nothing. (A zero
	// MaxStrikes means "the default", so switching off needs its own flag.)
	Off bool
}

// DefaultPolicy returns the default policy.
func DefaultPolicy() Policy {
	return Policy{Window: DefaultWindow, MaxStrikes: DefaultMaxStrikes, BanTTL: DefaultBanTTL, BanIP: true, BanUser: true}
}

// Validate reports values that defaulting would silently paper over.
func (p Policy) Validate() error {
	var errs []error
	if p.Window < 0 {
		errs = append(errs, fmt.Errorf("strikes window %v is negative", p.Window))
	}
	if p.MaxStrikes < 0 || p.MaxStrikes > MaxMaxStrikes {
		errs = append(errs, fmt.Errorf("max strikes %d out of range [0, %d]", p.MaxStrikes, MaxMaxStrikes))
	}
	if p.BanTTL < 0 {
		errs = append(errs, fmt.Errorf("ban ttl %v is negative", p.BanTTL))
	}
	return errors.Join(errs...)
}

func (p Policy) withDefaults() Policy {
	defaults.Positive(&p.Window, DefaultWindow)
	defaults.Positive(&p.MaxStrikes, DefaultMaxStrikes)
	p.MaxStrikes = min(p.MaxStrikes, MaxMaxStrikes)
	defaults.Positive(&p.BanTTL, DefaultBanTTL)
	if !p.BanIP && !p.BanUser {
		p.BanIP, p.BanUser = true, true
	}
	return p
}

// StrikesOptions configures NewStrikes. The zero value is usable.
type StrikesOptions struct {
	// MaxKeys bounds the number of subjects with strikes held at once (default
	// 100,000, ~100 B each). When a shard is full an idle subject is evicted first,
	// else the sampled subject struck least recently: memory never grows with the
	// number of addresses an attacker rotates through.
	MaxKeys int
	// SweepInterval is how often an owned goroutine drops idle subjects (default 1m;
	// negative disables it). Close stops it.
	SweepInterval time.Duration
	// OnBan, if set, is called after each ban Record places, outside any lock, on
	// the goroutine that called Record (metrics, audit). It must not block.
	OnBan func(Ban)
	// Counter, if set, counts strikes instead of this node's memory: with the
	// Redis one (internal/state/redis) strikes against a subject add up over
	// every node. When it fails, the strike is counted in memory here, so a
	// Redis outage degrades to per-node counting, never to no counting.
	Counter Counter
	// Kick, if set, is called after each ban Record places (after OnBan) to close
	// the banned subject's live connections on every node; its error is
	// returned by Record. It runs on Record's goroutine with Record's context.
	Kick func(ctx context.Context, subject string) error
	// Now replaces time.Now, for tests.
	Now func() time.Time
}

// Counter counts strikes in a store shared by all nodes.
//
// Strike adds one strike against subject and reports whether subject now has
// max strikes within window; a subject that reached max starts again from zero.
// err is non-nil when the store could not count the strike.
type Counter interface {
	Strike(ctx context.Context, subject string, window time.Duration, max int) (reached bool, err error)
}

// DefaultStrikesMaxKeys is StrikesOptions.MaxKeys' default.
const DefaultStrikesMaxKeys = 100_000

const (
	// buckets is the resolution of the sliding window: a strike counts for at
	// least Window and at most Window+Window/(buckets-1), whatever MaxStrikes is,
	// in a fixed ~100 bytes per subject.
	buckets       = 16
	strikesShards = 64
	evictSample   = 8
)

// Strikes counts offences per IP and per user and bans on reaching the policy's
// MaxStrikes within its Window. It is safe for concurrent use.
type Strikes struct {
	policy   atomic.Pointer[Policy]
	list     List
	onBan    func(Ban)
	kick     func(context.Context, string) error
	counter  Counter
	now      func() time.Time
	base     time.Time
	subjects *shardmap.Map[string, *window]
}

// window is a ring of per-bucket strike counts.
type window struct {
	width  int64 // bucket width in ns (Window/(buckets-1)); a policy change resets
	last   int64 // index (time/width) of the newest bucket, i.e. of the last strike
	counts [buckets]uint32
}

// NewStrikes returns Strikes placing bans on list. If opts.SweepInterval is not
// negative it starts a sweeper goroutine that Close stops.
func NewStrikes(policy Policy, list List, opts StrikesOptions) *Strikes {
	defaults.Positive(&opts.MaxKeys, DefaultStrikesMaxKeys)
	opts.SweepInterval = cmp.Or(opts.SweepInterval, time.Minute)
	defaults.Now(&opts.Now)
	s := &Strikes{
		list:     list,
		onBan:    opts.OnBan,
		kick:     opts.Kick,
		counter:  opts.Counter,
		now:      opts.Now,
		base:     opts.Now(),
		subjects: shardmap.New[string, *window](shardmap.Options{MaxKeys: opts.MaxKeys, Shards: strikesShards, MinPerShard: 64}),
	}
	s.SetPolicy(policy)
	s.subjects.StartSweeper(opts.SweepInterval, s.idle)
	return s
}

// SetPolicy replaces the policy atomically (hot reload), after defaulting. Counts
// survive unless Window changes, which restarts them.
func (s *Strikes) SetPolicy(p Policy) {
	p = p.withDefaults()
	s.policy.Store(&p)
}

// Policy returns the policy in force, with defaults applied.
func (s *Strikes) Policy() Policy { return *s.policy.Load() }

// Record counts one strike against ip and against user (each if non-empty and if the
// policy bans that kind of subject). A subject reaching MaxStrikes is banned for
// BanTTL with reason, and its count restarts. banned reports whether Record placed
// at least one ban; err joins the List errors (a ban that failed is not retried:
// the subject simply strikes out again).
func (s *Strikes) Record(ctx context.Context, ip, user, reason string) (banned bool, err error) {
	p := s.policy.Load()
	if p.Off {
		return false, nil
	}
	nowT := s.now()
	now := int64(nowT.Sub(s.base))
	var subjects [2]string
	n := 0
	if p.BanIP && ip != "" && s.count(ctx, IPSubject(ip), p, now) {
		subjects[n] = IPSubject(ip)
		n++
	}
	if p.BanUser && user != "" && s.count(ctx, UserSubject(user), p, now) {
		subjects[n] = UserSubject(user)
		n++
	}
	var errs []error
	for _, subj := range subjects[:n] {
		b := Ban{Subject: subj, Until: nowT.Add(p.BanTTL), Reason: reason, Created: nowT}
		if err := s.list.Ban(ctx, b); err != nil {
			errs = append(errs, fmt.Errorf("strikes: ban after %d strikes: %w", p.MaxStrikes, err))
			continue
		}
		banned = true
		if s.onBan != nil {
			s.onBan(b)
		}
		if s.kick != nil {
			if err := s.kick(ctx, subj); err != nil {
				errs = append(errs, fmt.Errorf("strikes: close connections of %s: %w", subj, err))
			}
		}
	}
	return banned, errors.Join(errs...)
}

// count adds one strike with the shared Counter if there is one, else (or
// when it fails) in this node's memory.
func (s *Strikes) count(ctx context.Context, subject string, p *Policy, now int64) bool {
	if s.counter != nil {
		if reached, err := s.counter.Strike(ctx, subject, p.Window, p.MaxStrikes); err == nil {
			return reached
		}
	}
	return s.strike(subject, p, now)
}

// Count returns the strikes currently counted in this node's memory against
// subject (IPSubject or UserSubject), for tests and the admin API; with a
// Counter, only strikes it failed to count.
func (s *Strikes) Count(subject string) int {
	p := s.policy.Load()
	now := int64(s.now().Sub(s.base))
	sh := s.subjects.For(subject)
	sh.Lock()
	defer sh.Unlock()
	w, ok := sh.Get(subject)
	if !ok || w.width != bucketWidth(p) {
		return 0
	}
	// Advance a copy: w.last must stay the bucket of the last strike, which
	// eviction and idleness rely on.
	cp := *w
	cp.advance(max(now, 0) / cp.width)
	return cp.sum()
}

// Len returns the number of subjects with state held (for tests and metrics).
func (s *Strikes) Len() int { return s.subjects.Len() }

func bucketWidth(p *Policy) int64 {
	return max(int64(p.Window)/(buckets-1), 1)
}

// strike adds one strike and reports whether subject reached MaxStrikes (its
// count is then reset).
func (s *Strikes) strike(subject string, p *Policy, now int64) bool {
	width := bucketWidth(p)
	idx := max(now, 0) / width
	sh := s.subjects.For(subject)
	sh.Lock()
	defer sh.Unlock()
	w, ok := sh.Get(subject)
	if ok && w.width != width {
		*w = window{}
	}
	if !ok {
		if sh.Full() {
			// Idle subjects among a sample, else the sampled subject struck
			// least recently.
			sh.EvictSample(evictSample, idleAt(now), lastStrike)
		}
		w = &window{}
		sh.Set(subject, w)
	}
	if w.width == 0 {
		w.width, w.last = width, idx
	}
	w.advance(idx)
	w.counts[idx%buckets]++
	if w.sum() >= p.MaxStrikes {
		sh.Delete(subject)
		return true
	}
	return false
}

// advance moves the ring to bucket idx, zeroing buckets that fell out of the window.
// A clock going backwards keeps the newest bucket.
func (w *window) advance(idx int64) {
	if idx <= w.last {
		return
	}
	if idx-w.last >= buckets {
		w.counts = [buckets]uint32{}
	} else {
		for i := w.last + 1; i <= idx; i++ {
			w.counts[i%buckets] = 0
		}
	}
	w.last = idx
}

func (w *window) sum() int {
	n := 0
	for _, c := range w.counts {
		n += int(c)
	}
	return n
}

// idle reports whether every strike in w has left the window.
func (w *window) idle(now int64) bool {
	return w.width == 0 || max(now, 0)/w.width-w.last >= buckets
}

// Sweep drops idle subjects. The sweeper calls it; it is exported for callers that
// disable the sweeper.
func (s *Strikes) Sweep() { s.subjects.Sweep(s.idle()) }

// idle reports subjects all of whose strikes have left the window.
func (s *Strikes) idle() func(string, *window) bool { return idleAt(int64(s.now().Sub(s.base))) }

func idleAt(now int64) func(string, *window) bool {
	return func(_ string, w *window) bool { return w.idle(now) }
}

func lastStrike(w *window) int64 { return w.last * w.width }

// Close stops the sweeper and waits for it; Record keeps working. It is idempotent
// and always returns nil.
func (s *Strikes) Close() error {
	s.subjects.Close()
	return nil
}
