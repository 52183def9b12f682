package bench

import (
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Result is what a run measured. Durations are in microseconds, memory in KiB.
type Result struct {
	Mode        Mode           `json:"mode"`
	Target      string         `json:"target"` // URL without query
	Procs       int            `json:"procs"`
	Requested   int            `json:"requested_conns"`
	Opened      int            `json:"opened_conns"`
	Failed      int            `json:"failed_conns"`
	Errors      map[string]int `json:"errors,omitempty"`
	ClosedEarly int            `json:"closed_by_server"`
	// Refused counts handshakes the server answered with an HTTP error
	// (429 rate limit, 403 ban, 401, 503): part of Failed.
	Refused int `json:"refused_handshakes"`
	// CloseCodes counts the close codes of connections the server closed
	// during the run (1008 policy, 4xxx application codes…).
	CloseCodes map[string]int `json:"close_codes,omitempty"`
	// Problems say why the figures do not measure the server's work: the
	// run measured refusals, errors or closes instead of traffic. A
	// non-empty list makes `wsgate bench` exit 2.
	Problems        []string `json:"problems,omitempty"`
	MaxConnsPerProc int      `json:"max_conns_per_process"`
	// OpenedPerTarget counts connections per endpoint (URL, Nodes...) in
	// multi-node runs.
	OpenedPerTarget []int `json:"opened_per_target,omitempty"`
	FileLimitHit    bool  `json:"file_limit_hit,omitempty"`

	Seconds     float64 `json:"seconds"`
	Ops         int64   `json:"ops"` // round trips, handshakes or deliveries
	OpsPerSec   float64 `json:"ops_per_sec"`
	ReplyErrors int64   `json:"reply_errors"`
	Timeouts    int64   `json:"timeouts"`
	Published   int64   `json:"published,omitempty"`
	Expected    int64   `json:"expected_deliveries,omitempty"`

	Latency *Latency     `json:"latency,omitempty"`
	Server  *ServerStats `json:"server,omitempty"` // with several server PIDs: their sum
	Nodes   []NodeStats  `json:"nodes,omitempty"`  // one per server PID when there are several
	Notes   []string     `json:"notes,omitempty"`
	Hist    *Histogram   `json:"histogram,omitempty"`
}

// Latency percentiles in microseconds.
type Latency struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50_us"`
	P90   float64 `json:"p90_us"`
	P99   float64 `json:"p99_us"`
	Max   float64 `json:"max_us"`
}

// ServerStats come from /proc/PID of the server: base before the ramp,
// loaded after it (and Settle), end after the measured phase.
type ServerStats struct {
	PID            int     `json:"pid"`
	CPUSeconds     float64 `json:"cpu_seconds"` // during the measured phase
	CPUPerOpMicros float64 `json:"cpu_us_per_op,omitempty"`
	CPUUtil        float64 `json:"cpu_util"` // CPU seconds per wall second (2.0 = two cores busy)
	RSSBaseKiB     int64   `json:"rss_base_kib"`
	RSSLoadedKiB   int64   `json:"rss_loaded_kib"`
	RSSEndKiB      int64   `json:"rss_end_kib"`
	RSSPerConnKiB  float64 `json:"rss_per_conn_kib,omitempty"`
}

// NodeStats are one server's figures in a multi-node run.
type NodeStats struct {
	Target string `json:"target"`
	Opened int    `json:"opened_conns"`
	ServerStats
}

// merge adds a child's result into r.
func (r *Result) merge(o *Result) {
	r.Requested += o.Requested
	r.Opened += o.Opened
	r.Failed += o.Failed
	r.ClosedEarly += o.ClosedEarly
	r.FileLimitHit = r.FileLimitHit || o.FileLimitHit
	if o.Seconds > r.Seconds {
		r.Seconds = o.Seconds
	}
	r.Ops += o.Ops
	r.ReplyErrors += o.ReplyErrors
	r.Timeouts += o.Timeouts
	r.Published += o.Published
	if len(o.OpenedPerTarget) > len(r.OpenedPerTarget) {
		r.OpenedPerTarget = append(r.OpenedPerTarget, make([]int, len(o.OpenedPerTarget)-len(r.OpenedPerTarget))...)
	}
	for i, n := range o.OpenedPerTarget {
		r.OpenedPerTarget[i] += n
	}
	for k, v := range o.Errors {
		if r.Errors == nil {
			r.Errors = map[string]int{}
		}
		r.Errors[k] += v
	}
	for k, v := range o.CloseCodes {
		if r.CloseCodes == nil {
			r.CloseCodes = map[string]int{}
		}
		r.CloseCodes[k] += v
	}
	for _, n := range o.Notes {
		dup := false
		for _, m := range r.Notes {
			dup = dup || m == n
		}
		if !dup {
			r.Notes = append(r.Notes, n)
		}
	}
	if o.Hist != nil {
		if r.Hist == nil {
			r.Hist = &Histogram{}
		}
		r.Hist.Merge(o.Hist)
	}
}

// finish derives rates, percentiles and server figures; pids, targets and
// the samples are parallel slices (one entry per sampled server).
func (r *Result) finish(pids []int, targets []string, base, loaded, end []ProcSample) {
	if r.Seconds > 0 {
		r.OpsPerSec = float64(r.Ops) / r.Seconds
	}
	if r.Mode == Fanout {
		r.Expected = r.Published * int64(r.Opened)
	}
	r.judge()
	if r.Hist != nil && r.Hist.Count() > 0 {
		us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
		r.Latency = &Latency{Count: r.Hist.Count(), P50: us(r.Hist.Quantile(0.50)), P90: us(r.Hist.Quantile(0.90)),
			P99: us(r.Hist.Quantile(0.99)), Max: us(r.Hist.Max())}
	}
	switch len(pids) {
	case 0:
		return
	case 1:
		r.Server = r.serverStats(pids[0], base[0], loaded[0], end[0], r.Opened)
		return
	}
	var sb, sl, se ProcSample
	for i, pid := range pids {
		opened := 0
		if i < len(r.OpenedPerTarget) {
			opened = r.OpenedPerTarget[i]
		}
		r.Nodes = append(r.Nodes, NodeStats{Target: targets[i], Opened: opened,
			ServerStats: *r.serverStats(pid, base[i], loaded[i], end[i], opened)})
		sb, sl, se = sb.add(base[i]), sl.add(loaded[i]), se.add(end[i])
	}
	r.Server = r.serverStats(0, sb, sl, se, r.Opened)
}

// judge counts refusals and fills Problems when the run measured
// refusals, errors or closes rather than the server serving traffic (a
// banned or rate-limited client measures how fast the server says no).
// A tenth of the work going wrong is enough to say so.
func (r *Result) judge() {
	r.Refused = 0
	for k, v := range r.Errors {
		if strings.HasPrefix(k, "http ") {
			r.Refused += v
		}
	}
	r.Problems = nil
	bad := func(part, whole int64) bool { return part > 0 && part*10 >= whole }
	if r.Mode != Handshake && r.Opened == 0 {
		r.Problems = append(r.Problems, "no connection could be opened")
	}
	if r.Mode != Handshake && bad(int64(r.Failed), int64(r.Requested)) {
		r.Problems = append(r.Problems, fmt.Sprintf("%d of %d connections failed (%d refused with an HTTP status: %s)", r.Failed, r.Requested, r.Refused, countsString(r.Errors)))
	}
	if r.Mode == Handshake && bad(int64(r.Failed), r.Ops+int64(r.Failed)) {
		r.Problems = append(r.Problems, fmt.Sprintf("%d of %d handshakes failed (%d refused with an HTTP status: %s)", r.Failed, r.Ops+int64(r.Failed), r.Refused, countsString(r.Errors)))
	}
	if bad(int64(r.ClosedEarly), int64(r.Opened)) {
		r.Problems = append(r.Problems, fmt.Sprintf("the server closed %d of %d connections during the run (close codes: %s)", r.ClosedEarly, r.Opened, countsString(r.CloseCodes)))
	}
	if r.Mode != Idle && bad(r.ReplyErrors, r.Ops+r.ReplyErrors) {
		r.Problems = append(r.Problems, fmt.Sprintf("%d error replies against %d %s: the server refused the work (rate limit?)", r.ReplyErrors, r.Ops, opName(r.Mode)))
	}
	if r.Mode != Idle && bad(r.Timeouts, r.Ops+r.Timeouts) {
		r.Problems = append(r.Problems, fmt.Sprintf("%d of %d operations timed out", r.Timeouts, r.Ops+r.Timeouts))
	}
	if r.Mode != Idle && r.Ops == 0 {
		r.Problems = append(r.Problems, "no "+opUnit(r.Mode)+" completed")
	}
}

// countsString renders a count map in key order ("none" when empty).
func countsString(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// problemAdvice is printed with Problems.
const problemAdvice = "the figures above measure how fast the server refuses, not how fast it serves. " +
	"Against wsgate: lift bans (`wsgate admin bans`, `wsgate admin unban SUBJECT`), raise limits.handshake_rate / limits.connections / rate.tiers for the test, " +
	"or spread the load over more source addresses (--sources) and users (--secret)"

// serverStats derives one server's figures (pid 0: the sum of several).
func (r *Result) serverStats(pid int, base, loaded, end ProcSample, opened int) *ServerStats {
	s := &ServerStats{PID: pid, CPUSeconds: end.CPU - loaded.CPU, RSSBaseKiB: base.RSSKiB, RSSLoadedKiB: loaded.RSSKiB, RSSEndKiB: end.RSSKiB}
	if r.Ops > 0 {
		s.CPUPerOpMicros = s.CPUSeconds * 1e6 / float64(r.Ops)
	}
	if r.Seconds > 0 {
		s.CPUUtil = s.CPUSeconds / r.Seconds
	}
	// Fan-out subscribers are idle connections with one subscription when the
	// server is sampled (after the ramp and Settle, before any publication).
	if opened > 0 && (r.Mode == Idle || r.Mode == Fanout) {
		s.RSSPerConnKiB = float64(loaded.RSSKiB-base.RSSKiB) / float64(opened)
	}
	return s
}

// opName is what one operation is called in each mode.
func opName(m Mode) string {
	switch m {
	case Echo:
		return "round trips"
	case Fanout:
		return "deliveries"
	case Handshake:
		return "handshakes"
	}
	return "operations"
}

func opUnit(m Mode) string {
	switch m {
	case Echo:
		return "round trip"
	case Fanout:
		return "delivery"
	case Handshake:
		return "handshake"
	}
	return "operation"
}

// WriteTable prints the result for people.
func (r *Result) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	p := func(k, f string, a ...any) { fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(f, a...)) }
	if len(r.Problems) > 0 {
		p("!!! INVALID RUN", "this run measured refusals, errors or closes instead of traffic (details at the end)")
	}
	p("target", "%s (%s)", r.Target, r.Mode)
	if r.Mode == Handshake {
		p("handshakers", "%d concurrent, %d failed handshakes", r.Requested, r.Failed)
	} else {
		p("connections", "%d of %d opened, %d failed, %d closed by the server during the run", r.Opened, r.Requested, r.Failed, r.ClosedEarly)
	}
	p("processes", "%d (this machine: up to %d connections per process)", r.Procs, r.MaxConnsPerProc)
	if len(r.Errors) > 0 {
		keys := make([]string, 0, len(r.Errors))
		for k := range r.Errors {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = fmt.Sprintf("%s: %d", k, r.Errors[k])
		}
		p("errors", "%s", strings.Join(parts, ", "))
	}
	p("measured", "%.2f s", r.Seconds)
	if r.Mode != Idle {
		p(opName(r.Mode), "%d (%.0f/s), %d error replies, %d timeouts", r.Ops, r.OpsPerSec, r.ReplyErrors, r.Timeouts)
	}
	if r.Mode == Fanout {
		p("published", "%d, expected deliveries %d (%.1f%% delivered)", r.Published, r.Expected, pct(r.Ops, r.Expected))
	}
	if l := r.Latency; l != nil {
		p("latency", "p50 %s  p90 %s  p99 %s  max %s", fmtUS(l.P50), fmtUS(l.P90), fmtUS(l.P99), fmtUS(l.Max))
	}
	if s := r.Server; s != nil {
		line := fmt.Sprintf("%.2f s (%.2f cores)", s.CPUSeconds, s.CPUUtil)
		if s.CPUPerOpMicros > 0 {
			line += fmt.Sprintf(", %.2f µs per %s", s.CPUPerOpMicros, opUnit(r.Mode))
		}
		who := fmt.Sprintf("pid %d", s.PID)
		if s.PID == 0 {
			who = fmt.Sprintf("%d nodes", len(r.Nodes))
		}
		p(fmt.Sprintf("server cpu (%s)", who), "%s", line)
		line = fmt.Sprintf("%s before, %s connected, %s at end", fmtKiB(s.RSSBaseKiB), fmtKiB(s.RSSLoadedKiB), fmtKiB(s.RSSEndKiB))
		if s.RSSPerConnKiB != 0 {
			line += fmt.Sprintf(": %.1f KiB per connection", s.RSSPerConnKiB)
		}
		p("server rss", "%s", line)
	}
	for _, n := range r.Nodes {
		p(fmt.Sprintf("node %s (pid %d)", n.Target, n.PID), "%d connections, cpu %.2f s, rss %s → %s: %.1f KiB per connection",
			n.Opened, n.CPUSeconds, fmtKiB(n.RSSBaseKiB), fmtKiB(n.RSSLoadedKiB), n.RSSPerConnKiB)
	}
	if r.Refused > 0 || len(r.CloseCodes) > 0 {
		p("refusals", "%d handshakes refused with an HTTP status; server closes during the run: %s", r.Refused, countsString(r.CloseCodes))
	}
	for _, n := range r.Notes {
		p("note", "%s", n)
	}
	for _, n := range r.Problems {
		p("!!! PROBLEM", "%s", n)
	}
	if len(r.Problems) > 0 {
		p("!!! INVALID RUN", "%s", problemAdvice)
	}
	return tw.Flush()
}

func pct(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}

func fmtUS(us float64) string {
	switch {
	case us >= 1e6:
		return fmt.Sprintf("%.2fs", us/1e6)
	case us >= 1e3:
		return fmt.Sprintf("%.2fms", us/1e3)
	}
	return fmt.Sprintf("%.0fµs", us)
}

func fmtKiB(k int64) string { return fmt.Sprintf("%.1f MiB", float64(k)/1024) }

// safeURL drops the query and user info: a token may travel there.
func safeURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable url)"
	}
	return u.Scheme + "://" + u.Host + u.Path
}
