package alert

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/internal/defaults"
	"github.com/wsgate/wsgate/internal/state/shardmap"
)

// Engine defaults.
const (
	DefaultMaxIPs     = 10000
	DefaultRecentSize = 100
	topN              = 5
	shards            = 16
)

// Options configures an Engine.
type Options struct {
	Rules []Rule
	// MaxIPs bounds the client IPs tracked per rule; idle ones are evicted
	// first. Default DefaultMaxIPs.
	MaxIPs int
	// RecentSize is how many alerts Recent can return. Default 100.
	RecentSize int
	// OnAlert is called for every alert, in the goroutine that called
	// Observe; it must not block (hand slow work such as a Redis ban to a
	// queue). The server uses it to apply Rule.AutoBan.
	OnAlert func(Alert)
	// Now is the clock; default time.Now. Tests inject a fake one.
	Now func() time.Time
}

// IPCount is one line of evidence: how many events an IP caused.
type IPCount struct {
	IP    string `json:"ip"`
	Count int    `json:"count"`
}

// Alert is a fired rule and its evidence.
type Alert struct {
	ID        string
	Rule      string
	Event     string
	Time      time.Time
	Count     int           // events within Window when the rule fired
	Threshold int           // the rule's threshold
	Window    time.Duration // the rule's window
	IP        string        // the offending IP for a PerIP rule; "" for a global one
	TopIPs    []IPCount     // up to 5 IPs with the most events in the window, most first
	AutoBan   bool          // the rule asks for the offenders to be banned
	BanTTL    time.Duration
}

// Offenders are the IPs an auto-ban should cover: the IP of a per-IP alert,
// none for a global one (a global spike does not prove any single IP guilty;
// TopIPs is evidence for a human).
func (a Alert) Offenders() []string {
	if a.IP == "" {
		return nil
	}
	return []string{a.IP}
}

// MarshalJSON writes durations as Go duration strings ("1m0s") and the time
// in RFC 3339, for the webhook, the admin API and the dashboard.
func (a Alert) MarshalJSON() ([]byte, error) {
	type wire struct {
		ID        string    `json:"id"`
		Rule      string    `json:"rule"`
		Event     string    `json:"event"`
		Time      time.Time `json:"time"`
		Count     int       `json:"count"`
		Threshold int       `json:"threshold"`
		Window    string    `json:"window"`
		IP        string    `json:"ip,omitempty"`
		TopIPs    []IPCount `json:"top_ips"`
		AutoBan   bool      `json:"auto_ban,omitempty"`
		BanTTL    string    `json:"ban_ttl,omitempty"`
	}
	w := wire{ID: a.ID, Rule: a.Rule, Event: a.Event, Time: a.Time.UTC(), Count: a.Count, Threshold: a.Threshold,
		Window: a.Window.String(), IP: a.IP, TopIPs: a.TopIPs, AutoBan: a.AutoBan}
	if w.TopIPs == nil {
		w.TopIPs = []IPCount{}
	}
	if a.AutoBan {
		w.BanTTL = a.BanTTL.String()
	}
	return json.Marshal(w)
}

// Sink receives alerts. Send must not block: it runs in Observe's caller.
type Sink interface {
	Send(Alert)
}

// SinkFunc adapts a function to Sink.
type SinkFunc func(Alert)

// Send calls f.
func (f SinkFunc) Send(a Alert) { f(a) }

// Engine evaluates rules over observed events. Safe for concurrent use.
type Engine struct {
	now     func() time.Time
	maxIPs  int
	onAlert func(Alert)
	sinks   []Sink
	rules   atomic.Pointer[ruleSet]

	setMu sync.Mutex // serialises SetRules

	mu     sync.Mutex // guards recent and subs
	recent []Alert    // ring, next write at recentHead
	head   int
	full   bool
	subs   map[chan Alert]struct{}
}

type ruleSet struct {
	byEvent map[string][]*ruleState
	byName  map[string]*ruleState
}

type ruleState struct {
	rule Rule
	data *ruleData
}

// ruleData is the counting state of a rule; SetRules carries it over when
// only the threshold, cooldown or ban settings change.
type ruleData struct {
	mu        sync.Mutex
	global    window
	lastFired time.Time
	ips       *shardmap.Map[string, *ipEntry]
}

type ipShard = shardmap.Shard[string, *ipEntry]

type ipEntry struct {
	w         window
	lastSeen  time.Time
	lastFired time.Time
}

// New returns an Engine with opts.Rules, delivering to sinks.
func New(opts Options, sinks ...Sink) (*Engine, error) {
	defaults.Positive(&opts.MaxIPs, DefaultMaxIPs)
	defaults.Positive(&opts.RecentSize, DefaultRecentSize)
	defaults.Now(&opts.Now)
	e := &Engine{
		now:     opts.Now,
		maxIPs:  opts.MaxIPs,
		onAlert: opts.OnAlert,
		sinks:   slices.Clone(sinks),
		recent:  make([]Alert, opts.RecentSize),
		subs:    make(map[chan Alert]struct{}),
	}
	if err := e.SetRules(opts.Rules); err != nil {
		return nil, err
	}
	return e, nil
}

// SetRules replaces the rules (hot reload). Invalid rules are refused and the
// old ones stay. A rule keeping its name, event, window and PerIP keeps its
// counts and cooldown; any other change starts it afresh.
func (e *Engine) SetRules(rules []Rule) error {
	if err := ValidateRules(rules); err != nil {
		return err
	}
	e.setMu.Lock()
	defer e.setMu.Unlock()
	old := e.rules.Load()
	rs := &ruleSet{byEvent: map[string][]*ruleState{}, byName: map[string]*ruleState{}}
	for _, r := range rules {
		r = r.withDefaults()
		st := &ruleState{rule: r}
		if old != nil {
			if o, ok := old.byName[r.Name]; ok && o.rule.Event == r.Event && o.rule.Window == r.Window && o.rule.PerIP == r.PerIP {
				st.data = o.data
			}
		}
		if st.data == nil {
			st.data = &ruleData{ips: shardmap.New[string, *ipEntry](shardmap.Options{MaxKeys: e.maxIPs, Shards: shards})}
		}
		rs.byEvent[r.Event] = append(rs.byEvent[r.Event], st)
		rs.byName[r.Name] = st
	}
	e.rules.Store(rs)
	return nil
}

// Rules returns the rules in force, with defaults applied.
func (e *Engine) Rules() []Rule {
	rs := e.rules.Load()
	out := make([]Rule, 0, len(rs.byName))
	for _, st := range rs.byName {
		out = append(out, st.rule)
	}
	slices.SortFunc(out, func(a, b Rule) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out
}

// Observe counts one event from ip ("" if unknown) and fires every rule it
// pushes over its threshold. It never blocks on I/O.
func (e *Engine) Observe(event, ip string) {
	if e == nil {
		return
	}
	states := e.rules.Load().byEvent[event]
	if len(states) == 0 {
		return
	}
	now := e.now()
	for _, st := range states {
		if a, ok := e.observe(st, now, ip); ok {
			e.deliver(a)
		}
	}
}

func (e *Engine) observe(st *ruleState, now time.Time, ip string) (Alert, bool) {
	r, d := st.rule, st.data
	id := bucketID(now, r.Window)
	ipCount := 0
	ipFired := false
	if ip != "" {
		sh := d.ips.For(ip)
		sh.Lock()
		ent, _ := sh.Get(ip)
		if ent == nil {
			makeRoom(sh, d.ips.PerShard(), r, now)
			ent = &ipEntry{}
			sh.Set(ip, ent)
		}
		ent.w.add(id)
		ent.lastSeen = now
		ipCount = ent.w.sum(id)
		if r.PerIP && ipCount >= r.Threshold && cooled(ent.lastFired, now, r.Cooldown) {
			ent.lastFired = now
			ipFired = true
		}
		sh.Unlock()
	}
	if r.PerIP {
		if !ipFired {
			return Alert{}, false
		}
		a := e.newAlert(r, now, ipCount)
		a.IP = ip
		a.TopIPs = []IPCount{{IP: ip, Count: ipCount}}
		return a, true
	}
	d.mu.Lock()
	d.global.add(id)
	n := d.global.sum(id)
	fire := n >= r.Threshold && cooled(d.lastFired, now, r.Cooldown)
	if fire {
		d.lastFired = now
	}
	d.mu.Unlock()
	if !fire {
		return Alert{}, false
	}
	a := e.newAlert(r, now, n)
	a.TopIPs = d.top(id, topN)
	return a, true
}

func cooled(last, now time.Time, cooldown time.Duration) bool {
	return last.IsZero() || now.Sub(last) >= cooldown
}

// makeRoom keeps a shard within its share of MaxIPs: first by dropping
// entries idle for a window and past their cooldown, then, if an attacker
// keeps them all busy, by dropping a tenth at random so the sweep is not
// repeated on every new IP.
func makeRoom(sh *ipShard, limit int, r Rule, now time.Time) {
	if !sh.Full() {
		return
	}
	sh.DeleteFunc(func(_ string, ent *ipEntry) bool {
		return now.Sub(ent.lastSeen) > r.Window && cooled(ent.lastFired, now, r.Cooldown)
	})
	for k := range sh.All() { // map order is random enough for shedding
		if sh.Len() < limit-limit/10 || sh.Len() == 0 {
			break
		}
		sh.Delete(k)
	}
}

// top returns the n IPs with the most events in the current window.
func (d *ruleData) top(id int64, n int) []IPCount {
	var all []IPCount
	d.ips.Each(func(sh *ipShard) {
		for ip, ent := range sh.All() {
			if c := ent.w.sum(id); c > 0 {
				all = append(all, IPCount{IP: ip, Count: c})
			}
		}
	})
	slices.SortFunc(all, func(a, b IPCount) int {
		if a.Count != b.Count {
			return b.Count - a.Count
		}
		if a.IP < b.IP {
			return -1
		}
		return 1
	})
	if len(all) > n {
		all = all[:n]
	}
	return all
}

func (e *Engine) newAlert(r Rule, now time.Time, count int) Alert {
	return Alert{ID: newID(), Rule: r.Name, Event: r.Event, Time: now, Count: count, Threshold: r.Threshold,
		Window: r.Window, AutoBan: r.AutoBan, BanTTL: r.BanTTL}
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}

func (e *Engine) deliver(a Alert) {
	e.mu.Lock()
	e.recent[e.head] = a
	e.head = (e.head + 1) % len(e.recent)
	if e.head == 0 {
		e.full = true
	}
	for ch := range e.subs {
		select {
		case ch <- a:
		default: // a slow subscriber misses alerts rather than stall Observe
		}
	}
	e.mu.Unlock()
	for _, s := range e.sinks {
		s.Send(a)
	}
	if e.onAlert != nil {
		e.onAlert(a)
	}
}

// Recent returns up to n of the latest alerts, newest first.
func (e *Engine) Recent(n int) []Alert {
	e.mu.Lock()
	defer e.mu.Unlock()
	size := e.head
	if e.full {
		size = len(e.recent)
	}
	n = min(max(n, 0), size)
	out := make([]Alert, 0, n)
	for i := range n {
		out = append(out, e.recent[(e.head-1-i+len(e.recent))%len(e.recent)])
	}
	return out
}

// Subscribe returns a channel receiving every later alert (the dashboard's
// live feed) and a function that ends the subscription. Alerts are dropped
// for a subscriber whose buffer of size buf is full.
func (e *Engine) Subscribe(buf int) (<-chan Alert, func()) {
	ch := make(chan Alert, max(buf, 1))
	e.mu.Lock()
	e.subs[ch] = struct{}{}
	e.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			e.mu.Lock()
			delete(e.subs, ch)
			e.mu.Unlock()
		})
	}
}
