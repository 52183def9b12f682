package bench

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/leak"
)

// TestMain doubles as the --procs child: RunProcs re-executes the test binary
// with WSGATETEST_BENCH_CHILD=1.
func TestMain(m *testing.M) {
	if os.Getenv("WSGATETEST_BENCH_CHILD") == "1" {
		if err := ServeChild(context.Background(), os.Stdin, os.Stdout, nil); err != nil {
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// server starts wsgate over TLS with limits high enough for a load test (but
// still evaluated) and returns base options that trust its certificate.
func server(t *testing.T) (*wsgatetest.Server, Options) {
	t.Helper()
	return serverWith(t, nil)
}

// serverWith is server with a change to the configuration before the start.
func serverWith(t *testing.T, change func(*config.Config)) (*wsgatetest.Server, Options) {
	t.Helper()
	cfg := wsgatetest.Config()
	cfg.Log.Level = "warn"
	cfg.Limits.HandshakeRate = config.RateLimit{Rate: 1e5, Burst: 1e5}
	big := config.RateLimit{Rate: 1e6, Burst: 1e6}
	cfg.Rate.Tiers = map[string]config.Tier{"default": {Messages: big, Bytes: config.RateLimit{Rate: 1e9, Burst: 1e9},
		UserMessages: big, UserBytes: config.RateLimit{Rate: 1e9, Burst: 1e9}, IPMessages: big, IPBytes: config.RateLimit{Rate: 1e9, Burst: 1e9}}}
	if change != nil {
		change(cfg)
	}
	s := wsgatetest.Start(t, cfg)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, s.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return s, Options{URL: s.URL, Secret: wsgatetest.Secret, KeyID: "test", CACertFile: ca,
		ServerPID: os.Getpid(), Duration: 500 * time.Millisecond, Timeout: 2 * time.Second, Settle: 50 * time.Millisecond}
}

func run(t *testing.T, o Options) *Result {
	t.Helper()
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func checkLatency(t *testing.T, res *Result) {
	t.Helper()
	l := res.Latency
	if l == nil || l.Count == 0 || l.P50 <= 0 || l.P50 > l.P90 || l.P90 > l.P99 || l.P99 > l.Max {
		t.Fatalf("latency %+v", l)
	}
}

func TestEcho(t *testing.T) {
	// The run's connections end, and so does the test server at cleanup.
	leak.Check(t)
	_, o := server(t)
	o.Mode, o.Conns = Echo, 5
	res := run(t, o)
	if res.Opened != 5 || res.Failed != 0 || res.Ops == 0 || res.ReplyErrors != 0 || res.Timeouts != 0 || res.ClosedEarly != 0 {
		t.Fatalf("result %+v", res)
	}
	checkLatency(t, res)
	if res.Server == nil || res.Server.CPUSeconds < 0 || res.OpsPerSec <= 0 {
		t.Fatalf("server %+v", res.Server)
	}
	var b strings.Builder
	if err := res.WriteTable(&b); err != nil || !strings.Contains(b.String(), "round trips") || strings.Contains(b.String(), "secret") {
		t.Fatalf("table %v\n%s", err, b.String())
	}
}

func TestEchoCount(t *testing.T) {
	_, o := server(t)
	o.Mode, o.Conns, o.Count, o.Duration = Echo, 3, 40, 10*time.Second
	if res := run(t, o); res.Ops != 40 {
		t.Fatalf("ops %d, want 40", res.Ops)
	}
}

func TestIdle(t *testing.T) {
	_, o := server(t)
	o.Mode, o.Conns, o.Duration = Idle, 30, 100*time.Millisecond
	res := run(t, o)
	if res.Opened != 30 || res.Server == nil || res.Server.RSSLoadedKiB <= 0 || res.ClosedEarly != 0 {
		t.Fatalf("result %+v server %+v", res, res.Server)
	}
}

func TestFanout(t *testing.T) {
	_, o := server(t)
	o.Mode, o.Conns, o.Rate = Fanout, 4, 40
	res := run(t, o)
	if res.Opened != 4 || res.Published == 0 || res.Expected != res.Published*4 || res.Ops != res.Expected || res.ReplyErrors != 0 {
		t.Fatalf("result %+v", res)
	}
	checkLatency(t, res)
}

func TestFanoutRefused(t *testing.T) {
	_, o := server(t)
	o.Mode, o.Conns, o.Duration = Fanout, 2, 100*time.Millisecond
	o.Claims = map[string]any{"channels": map[string]any{"sub": []string{"chat:other"}}}
	res := run(t, o)
	if res.Opened != 0 || res.Errors["subscribe refused"] != 2 {
		t.Fatalf("result %+v", res)
	}
}

func TestHandshake(t *testing.T) {
	_, o := server(t)
	o.Mode, o.Conns, o.Count, o.Duration = Handshake, 2, 12, 10*time.Second
	res := run(t, o)
	if res.Ops != 12 || res.Failed != 0 || res.Server == nil || res.Server.CPUPerOpMicros <= 0 {
		t.Fatalf("result %+v", res)
	}
	checkLatency(t, res)
}

func TestHandshakeRefusedWithoutToken(t *testing.T) {
	_, o := server(t)
	o.Secret, o.Mode, o.Conns, o.Duration = "", Handshake, 1, 100*time.Millisecond
	res := run(t, o)
	if res.Ops != 0 || res.Errors["http 401"] == 0 {
		t.Fatalf("result %+v", res)
	}
}

func TestRunProcs(t *testing.T) {
	_, o := server(t)
	t.Setenv("WSGATETEST_BENCH_CHILD", "1")
	o.Mode, o.Conns, o.Duration = Idle, 9, 100*time.Millisecond
	res, err := RunProcs(context.Background(), o, 2, []string{os.Args[0]})
	if err != nil {
		t.Fatal(err)
	}
	if res.Procs != 2 || res.Opened != 9 || res.Requested != 9 || res.Server == nil {
		t.Fatalf("result %+v", res)
	}
	o.Mode, o.Conns, o.Rate, o.Duration = Fanout, 3, 40, 300*time.Millisecond
	res, err = RunProcs(context.Background(), o, 2, []string{os.Args[0]})
	if err != nil {
		t.Fatal(err)
	}
	if res.Opened != 3 || res.Published == 0 || res.Ops != res.Published*3 {
		t.Fatalf("fanout over procs %+v", res)
	}
}

func TestSources(t *testing.T) {
	_, o := server(t)
	o.URL = strings.Replace(o.URL, "wss://localhost", "wss://127.0.0.1", 1)
	o.Mode, o.Conns, o.Sources, o.Duration = Idle, 6, 3, 50*time.Millisecond
	res := run(t, o)
	if res.Opened != 6 {
		t.Fatalf("result %+v", res)
	}
}

func TestValidate(t *testing.T) {
	ok := Options{URL: "ws://127.0.0.1:1/ws", Mode: Echo}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := map[string]func(o *Options){
		"no url":         func(o *Options) { o.URL = "" },
		"scheme":         func(o *Options) { o.URL = "http://127.0.0.1/" },
		"mode":           func(o *Options) { o.Mode = "flood" },
		"conns":          func(o *Options) { o.Conns = -1 },
		"too many conns": func(o *Options) { o.Conns = maxConns + 1 },
		"duration":       func(o *Options) { o.Duration = 2 * time.Hour },
		"count":          func(o *Options) { o.Count = -1 },
		"rate":           func(o *Options) { o.Rate = -1 },
		"ramp":           func(o *Options) { o.Ramp = 1e7 },
		"token+secret":   func(o *Options) { o.Token, o.Secret = "t", "s" },
		"sources":        func(o *Options) { o.Sources = 251 },
		"cacert+insec":   func(o *Options) { o.CACertFile, o.InsecureSkipVerify = "x", true },
		"pid":            func(o *Options) { o.ServerPID = -2 },
		"node url":       func(o *Options) { o.Nodes = []string{"http://127.0.0.1:2/"} },
		"pids per node":  func(o *Options) { o.Nodes, o.ServerPIDs = []string{"ws://127.0.0.1:2/"}, []int{1} },
		"zero pid":       func(o *Options) { o.ServerPIDs = []int{0} },
		"sign mode":      func(o *Options) { o.Mode, o.Sign, o.Secret = Fanout, "hmac", "s" },
		"sign no secret": func(o *Options) { o.Sign = "hmac" },
		"sign kind":      func(o *Options) { o.Sign, o.Secret = "pop", "s" },
		"source offset":  func(o *Options) { o.SourceOffset, o.Sources = 249, 2 },
	}
	for name, mut := range bad {
		o := ok
		mut(&o)
		if err := o.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestTargetMustBeLoopback(t *testing.T) {
	ctx := context.Background()
	for _, u := range []string{"ws://10.1.2.3/ws", "wss://192.0.2.1:443/"} {
		o := Options{URL: u, Mode: Echo}
		if err := o.CheckTarget(ctx); err == nil || !strings.Contains(err.Error(), "--allow-remote") {
			t.Errorf("%s: %v", u, err)
		}
		o.AllowRemote = true
		if err := o.CheckTarget(ctx); err != nil {
			t.Errorf("%s with allow-remote: %v", u, err)
		}
	}
	for _, u := range []string{"ws://127.0.0.1:1/", "ws://[::1]:1/", "ws://localhost:1/"} {
		o := Options{URL: u}
		if err := o.CheckTarget(ctx); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
	if _, err := Run(ctx, Options{URL: "ws://10.1.2.3/", Mode: Echo}); err == nil {
		t.Fatal("Run accepted a remote target")
	}
}

func TestFileLimitNamed(t *testing.T) {
	max := MaxConnsPerProcess()
	if max >= maxConns {
		t.Skip("no file limit here")
	}
	_, err := Run(context.Background(), Options{URL: "ws://127.0.0.1:1/", Mode: Idle, Conns: max + 10})
	if err == nil || !strings.Contains(err.Error(), "--procs 2") || !strings.Contains(err.Error(), "RLIMIT_NOFILE") {
		t.Fatalf("err %v", err)
	}
	if _, err := RunProcs(context.Background(), Options{URL: "ws://127.0.0.1:1/", Mode: Idle, Conns: max + 10}, 0, nil); err == nil {
		t.Fatal("procs 0 accepted")
	}
}

func TestRefusedConnectionsCounted(t *testing.T) {
	o := Options{URL: "ws://127.0.0.1:1/", Mode: Echo, Conns: 3, Duration: 50 * time.Millisecond}
	res := run(t, o)
	if res.Opened != 0 || res.Failed != 3 || res.Errors["connection refused"] != 3 {
		t.Fatalf("result %+v", res)
	}
}

// Signed pings: the key comes from the ticket endpoint, every ping is an
// envelope the server verifies (a bad one gets an error reply; unsigned pings
// pass as keepalives, so they are no proof).
func TestSignedEcho(t *testing.T) {
	_, o := serverWith(t, func(c *config.Config) {
		c.Integrity.Mode = "hmac"
		c.Integrity.MasterKeys = []config.IntegrityKey{{ID: "k1", Secret: strings.Repeat("m", 40)}}
	})
	o.Mode, o.Conns, o.Sign = Echo, 3, "hmac"
	res := run(t, o)
	if res.Opened != 3 || res.Ops == 0 || res.ReplyErrors != 0 || res.Timeouts != 0 || res.ClosedEarly != 0 {
		t.Fatalf("result %+v errors %v", res, res.Errors)
	}
}

func TestSignWithoutServerKeys(t *testing.T) {
	_, o := server(t)
	o.Mode, o.Conns, o.Sign = Echo, 1, "hmac"
	if res := run(t, o); res.Opened != 0 || res.Errors["no integrity key"] != 1 {
		t.Fatalf("result %+v", res)
	}
}

// Two servers as the nodes of one run: connections alternate, each node is
// sampled on its own (both are this test process here).
func TestNodes(t *testing.T) {
	_, o := server(t)
	s2, _ := server(t)
	o.CACertFile, o.InsecureSkipVerify = "", true // two self-signed certificates
	o.Nodes = []string{s2.URL}
	o.ServerPID, o.ServerPIDs = 0, []int{os.Getpid(), os.Getpid()}
	o.Mode, o.Conns, o.Rate, o.Count = Fanout, 6, 10, 1
	res := run(t, o)
	if res.Opened != 6 || len(res.OpenedPerTarget) != 2 || res.OpenedPerTarget[0] != 3 || res.OpenedPerTarget[1] != 3 {
		t.Fatalf("result %+v", res)
	}
	if len(res.Nodes) != 2 || res.Nodes[1].Opened != 3 || res.Nodes[1].Target != safeURL(s2.URL) || res.Server == nil || res.Server.PID != 0 {
		t.Fatalf("nodes %+v server %+v", res.Nodes, res.Server)
	}
	// One publication reached the subscribers of its own node only: the two
	// test servers share no broker (with Redis they would).
	if res.Published != 1 || res.Ops != 3 {
		t.Fatalf("published %d delivered %d", res.Published, res.Ops)
	}
	var b strings.Builder
	if err := res.WriteTable(&b); err != nil || !strings.Contains(b.String(), "KiB per connection") {
		t.Fatalf("table %v\n%s", err, b.String())
	}
}

func TestSourceOffset(t *testing.T) {
	d, err := newDialer(Options{URL: "ws://127.0.0.1:1/", Mode: Idle, Sources: 2, SourceOffset: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.sources) != 2 || d.sources[0].String() != "127.0.0.4" || d.sources[1].String() != "127.0.0.5" {
		t.Fatalf("sources %v", d.sources)
	}
	if n := sourceCount(Options{Conns: 16001}); n != 2 {
		t.Fatalf("sourceCount %d", n)
	}
}

// A run against a server that rate-limits the traffic measures refusals:
// the result says so (Problems), loudly in the table, and counts them.
func TestRefusalsMakeTheRunInvalid(t *testing.T) {
	_, o := serverWith(t, func(c *config.Config) {
		small := config.RateLimit{Rate: 1, Burst: 2}
		c.Rate.Tiers = map[string]config.Tier{"default": {Messages: small, Bytes: config.RateLimit{Rate: 1e9, Burst: 1e9},
			UserMessages: small, UserBytes: config.RateLimit{Rate: 1e9, Burst: 1e9}, IPMessages: small, IPBytes: config.RateLimit{Rate: 1e9, Burst: 1e9}}}
		c.Limits.Connections.PerIP = 2
	})
	o.Mode, o.Conns, o.Duration = Echo, 4, time.Second
	res := run(t, o)
	if res.Refused < 2 || res.Errors["http 429"] < 2 || len(res.Problems) == 0 {
		t.Fatalf("refusals not counted or not judged: %+v", res)
	}
	var b strings.Builder
	if err := res.WriteTable(&b); err != nil || !strings.Contains(b.String(), "INVALID RUN") || !strings.Contains(b.String(), "refused with an HTTP status") {
		t.Fatalf("table %v\n%s", err, b.String())
	}
	// A healthy run has no problems.
	_, o = server(t)
	o.Mode, o.Conns = Echo, 3
	if res := run(t, o); len(res.Problems) != 0 {
		t.Fatalf("healthy run judged invalid: %v", res.Problems)
	}
}

func TestJudge(t *testing.T) {
	r := &Result{Mode: Echo, Requested: 10, Opened: 10, Ops: 100, ReplyErrors: 900, ClosedEarly: 5,
		CloseCodes: map[string]int{"1008": 5}}
	r.judge()
	if len(r.Problems) != 2 || !strings.Contains(strings.Join(r.Problems, "|"), "1008: 5") {
		t.Fatalf("problems %q", r.Problems)
	}
	r = &Result{Mode: Handshake, Requested: 2, Ops: 5, Failed: 50, Errors: map[string]int{"http 403": 50}}
	r.judge()
	if r.Refused != 50 || len(r.Problems) != 1 {
		t.Fatalf("handshake: refused %d problems %q", r.Refused, r.Problems)
	}
}
