package check

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"time"
)

// checkDef is one check of the catalogue.
type checkDef struct {
	name  string
	title string
	why   string
	fix   string
	// dials: the check connects to the target (skipped when TLS is broken).
	dials bool
	run   func(ctx context.Context, e *env) Result
}

// env is what checks share during one run.
type env struct {
	o      *Options
	target *url.URL
	tls    *tls.Config
	cred   *creds
	obs    *observer

	// tlsBroken is set when the certificate does not verify and the user
	// did not pass --insecure: every later probe would fail the same way.
	tlsBroken string

	baseOnce sync.Once
	baseErr  error
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
	if !o.AllowRemote {
		if err := checkLoopback(ctx, u.Hostname()); err != nil {
			if errors.Is(err, ErrRemoteTarget) {
				return nil, fmt.Errorf("refusing to probe %s: %w; wsgate check sends attack traffic (forged tokens, oversized messages, floods): test only endpoints you own, and pass --allow-remote to confirm", u.Host, err)
			}
			return nil, fmt.Errorf("check target: %w", err)
		}
	}
	tc, err := tlsConfig(&o)
	if err != nil {
		return nil, err
	}
	cr, err := newCreds(&o)
	if err != nil {
		return nil, err
	}
	e := &env{o: &o, target: u, tls: tc, cred: cr, obs: &observer{}}
	safe := *u
	safe.RawQuery = "" // a query may carry a token
	rep := &Report{Target: safe.String(), Started: time.Now()}
	var selected []*checkDef
	for i := range catalogue {
		c := &catalogue[i]
		if len(o.Only) > 0 && !slices.Contains(o.Only, c.name) || slices.Contains(o.Skip, c.name) {
			continue
		}
		selected = append(selected, c)
	}
	for i, c := range selected {
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, "[%2d/%d] %-16s %s\n", i+1, len(selected), c.name, c.title)
		}
		start := time.Now()
		var res Result
		switch {
		case ctx.Err() != nil:
			res = Result{Status: Error, Got: "run cancelled: " + ctx.Err().Error()}
		case c.dials && e.tlsBroken != "":
			res = Result{Status: Error, Got: "not run: " + e.tlsBroken,
				Fix: "pass --cacert FILE with the CA that signed the certificate, or --insecure to probe anyway"}
		default:
			res = c.run(ctx, e)
		}
		res.Name, res.Title, res.Duration = c.name, c.title, time.Since(start)
		if res.Why == "" {
			res.Why = c.why
		}
		if res.Fix == "" {
			res.Fix = c.fix
		}
		rep.Results = append(rep.Results, res)
	}
	rep.Duration = time.Since(rep.Started)
	rep.finish()
	return rep, nil
}

// baseline reports whether a connection with the credential (or without
// one, when none was given) can be opened; checks that need one use it to
// SKIP or ERROR once with a clear reason.
func (e *env) baseline(ctx context.Context) error {
	e.baseOnce.Do(func() {
		s, err := e.open(ctx)
		if err != nil {
			e.baseErr = err
			return
		}
		s.close()
	})
	return e.baseErr
}

// needConn is the result of a check that could not get a connection.
func (e *env) needConn(err error) Result {
	if e.cred.valid == "" {
		return Result{Status: Skip, Got: err.Error(),
			Why: "this check needs an accepted connection and the server refused one without credential",
			Fix: "give --token, or --secret/--key to mint one"}
	}
	return Result{Status: Error, Got: err.Error(),
		Fix: "check that the credential (--token/--secret/--key, --claim) is valid for this server"}
}

// worst orders verdicts for aggregating several attempts.
func worst(a, b Status) Status {
	rank := map[Status]int{Skip: 0, Pass: 1, Warn: 2, Error: 3, Fail: 4}
	if rank[b] > rank[a] {
		return b
	}
	return a
}
