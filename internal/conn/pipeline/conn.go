package pipeline

import (
	"time"

	"github.com/wsgate/wsgate/internal/conn/integrity"
	"github.com/wsgate/wsgate/internal/state/limit"
)

// ConnState is the pipeline's view of one connection. The session that owns the
// connection creates it, fills the identity fields, and passes it to every Process
// call for that connection. It is not safe for concurrent use: Process must not run
// concurrently for the same ConnState (one reader per connection). Reading the
// counters from another goroutine needs the owner's synchronisation.
type ConnState struct {
	// ConnID identifies the connection (unique per node; used as a limiter key).
	ConnID string
	// User is the authenticated subject, "" for anonymous (no per-user limits).
	User string
	// IP is the client address as the guard determined it, "" to skip per-IP limits.
	IP string
	// Tier names the rate-limit tier (e.g. from a JWT claim); "" or unknown → "default".
	Tier string

	// Integrity is the connection's message-integrity state from its handshake
	// (keys, last sequence number), for the Verifier; nil when it has none.
	Integrity *Integrity

	// Now, when set by the owner before Process, is the time the message arrived:
	// the rate stage uses it instead of reading Options.Now, so that one clock read
	// per message serves the owner and the pipeline. Zero means Options.Now.
	Now time.Time

	// Accepted and Rejected count this connection's outcomes; RateLimited counts the
	// rate_limited rejects among them.
	Accepted, Rejected, RateLimited uint64

	keys   connKeys
	tier   tierCache
	abuse  abuseWindow
	budget connBudgets
	// The small fields, together so that they share one word (every
	// connection's session holds a ConnState).
	abuseStarted bool // abuse.start is set
	charged      bool // budget's TATs are set
}

// clockEpoch is the origin of the clock that the connection's budgets and
// abuse window keep their times on: nanoseconds since it, on the monotonic
// clock when the times passed in carry a monotonic reading (time.Now's do),
// in 8 bytes where a time.Time takes 24.
var clockEpoch = time.Now()

// clockNanos returns now as nanoseconds since clockEpoch.
func clockNanos(now time.Time) int64 { return int64(now.Sub(clockEpoch)) }

// Integrity is one connection's message-integrity state as the handshake left
// it: the keys that open its envelopes, and whether every message must be one.
type Integrity struct {
	Conn *integrity.ConnIntegrity
	// Required: every message but ping must be a valid signed envelope (the
	// endpoint's integrity mode). Otherwise signed envelopes are verified and
	// unsigned messages pass, and namespaces that require signatures refuse them.
	Required bool
}

// namedTier is a Pipeline's Tier with its name, which a ConnState's cache
// compares with ConnState.Tier (no copy of the name per connection).
type namedTier struct {
	Tier
	name string
}

// tierCache remembers which Tier of which Pipeline st.Tier resolved to, sparing a
// map lookup per message; a reload (another Pipeline) or another tier name
// resolves it again. A tier name the Pipeline does not have resolves to the
// default tier on every message (the server admits unknown tiers as "default",
// so that happens only after a reload removed a tier).
type tierCache struct {
	p *Pipeline
	t *namedTier
}

func (st *ConnState) tierOf(p *Pipeline) *Tier {
	c := &st.tier
	if c.p == p && c.t != nil && c.t.name == st.Tier {
		return &c.t.Tier
	}
	t, ok := p.tiers[st.Tier]
	if !ok {
		t = p.tiers[DefaultTierName]
	}
	*c = tierCache{p: p, t: t}
	return &t.Tier
}

// connKeys caches the shared limiter's keys derived from the identity, rebuilt if
// it changes. The connection's own budgets need no key: they live in connBudgets.
// The keys are the cache's own validity check (keyFor): they embed the prefix,
// the user and the IP they were built from, so no copy of those is kept.
type connKeys struct {
	um, ub, im, ib string
}

func (st *ConnState) limiterKeys(prefix string) *connKeys {
	k := &st.keys
	if keyFor(k.um, prefix, "u:m:", st.User) && keyFor(k.im, prefix, "i:m:", st.IP) {
		return k
	}
	*k = connKeys{}
	if st.User != "" {
		k.um, k.ub = prefix+"u:m:"+st.User, prefix+"u:b:"+st.User
	}
	if st.IP != "" {
		k.im, k.ib = prefix+"i:m:"+st.IP, prefix+"i:b:"+st.IP
	}
	return k
}

// keyFor reports whether key is the limiter key prefix+kind+v, or "" for an
// empty v (no key: that budget is not charged), without building it.
func keyFor(key, prefix, kind, v string) bool {
	if v == "" {
		return key == ""
	}
	p, k := len(prefix), len(prefix)+len(kind)
	return len(key) == k+len(v) && key[:p] == prefix && key[p:k] == kind && key[k:] == v
}

// abuseWindow estimates events in a sliding window from two fixed buckets (the
// current and the previous one, weighted by overlap): constant memory per connection
// however many events arrive.
type abuseWindow struct {
	start     int64 // clockNanos of the current bucket's start (ConnState.abuseStarted)
	cur, prev int
}

// hit records an event at now and returns the estimated count within window.
func (st *ConnState) abuseHit(now time.Time, window time.Duration) float64 {
	w, n := &st.abuse, clockNanos(now)
	if !st.abuseStarted || n < w.start {
		st.abuseStarted = true
		w.start, w.cur, w.prev = n, 0, 0
	}
	el := time.Duration(n - w.start)
	switch {
	case el >= 2*window:
		w.start, w.cur, w.prev, el = n, 0, 0, 0
	case el >= window:
		w.start, w.prev, w.cur = w.start+int64(window), w.cur, 0
		el -= window
	}
	w.cur++
	return float64(w.prev)*(1-float64(el)/float64(window)) + float64(w.cur)
}

// connBudgets are the connection's own message and byte budgets. Only the
// connection's reader charges them (one Process at a time), so they need no lock
// and no shared store: a connection lives on one node, and a budget in the shared
// Limiter would cost a map lookup, a lock and, with Redis, a round trip per
// message for a key nobody else reads. The user's and the IP's budgets must be
// shared across connections and nodes and stay in the Limiter.
type connBudgets struct {
	msgTAT, byTAT int64 // GCRA theoretical arrival times, clockNanos (ConnState.charged)
}

// budgetNow returns now as clockNanos for the connection's budgets; the first
// charge starts both budgets full (their TATs at now, as a fresh GCRA key).
func (st *ConnState) budgetNow(now time.Time) int64 {
	n := clockNanos(now)
	if !st.charged {
		st.charged = true
		st.budget.msgTAT, st.budget.byTAT = n, n
	}
	return n
}

// allowGCRA charges the local budget whose theoretical arrival time is *tat at
// now (ns on the same clock), with limit.GCRA: the Limiter's rule and
// semantics, without a store.
func allowGCRA(tat *int64, l limit.Limit, cost int, now int64) (bool, time.Duration) {
	ok, retry, next := limit.GCRA(*tat, now, l, cost)
	*tat = next
	return ok, retry
}
