package e2e

import (
	"bytes"
	"context"
	"encoding/xml"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/wsgate/wsgate/internal/tools/check"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest"
)

// The guide's own Node and Python servers (../shared/peers), started fresh
// by each test, must show the weaknesses their README documents; wsgate in
// development mode must show none and keep serving loopback afterwards.

// seedSecret is the JWT_SECRET the seeds are started with.
const seedSecret = "check-seed-secret-check-seed-secret-0123"

// needExternal skips, or fails under WSGATETEST_REQUIRE_EXTERNAL=1, when
// something the test needs from outside Go is missing.
func needExternal(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if wsgatetest.RequireExternal() {
		t.Fatalf("%s: %v (see scripts/test.sh for the packages)", what, err)
	}
	t.Skipf("%s: %v", what, err)
}

// peersCopy copies the reference peers (WSGATETEST_PEERS_DIR, or ../shared/peers
// next to the main checkout or a worktree) to a writable temp directory. A
// clone without them skips; WSGATETEST_PEERS_DIR set to a missing directory fails.
func peersCopy(t *testing.T) string {
	t.Helper()
	var src string
	if d := os.Getenv("WSGATETEST_PEERS_DIR"); d != "" {
		if _, err := os.Stat(filepath.Join(d, "node-seed", "server.js")); err != nil {
			t.Fatalf("WSGATETEST_PEERS_DIR: %v", err)
		}
		src = d
	}
	for _, d := range []string{"../../shared/peers", "../../../shared/peers"} {
		if _, err := os.Stat(filepath.Join(d, "node-seed", "server.js")); src == "" && err == nil {
			src = d
		}
	}
	if src == "" {
		t.Skip("the reference peers (../shared/peers) are not next to this checkout; set WSGATETEST_PEERS_DIR")
	}
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			if d.Name() == "node_modules" {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startSeed runs cmd (in dir, with PORT and JWT_SECRET) and waits until the
// port accepts connections. It returns the URL and the process's output.
//
// The port is picked free and then handed to the process, so another process
// can take it in between — or this test's own readiness dial can, when it
// connects to itself (Linux TCP simultaneous open on a free loopback port in
// the ephemeral range). A process that exits with "address already in use" is
// therefore started again on another port, up to three times.
func startSeed(t *testing.T, dir string, name string, args ...string) (string, *exec.Cmd, *wsgatetest.LogBuffer) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		url, cmd, logs, inUse := startSeedOnce(t, dir, name, args...)
		if !inUse {
			return url, cmd, logs
		}
		if attempt == 3 {
			t.Fatalf("%s: port in use three times: %s", name, logs.String())
		}
	}
}

func startSeedOnce(t *testing.T, dir string, name string, args ...string) (string, *exec.Cmd, *wsgatetest.LogBuffer, bool) {
	t.Helper()
	port := freePort(t)
	logs := &wsgatetest.LogBuffer{}
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PORT="+strconv.Itoa(port), "JWT_SECRET="+seedSecret)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(45 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			self := c.LocalAddr().String() == c.RemoteAddr().String()
			_ = c.Close()
			if !self {
				break
			}
		}
		select {
		case <-exited:
			if out := logs.String(); strings.Contains(out, "EADDRINUSE") || strings.Contains(out, "ddress already in use") {
				return "", nil, logs, true
			}
			t.Fatalf("%s exited before listening: %s", name, logs.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not listening on %s within 45s: %s", name, addr, logs.String())
		}
	}
	return "ws://" + addr + "/", cmd, logs, false
}

// auditSeed runs the whole catalogue (with the opt-in amplification probe)
// and checks the run's bounds and its machine-readable outputs.
func auditSeed(t *testing.T, url string) *check.Report {
	t.Helper()
	start := time.Now()
	rep := runCheck(t, check.Options{URL: url, Secret: seedSecret, Amplification: true, IdleWait: 5 * time.Second})
	if d := time.Since(start); d >= 60*time.Second {
		t.Errorf("the run took %s, want < 60s", d)
	}
	if rep.Summary.Error != 0 {
		t.Errorf("%d ERROR, want 0", rep.Summary.Error)
	}
	checkOutputs(t, rep)
	return rep
}

// checkOutputs validates the SARIF against the vendored SARIF 2.1.0 schema
// and parses the JUnit XML.
func checkOutputs(t *testing.T, rep *check.Report) {
	t.Helper()
	var sarif, junit, md bytes.Buffer
	for f, w := range map[string]*bytes.Buffer{"sarif": &sarif, "junit": &junit, "markdown": &md} {
		if err := rep.WriteFormat(w, f); err != nil {
			t.Fatal(err)
		}
	}
	sf, err := os.Open("../internal/tools/check/testdata/sarif-schema-2.1.0.json")
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	doc, err := jsonschema.UnmarshalJSON(sf)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("sarif.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("sarif.json")
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(&sarif)
	if err != nil {
		t.Fatal(err)
	}
	if err := sch.Validate(inst); err != nil {
		t.Errorf("SARIF does not validate against the 2.1.0 schema: %v", err)
	}
	var suites struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
	}
	if err := xml.Unmarshal(junit.Bytes(), &suites); err != nil {
		t.Errorf("JUnit XML does not parse: %v", err)
	} else if suites.Tests != len(rep.Results) || suites.Failures != rep.Summary.Fail {
		t.Errorf("JUnit counts %+v, want %d tests, %d failures", suites, len(rep.Results), rep.Summary.Fail)
	}
	if !strings.Contains(md.String(), "| --- |") {
		t.Error("markdown has no table")
	}
}

func wantFails(t *testing.T, rep *check.Report, min int, names ...string) {
	t.Helper()
	for _, n := range names {
		wantStatus(t, rep, n, check.Fail)
	}
	if rep.Summary.Fail < min {
		t.Errorf("%d FAIL, want at least %d", rep.Summary.Fail, min)
	}
	if rep.ExitCode != check.ExitFail {
		t.Errorf("exit code %d, want %d", rep.ExitCode, check.ExitFail)
	}
}

func TestCheckNodeSeed(t *testing.T) {
	for _, bin := range []string{"node", "npm"} {
		_, err := exec.LookPath(bin)
		needExternal(t, bin, err)
	}
	dir := filepath.Join(peersCopy(t), "node-seed")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	npm := exec.CommandContext(ctx, "npm", "install", "--no-audit", "--no-fund")
	npm.Dir = dir
	if out, err := npm.CombinedOutput(); err != nil {
		needExternal(t, "npm install in node-seed", err)
		t.Logf("%s", out)
	}
	url, _, _ := startSeed(t, dir, "node", "server.js")
	rep := auditSeed(t, url)
	// README node-seed: 1 slot leak, 2 crash on Host, 3 XFF, 4 size after
	// buffering, 5 broadcast amplification, 6 no exp / no subject, 7 token
	// echoed, 8 no unauthenticated handshake limit, 10 no heartbeat; and what
	// the guide's checklist adds (query tokens, Origin, claims, binary, …).
	wantFails(t, rep, 10, "slot-leak", "malformed-host", "xff-spoof", "size-buffering", "amplification",
		"claims-no-exp", "claims-subject", "token-echo", "handshake-rate", "token-in-url", "cross-origin",
		"claims-lifetime", "token-expiry", "json-bomb", "binary-frames", "slowloris")
	wantStatus(t, rep, "keepalive", check.Warn)
	for _, n := range []string{"no-credential", "bad-signature", "alg-none", "expired-token", "invalid-utf8", "message-flood", "invalid-rate"} {
		wantStatus(t, rep, n, check.Pass)
	}
}

func TestCheckPythonSeed(t *testing.T) {
	py := "/usr/bin/python3"
	probe := exec.Command(py, "-c", "import websockets, jwt")
	if out, err := probe.CombinedOutput(); err != nil {
		needExternal(t, "Debian python3-websockets and python3-jwt ("+strings.TrimSpace(string(out))+")", err)
	}
	dir := filepath.Join(peersCopy(t), "python-seed")
	url, _, _ := startSeed(t, dir, py, "server.py")
	rep := auditSeed(t, url)
	// README python-seed: 2 authentication after the upgrade, 3 query crash,
	// 4 binary crash, 6 size after buffering, 7 invalid messages bypass the
	// rate limit, 10 no exp required; and the guide's checklist.
	wantFails(t, rep, 8, "auth-after-upgrade", "malformed-query", "binary-frames", "size-buffering", "invalid-rate",
		"claims-no-exp", "claims-lifetime", "token-expiry", "token-in-url", "cross-origin", "json-bomb", "handshake-rate")
	for _, n := range []string{"no-credential", "bad-signature", "alg-none"} {
		wantStatus(t, rep, n, check.Warn) // refused, but after the upgrade
	}
	for _, n := range []string{"slot-leak", "xff-spoof", "malformed-host", "token-echo", "invalid-utf8", "message-flood"} {
		wantStatus(t, rep, n, check.Pass)
	}
}

// wsgate as `serve --dev` sets it up: every check PASSes or at most WARNs
// (timeouts longer than the waits), nothing FAILs or ERRORs, and a browser
// on 127.0.0.1 still gets in right after the run (no lockout).
func TestCheckDevServerNoLockout(t *testing.T) {
	s, info := startDevServer(t)
	t.Cleanup(func() { _ = os.Remove(info.CertFile) })
	rep := runCheck(t, check.Options{URL: s.URL, Secret: info.Secret, Kid: "dev", CACertPEM: s.CertPEM,
		Amplification: true, CertExpiryWarn: 24 * time.Hour})
	if rep.Summary.Fail != 0 || rep.Summary.Error != 0 || rep.ExitCode != check.ExitOK {
		t.Errorf("against wsgate --dev: %s", rep.SummaryLine())
	}
	// A second run right after meets no bans of the first (its users and
	// addresses are its own).
	again := runCheck(t, check.Options{URL: s.URL, Secret: info.Secret, Kid: "dev", CACertPEM: s.CertPEM,
		Only: []string{"baseline", "oversize", "json-bomb", "invalid-json", "message-flood", "invalid-rate"}})
	if again.Summary.Error != 0 || again.Summary.Fail != 0 {
		t.Errorf("second run: %s", again.SummaryLine())
	}
	c := s.Connect(t, "after-check", nil) // from 127.0.0.1, as the demo page
	c.Send(t, `{"type":"ping","id":"after"}`)
	c.Expect(t, "pong", 5*time.Second)
	resp, err := s.HTTPClient().Get(s.HTTPURL + "/")
	if err != nil {
		t.Fatalf("demo page after the run: %v", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("demo page after the run: %d", resp.StatusCode)
	}
}
