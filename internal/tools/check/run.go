package check

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// checkDef is one check of the catalogue.
type checkDef struct {
	name  string
	title string
	why   string
	fix   string
	// severity is the SARIF level of a FAIL: "error" for holes that give
	// access or take the server down, "warning" for the rest.
	severity string
	// dials: the check connects to the target (skipped when TLS is broken).
	dials bool
	// banProne: the check breaks rules a server may punish with a ban of
	// the auditor's address; against remote targets these run last.
	banProne bool
	// slow: the check mostly waits (timeouts, expiry); against loopback
	// targets slow checks run concurrently, each from its own addresses.
	slow bool
	// crash: the check may take the server down; it runs after everything
	// else has finished.
	crash bool
	// needsCred: the check is skipped without a valid credential.
	needsCred bool
	// needsPin: the check is skipped when probes cannot have source
	// addresses of their own (see env.pinned).
	needsPin bool
	run      func(ctx context.Context, e *env) Result
}

// env is what one check sees: the run's shared state plus its own source
// addresses and its own user.
type env struct {
	o      *Options
	target *url.URL
	tls    *tls.Config
	cred   *creds
	obs    *observer
	sh     *shared

	// check is the id of the running check ("" for the run itself).
	check string
	// tok is this check's valid credential: minted for its own subject when
	// the tool has a key, else the one given.
	tok string
	// sub is the subject of tok when minted.
	sub string
	// pin, when valid, is the one source address of every connection of
	// this check (probes about per-address behaviour); otherwise each
	// connection gets a fresh address when isolating.
	pin netip.Addr
}

// shared is the state of one run, shared by the checks.
type shared struct {
	// runID makes the users of this run unique: a user banned by one run
	// (wsgate bans users whose messages break rules) is not the next's.
	runID  string
	remote bool
	srcs   *srcAlloc // nil: no per-probe source addresses

	mu sync.Mutex
	// tlsBroken is set when the certificate does not verify and the user
	// did not pass --insecure: every later probe would fail the same way.
	tlsBroken string
	// throttleAfter is how many valid messages the message flood got
	// answered before the first rate-limit reply (0: not throttled).
	throttleAfter int
	notes         []string
	banSeen       string // the check after which a ban/limit was first seen

	baseOnce sync.Once
	baseErr  error
	baseDone bool
}

func (s *shared) note(n string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !slices.Contains(s.notes, n) {
		s.notes = append(s.notes, n)
	}
}

func (s *shared) broken() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tlsBroken
}

func (s *shared) setBroken(v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tlsBroken = v
}

// CheckNames lists the checks in the order they run.
func CheckNames() []string {
	out := make([]string, 0, len(catalogue))
	for _, c := range catalogue {
		out = append(out, c.name)
	}
	return out
}

func checkByName(n string) *checkDef {
	for i := range catalogue {
		if catalogue[i].name == n {
			return &catalogue[i]
		}
	}
	return nil
}

// Run audits opts.URL and returns the report. The error is for runs that
// cannot start (bad options, a remote target without AllowRemote); what
// probes meet is in the report.
func Run(ctx context.Context, opts *Options) (*Report, error) {
	if opts == nil {
		return nil, errors.New("check: nil options")
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	o := opts.withDefaults()
	u, _ := url.Parse(o.URL) // Validate parsed it
	loopErr := checkLoopback(ctx, u.Hostname())
	if loopErr != nil && !o.AllowRemote {
		if errors.Is(loopErr, ErrRemoteTarget) {
			return nil, fmt.Errorf("refusing to probe %s: %w; wsgate check sends attack traffic (forged tokens, oversized messages, floods): test only endpoints you own, and pass --allow-remote to confirm", u.Host, loopErr)
		}
		return nil, fmt.Errorf("check target: %w", loopErr)
	}
	tc, err := tlsConfig(&o)
	if err != nil {
		return nil, err
	}
	cr, err := newCreds(&o)
	if err != nil {
		return nil, err
	}
	sh := &shared{remote: loopErr != nil, runID: newRunID()}
	if !sh.remote && !o.NoIsolation {
		sh.srcs, err = newSrcAlloc(ctx, u.Hostname())
		if err != nil {
			sh.note("probes share one source address: " + err.Error())
		}
	}
	e := &env{o: &o, target: u, tls: tc, cred: cr, obs: &observer{}, sh: sh, tok: cr.valid, sub: cr.sub}
	safe := *u
	safe.RawQuery = "" // a query may carry a token
	rep := &Report{Target: safe.String(), Started: time.Now()}
	selected := selectChecks(&o, sh.remote)
	results := make([]Result, len(selected))
	var bg sync.WaitGroup
	bgStarted := false
	runOne := func(i int) {
		c := selected[i]
		start := time.Now()
		ce := e.forCheck(c)
		var res Result
		switch {
		case ctx.Err() != nil:
			res = Result{Status: Error, Got: "run cancelled: " + ctx.Err().Error()}
		case c.dials && sh.broken() != "":
			res = Result{Status: Error, Got: "not run: " + sh.broken(),
				Fix: "pass --cacert FILE with the CA that signed the certificate, or --insecure to probe anyway"}
		case c.needsCred && ce.tok == "":
			res = Result{Status: Skip, Got: "needs a credential (--token, --secret or --key)"}
		case c.needsPin && ce.sh.srcs == nil:
			res = Result{Status: Skip, Got: "needs distinct loopback source addresses (a loopback IPv4 target on a host that can bind 127/8)"}
		default:
			// A safety net over the probes' own bounds: no check outlives
			// its budget, whatever the server does.
			cctx, cancel := context.WithTimeout(ctx, o.checkBudget())
			res = c.run(cctx, ce)
			cancel()
		}
		res.Name, res.Title, res.Duration = c.name, c.title, time.Since(start)
		if res.Why == "" {
			res.Why = c.why
		}
		if res.Fix == "" {
			res.Fix = c.fix
		}
		res.Severity = c.severity
		o.Profile.apply(&res)
		results[i] = res
	}
	for i, c := range selected {
		if c.crash && bgStarted {
			bg.Wait() // a crash must not end the waiting checks early
			bgStarted = false
		}
		if o.Progress != nil {
			how := ""
			if c.slow && !sh.remote {
				how = " (in the background)"
			}
			fmt.Fprintf(o.Progress, "[%2d/%d] %-20s %s%s\n", i+1, len(selected), c.name, c.title, how)
		}
		if c.slow && !sh.remote {
			bgStarted = true
			bg.Go(func() { runOne(i) })
			continue
		}
		runOne(i)
		if sh.remote && c.banProne {
			e.watchBan(ctx, c.name)
		}
	}
	bg.Wait()
	rep.Results = results
	rep.Duration = time.Since(rep.Started)
	sh.mu.Lock()
	rep.Notes = append(rep.Notes, sh.notes...)
	sh.mu.Unlock()
	rep.finish()
	return rep, nil
}

func newRunID() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// checkBudget bounds one check: its longest configured wait plus room for
// its connection attempts.
func (o *Options) checkBudget() time.Duration {
	return max(o.IdleWait, o.KeepaliveWait, o.SlowWait, o.FloodWindow) + 10*o.Timeout + 30*time.Second
}

// selectChecks applies --only/--skip and the profile, and against remote
// targets moves the checks that may get the auditor banned to the end
// (crash probes stay last).
func selectChecks(o *Options, remote bool) []*checkDef {
	var selected []*checkDef
	for i := range catalogue {
		c := &catalogue[i]
		if len(o.Only) > 0 && !slices.Contains(o.Only, c.name) || slices.Contains(o.Skip, c.name) || o.Profile.skips(c.name) {
			continue
		}
		selected = append(selected, c)
	}
	if remote {
		rank := func(c *checkDef) int {
			switch {
			case c.crash:
				return 2
			case c.banProne:
				return 1
			}
			return 0
		}
		slices.SortStableFunc(selected, func(a, b *checkDef) int { return rank(a) - rank(b) })
	}
	return selected
}

// forCheck returns the env of one check: its own user (when tokens are
// minted) so that per-user limits and bans of one probe do not reach the
// next.
func (e *env) forCheck(c *checkDef) *env {
	ce := *e
	ce.check = c.name
	if e.cred.canMint() && e.o.Token == "" {
		sub := e.o.Subject + "-" + e.sh.runID + "-" + c.name
		if tok, err := e.cred.mint(sub, nil); err == nil {
			ce.tok, ce.sub = tok, sub
		}
	}
	return &ce
}

// watchBan checks, after a ban-prone check against a remote target, that
// the valid credential is still accepted from this address; the first time
// it is not, the report says so and how to lift it.
func (e *env) watchBan(ctx context.Context, after string) {
	e.sh.mu.Lock()
	seen := e.sh.banSeen != ""
	e.sh.mu.Unlock()
	if seen || e.sh.baseErr != nil || e.cred.valid == "" {
		return
	}
	a := e.dial(ctx, e.withCred(dialSpec{}, e.cred.valid))
	if a.sess != nil {
		a.sess.close()
		return
	}
	if a.status != http.StatusTooManyRequests && a.status != http.StatusForbidden && a.status != http.StatusServiceUnavailable {
		return
	}
	e.sh.mu.Lock()
	e.sh.banSeen = after
	e.sh.mu.Unlock()
	e.sh.note(fmt.Sprintf("after %s this address was refused with the valid credential (%s): the server banned or throttled the auditor, so later checks may show refusals that are not theirs. "+
		"To lift a wsgate ban: `wsgate admin bans` then `wsgate admin unban SUBJECT` (or wait abuse.ban_ttl); rerun the remaining checks with --only", after, a.describe()))
}

// baseline reports whether a connection with the credential (or without
// one, when none was given) can be opened; checks that need one use it to
// SKIP or ERROR once with a clear reason.
func (e *env) baseline(ctx context.Context) error {
	e.sh.baseOnce.Do(func() {
		s, err := e.open(ctx)
		e.sh.mu.Lock()
		e.sh.baseDone = true
		e.sh.mu.Unlock()
		if err != nil {
			e.sh.baseErr = err
			return
		}
		s.close()
	})
	return e.sh.baseErr
}

// refusedError is an upgrade the server refused.
type refusedError struct{ a attempt }

func (r *refusedError) Error() string {
	return "could not open a connection with the credential: " + r.a.describe()
}

// needConn is the result of a check that could not get a connection. A
// refusal after the baseline was accepted is not a credential problem: the
// server stopped serving this client, and the result says so.
func (e *env) needConn(err error) Result {
	if e.cred.valid == "" {
		return Result{Status: Skip, Got: err.Error(),
			Why: "this check needs an accepted connection and the server refused one without credential",
			Fix: "give --token, or --secret/--key to mint one"}
	}
	var re *refusedError
	e.sh.mu.Lock()
	baseOK := e.sh.baseDone && e.sh.baseErr == nil
	e.sh.mu.Unlock()
	if baseOK && errors.As(err, &re) && re.a.status != 0 {
		return e.midRunRefusal(re.a)
	}
	return Result{Status: Error, Got: err.Error(),
		Fix: "check that the credential (--token/--secret/--key, --claim) is valid for this server"}
}

// midRunRefusal explains a refusal that appeared after the credential had
// been accepted: a slot leak, a rate limit or a ban, never the credential.
func (e *env) midRunRefusal(a attempt) Result {
	what := "the server stopped accepting this client"
	switch a.status {
	case http.StatusTooManyRequests:
		what = "the server's per-client limit refused this client (a connection slot leak, a rate limit or a ban)"
	case http.StatusForbidden:
		what = "the server refused this client (likely a ban after earlier probes broke its rules)"
	case http.StatusServiceUnavailable:
		what = "the server is out of capacity"
	}
	got := fmt.Sprintf("refused mid-run with %s although the credential was accepted at the start of the run: %s; this is not a credential problem (see slot-leak and conn-flood)", a.describe(), what)
	e.sh.note("a refusal appeared mid-run (" + e.check + ": " + clip(a.describe(), 60) + "): " + what)
	return Result{Status: Error, Got: got,
		Why: "a refusal of a credential that worked shows server state the probes built up, and hides this check's answer",
		Fix: "wsgate: `wsgate admin bans` and `wsgate admin unban SUBJECT` (or wait abuse.ban_ttl); other servers: find what keeps the client refused (never-released connection counters, bans) and rerun with --only " + e.check}
}

// worst orders verdicts for aggregating several attempts.
func worst(a, b Status) Status {
	rank := map[Status]int{Skip: 0, Pass: 1, Warn: 2, Error: 3, Fail: 4}
	if rank[b] > rank[a] {
		return b
	}
	return a
}

// joinLines joins non-empty parts with newlines.
func joinLines(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, "\n")
}
