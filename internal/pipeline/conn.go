package pipeline

import "time"

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

	// Verify is the Verifier's per-connection state (e.g. integrity keys and the last
	// sequence number), set by the session owner; nil when the Verifier has none.
	Verify any

	// Accepted and Rejected count this connection's outcomes; RateLimited counts the
	// rate_limited rejects among them.
	Accepted, Rejected, RateLimited uint64

	keys  connKeys
	abuse abuseWindow
}

// connKeys caches the limiter keys derived from the identity, rebuilt if it changes.
type connKeys struct {
	prefix, conn, user, ip string
	cm, cb, um, ub, im, ib string
}

func (st *ConnState) limiterKeys(prefix string) *connKeys {
	k := &st.keys
	if k.prefix == prefix && k.conn == st.ConnID && k.user == st.User && k.ip == st.IP && k.cm != "" {
		return k
	}
	*k = connKeys{prefix: prefix, conn: st.ConnID, user: st.User, ip: st.IP}
	k.cm, k.cb = prefix+"c:m:"+st.ConnID, prefix+"c:b:"+st.ConnID
	if st.User != "" {
		k.um, k.ub = prefix+"u:m:"+st.User, prefix+"u:b:"+st.User
	}
	if st.IP != "" {
		k.im, k.ib = prefix+"i:m:"+st.IP, prefix+"i:b:"+st.IP
	}
	return k
}

// abuseWindow estimates events in a sliding window from two fixed buckets (the
// current and the previous one, weighted by overlap): constant memory per connection
// however many events arrive.
type abuseWindow struct {
	start     time.Time
	cur, prev int
}

// hit records an event at now and returns the estimated count within window.
func (w *abuseWindow) hit(now time.Time, window time.Duration) float64 {
	if w.start.IsZero() || now.Before(w.start) {
		w.start, w.cur, w.prev = now, 0, 0
	}
	el := now.Sub(w.start)
	switch {
	case el >= 2*window:
		w.start, w.cur, w.prev, el = now, 0, 0, 0
	case el >= window:
		w.start, w.prev, w.cur = w.start.Add(window), w.cur, 0
		el -= window
	}
	w.cur++
	return float64(w.prev)*(1-float64(el)/float64(window)) + float64(w.cur)
}
