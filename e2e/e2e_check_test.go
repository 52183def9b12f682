package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/conn/transport"
	"github.com/wsgate/wsgate/internal/tools/check"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/wsserve"
)

// runCheck audits url and returns the report, logging it for failures.
func runCheck(t *testing.T, o check.Options) *check.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if o.IdleWait == 0 {
		o.IdleWait = time.Second
	}
	rep, err := check.Run(ctx, &o)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	_ = rep.WriteText(&b)
	t.Log("\n" + b.String())
	return rep
}

func wantStatus(t *testing.T, rep *check.Report, name string, want ...check.Status) {
	t.Helper()
	r := rep.Result(name)
	if r == nil {
		t.Errorf("%s: not run", name)
		return
	}
	for _, w := range want {
		if r.Status == w {
			return
		}
	}
	t.Errorf("%s: %s, want %v (got: %s)", name, r.Status, want, r.Got)
}

// A wsgate with the defaults (plus a short idle timeout, so the idle check can
// see it) passes every check it can run.
func TestCheckSecureWsgate(t *testing.T) {
	cfg := wsgatetest.Config()
	cfg.Timeouts.Idle = time.Second
	cfg.Timeouts.PingInterval = time.Second // so that the keepalive check sees a ping
	s := wsgatetest.Start(t, cfg)
	rep := runCheck(t, check.Options{
		URL:            s.URL,
		Secret:         wsgatetest.Secret,
		Kid:            "test",
		CACertPEM:      s.CertPEM,
		IdleWait:       3 * time.Second,
		KeepaliveWait:  3 * time.Second,
		Amplification:  true,
		CertExpiryWarn: 24 * time.Hour, // the test certificate lives 7 days
	})
	for _, r := range rep.Results {
		if r.Status != check.Pass && r.Status != check.Skip {
			t.Errorf("%s: %s: %s", r.Name, r.Status, r.Got)
		}
	}
	if rep.ExitCode != check.ExitOK {
		t.Errorf("exit code %d", rep.ExitCode)
	}
	for _, n := range []string{"expired-token", "bad-signature", "alg-none", "cross-origin", "oversize", "message-flood", "conn-flood",
		"auth-after-upgrade", "claims-no-exp", "claims-subject", "claims-lifetime", "token-expiry", "token-echo", "version-426",
		"oversized-headers", "slowloris", "keepalive", "size-buffering", "json-bomb", "binary-frames", "invalid-utf8",
		"invalid-rate", "ping-flood", "amplification", "slot-leak", "handshake-rate", "malformed-query", "malformed-host"} {
		wantStatus(t, rep, n, check.Pass)
	}
	// The report never prints the secret or a token.
	var b bytes.Buffer
	_ = rep.WriteJSON(&b)
	if strings.Contains(b.String(), wsgatetest.Secret) || strings.Contains(b.String(), "eyJ") {
		t.Error("report contains the secret or a token")
	}
}

// Each insecure option turns the matching check red.
func TestCheckInsecureWsgate(t *testing.T) {
	cfg := wsgatetest.Config()
	cfg.Auth.AllowQueryToken = true
	cfg.Origins.Allowed = []string{"https://evil.example"}
	cfg.Compression.Enabled = true
	cfg.Limits.HandshakeRate = config.RateLimit{Rate: 100000, Burst: 100000}
	cfg.Limits.Connections = config.Connections{PerIP: 10000, PerUser: 10000, Global: 10000}
	cfg.Limits.Outbox = config.Outbox{MaxMessages: 100000, MaxBytes: 64 << 20}
	big := config.RateLimit{Rate: 1e6, Burst: 1e6}
	cfg.Rate.Tiers = map[string]config.Tier{"default": {
		Messages: big, Bytes: config.RateLimit{Rate: 1 << 30, Burst: 1 << 30},
		UserMessages: big, UserBytes: config.RateLimit{Rate: 1 << 30, Burst: 1 << 30},
		IPMessages: big, IPBytes: config.RateLimit{Rate: 1 << 30, Burst: 1 << 30},
	}}
	s := wsgatetest.Start(t, cfg)
	rep := runCheck(t, check.Options{
		URL: s.URL, Secret: wsgatetest.Secret, Kid: "test", CACertPEM: s.CertPEM,
		Only: []string{"no-credential", "token-in-url", "cross-origin", "compression", "conn-flood", "message-flood"},
	})
	wantStatus(t, rep, "no-credential", check.Pass)
	wantStatus(t, rep, "token-in-url", check.Fail)
	wantStatus(t, rep, "cross-origin", check.Fail)
	wantStatus(t, rep, "compression", check.Warn)
	wantStatus(t, rep, "conn-flood", check.Warn, check.Fail)
	wantStatus(t, rep, "message-flood", check.Fail, check.Warn)
	if rep.ExitCode != check.ExitFail {
		t.Errorf("exit code %d, want %d", rep.ExitCode, check.ExitFail)
	}
}

// naiveServer is the guide's anti-pattern: no auth, no limits, any origin,
// compression on, TLS 1.0 accepted, echoes everything and shows a stack
// trace for invalid JSON.
func naiveServer(t *testing.T) (*httptest.Server, []byte) {
	t.Helper()
	srv := wsserve.Start(t, naiveEcho{}, wsserve.Options{
		Transport: &transport.Options{MaxMessageBytes: 8 << 20, AllowBinary: true, Compression: transport.Compression{Enabled: true}},
		TLS:       &tls.Config{MinVersion: tls.VersionTLS10},
	})
	return srv.Server, srv.CertPEM
}

// naiveEcho echoes, but answers invalid JSON with a stack trace.
type naiveEcho struct{ wsserve.Echo }

func (e naiveEcho) OnMessage(c *transport.Conn, op transport.Opcode, data []byte) {
	if op == transport.Text && len(data) > 0 && data[0] == '{' && !json.Valid(data) {
		_ = c.WriteMessage(transport.Text, []byte(`{"error":"panic: unexpected end of JSON input\ngoroutine 7 [running]:\nmain.handle(0xc0001)\n\t/srv/naive/main.go:42 +0x1d"}`))
		return
	}
	e.Echo.OnMessage(c, op, data)
}

func TestCheckNaiveServer(t *testing.T) {
	srv, ca := naiveServer(t)
	url := "wss" + strings.TrimPrefix(srv.URL, "https") + "/ws"
	// Any secret: the naive server checks nothing, so every forged token gets in.
	rep := runCheck(t, check.Options{URL: url, CACertPEM: ca, Secret: "any-secret-any-secret-any-secret-0123"})
	for _, n := range []string{"tls-version", "no-credential", "malformed-token", "expired-token", "bad-signature", "alg-none",
		"token-in-url", "cross-origin",
		"oversize", "unknown-type", "error-leak", "message-flood"} {
		wantStatus(t, rep, n, check.Fail)
	}
	wantStatus(t, rep, "compression", check.Warn)
	wantStatus(t, rep, "conn-flood", check.Warn)
	wantStatus(t, rep, "idle-timeout", check.Warn)
	wantStatus(t, rep, "invalid-json", check.Pass) // it does answer with an error (and a stack trace)
	if rep.ExitCode != check.ExitFail {
		t.Errorf("exit code %d, want %d", rep.ExitCode, check.ExitFail)
	}
}

// The cobra command path: exit status, JSON output, the remote-target guard.
func TestCheckCommand(t *testing.T) {
	srv, ca := naiveServer(t)
	caFile := t.TempDir() + "/ca.pem"
	if err := writeCheckFile(caFile, ca); err != nil {
		t.Fatal(err)
	}
	url := "wss" + strings.TrimPrefix(srv.URL, "https") + "/ws"
	run := func(args ...string) (string, string, error) {
		cmd := check.NewCommand()
		var out, errOut bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&errOut)
		cmd.SetArgs(args)
		err := cmd.ExecuteContext(context.Background())
		return out.String(), errOut.String(), err
	}
	out, progress, err := run(url, "--cacert", caFile, "--only", "no-credential,tls-cert", "--json")
	var ee *check.ExitError
	if !errors.As(err, &ee) || ee.Code != check.ExitFail {
		t.Fatalf("err %v, want exit status %d", err, check.ExitFail)
	}
	var rep check.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("--json output: %v\n%s", err, out)
	}
	if len(rep.Results) != 2 || rep.Result("no-credential").Status != check.Fail || rep.Result("tls-cert").Status != check.Pass {
		t.Fatalf("report %+v", rep.Results)
	}
	if !strings.Contains(progress, "no-credential") {
		t.Errorf("no progress line on stderr: %q", progress)
	}
	// All checks selected pass: exit 0.
	if _, _, err := run(url, "--cacert", caFile, "--only", "tls-cert", "-q"); err != nil {
		t.Fatalf("passing run: %v", err)
	}
	// A remote target needs --allow-remote.
	_, _, err = run("wss://192.0.2.10/ws", "--only", "tls-cert")
	if err == nil || !strings.Contains(err.Error(), "--allow-remote") {
		t.Fatalf("remote target: %v", err)
	}
}

func writeCheckFile(path string, b []byte) error { return os.WriteFile(path, b, 0o600) }

// --format and --profile through the command: a profile that accepts the
// FAIL turns the exit status to 0 and says why in the report.
func TestCheckCommandFormatsAndProfile(t *testing.T) {
	srv, ca := naiveServer(t)
	dir := t.TempDir()
	caFile, profile := dir+"/ca.pem", dir+"/profile.yaml"
	if err := writeCheckFile(caFile, ca); err != nil {
		t.Fatal(err)
	}
	if err := writeCheckFile(profile, []byte("accept:\n  no-credential: \"public demo endpoint\"\n")); err != nil {
		t.Fatal(err)
	}
	url := "wss" + strings.TrimPrefix(srv.URL, "https") + "/ws"
	run := func(args ...string) (string, error) {
		cmd := check.NewCommand()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(io.Discard)
		cmd.SetArgs(append([]string{url, "--cacert", caFile, "--only", "no-credential", "-q"}, args...))
		err := cmd.ExecuteContext(context.Background())
		return out.String(), err
	}
	for _, f := range []string{"sarif", "junit", "markdown", "text", "json"} {
		out, err := run("--format", f)
		var ee *check.ExitError
		if !errors.As(err, &ee) || ee.Code != check.ExitFail || !strings.Contains(out, "no-credential") {
			t.Errorf("--format %s: err %v\n%s", f, err, out)
		}
	}
	out, err := run("--profile", profile, "--format", "markdown")
	if err != nil || !strings.Contains(out, "public demo endpoint") {
		t.Errorf("--profile: err %v\n%s", err, out)
	}
	if _, err := run("--format", "yaml"); err == nil || !strings.Contains(err.Error(), "sarif") {
		t.Errorf("bad --format: %v", err)
	}
}
