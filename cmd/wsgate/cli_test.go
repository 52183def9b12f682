package main

import (
	"context"
	"debug/elf"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/tools/wsgatetest"
)

// claimsOf decodes a JWT's claims (test helper; no verification).
func claimsOf(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(strings.TrimSpace(tok), ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// sh runs a command line exactly as printed, as a user pasting it would.
func sh(t *testing.T, line, stdin string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", line)
	cmd.Env = cleanEnv()
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Issue 15 items 5 and 6: the banner's commands work as pasted; connect with a
// pipe on stdin prints the replies that arrive after the input ends; the "mint
// another" command gives the sample's channel rights.
func TestDevBannerCommandsWorkAsPasted(t *testing.T) {
	d := startDev(t, nil)
	if !strings.HasPrefix(d.connect, buildBinary(t)+" connect ") {
		t.Fatalf("connect command does not name the binary that runs: %q", d.connect)
	}
	out, err := sh(t, d.connect, `{"type":"ping","id":"p1"}`+"\n")
	if err != nil || !strings.Contains(out, `"type":"welcome"`) || !strings.Contains(out, `"type":"pong"`) || !strings.Contains(out, "closed: 1000") {
		t.Fatalf("pasted connect with a pipe: %v\n%s", err, out)
	}
	tok, err := sh(t, d.mint, "")
	if err != nil {
		t.Fatalf("pasted mint: %v\n%s", err, tok)
	}
	sample, minted := claimsOf(t, d.token), claimsOf(t, tok)
	if a, b := wsgatetest.JSON(t, sample["channels"]), wsgatetest.JSON(t, minted["channels"]); a != b || a == "null" {
		t.Fatalf("mint another: channels %s, sample has %s", b, a)
	}
	c, resp, err := dial(t, d.url, strings.TrimSpace(tok), d.tls)
	if err != nil {
		t.Fatalf("minted token refused: %v %v", err, resp)
	}
	c.expectWelcome(t)
	// The demo page URL carries the token endpoint's secret in its fragment.
	if !regexp.MustCompile(`^https://127\.0\.0\.1:\d+/#dev=[A-Za-z0-9_-]{40,}$`).MatchString(d.demo) {
		t.Fatalf("demo URL %q", d.demo)
	}
	// The admin listener moved to a free port with --listen 127.0.0.1:0.
	if strings.HasSuffix(d.admin, ":9090") {
		t.Fatalf("admin listener on the default port with --listen :0: %s", d.admin)
	}
	// A second dev server reuses the cached certificate file.
	d2 := startDev(t, nil)
	if d2.caFile != d.caFile {
		t.Fatalf("second start made a new certificate file: %s vs %s", d2.caFile, d.caFile)
	}
}

// Issue 15 item 5: a busy port names --listen 127.0.0.1:0.
func TestBusyPortNamesFreePortFlag(t *testing.T) {
	d := startDev(t, nil)
	out, err := run(t, nil, "serve", "--dev", "--listen", strings.TrimPrefix(strings.TrimSuffix(d.url, "/ws"), "wss://"), "--admin-listen", "")
	if err == nil || !strings.Contains(out, "--listen 127.0.0.1:0") {
		t.Fatalf("busy port: %v\n%s", err, out)
	}
}

// Issue 15 items 5 and 11: `wsgate token` warns when --ttl exceeds max_lifetime;
// `token inspect` explains a token against a configuration; `config validate` and
// `config example`.
func TestTokenAndConfigCommands(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "wsgate.yaml")
	out, err := run(t, nil, "config", "example")
	if err != nil || !strings.Contains(out, "auth:") {
		t.Fatalf("config example: %v\n%.500s", err, out)
	}
	if strings.Contains(out, "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldC0xMjM0") {
		t.Fatal("config example prints the published secret")
	}
	writeFile(t, f, out)
	if out, err := run(t, nil, "config", "validate", f); err != nil || !strings.Contains(out, "valid") {
		t.Fatalf("config validate of the example: %v\n%s", err, out)
	}
	// The published example itself is refused outside --dev, with its line.
	if out, err := run(t, nil, "config", "validate", "../../examples/wsgate.yaml"); err == nil || !strings.Contains(out, "wsgate.yaml:47:15: auth.keys[0].secret: this is the example secret") {
		t.Fatalf("published secret: %v\n%s", err, out)
	}
	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, "limits:\n  max_message_bytes: 16k\ntimeouts:\n  idel: 5s\n")
	out, err = run(t, []string{"WSGATE_LOG__LEVL=debug"}, "config", "validate", bad)
	for _, want := range []string{bad + ":2:22: limits.max_message_bytes: got \"16k\", expected an integer", bad + ":4:3: timeouts.idel: unknown key: did you mean timeouts.idle?", "environment variable WSGATE_LOG__LEVL"} {
		if err == nil || !strings.Contains(out, want) {
			t.Errorf("config validate bad: missing %q in:\n%s", want, out)
		}
	}

	out, err = run(t, nil, "token", "--config", f, "--sub", "alice", "--ttl", "48h")
	if err != nil || !strings.Contains(out, "warning: --ttl 48h0m0s exceeds") {
		t.Fatalf("token --ttl 48h: %v\n%s", err, out)
	}
	tok, err := run(t, nil, "token", "--config", f, "--sub", "alice", "--claims", "tier=pro")
	if err != nil {
		t.Fatalf("token (--claims alias): %v\n%s", err, tok)
	}
	tok = lastField(tok) // after cobra's deprecation notice
	if claimsOf(t, tok)["tier"] != "pro" {
		t.Fatal("--claims alias lost the claim")
	}
	out, err = run(t, nil, "token", "inspect", tok, "--config", f)
	if err != nil || !strings.Contains(out, `VALID for `) || !strings.Contains(out, `subject "alice"`) || !strings.Contains(out, "keys of "+f+" that may verify it") {
		t.Fatalf("inspect valid: %v\n%s", err, out)
	}
	other, _ := run(t, nil, "token", "--secret", strings.Repeat("x", 32), "--sub", "mallory", "--kid", "main")
	out, err = run(t, nil, "token", "inspect", strings.TrimSpace(other), "--config", f)
	if err == nil || !strings.Contains(out, "REFUSED (bad_signature)") || !strings.Contains(out, `sub: "mallory"`) {
		t.Fatalf("inspect forged: %v\n%s", err, out)
	}
	long, _ := run(t, nil, "token", "--config", f, "--sub", "bob", "--ttl", "48h")
	out, err = run(t, nil, "token", "inspect", lastField(long), "--config", f)
	if err == nil || !strings.Contains(out, "REFUSED (lifetime_too_long)") || !strings.Contains(out, "auth.max_lifetime") {
		t.Fatalf("inspect too long: %v\n%s", err, out)
	}
}

// Issue 15 item 8: log.level changes on reload are applied; log.format changes
// are refused with the reason, never silently ignored.
func TestReloadLogSettings(t *testing.T) {
	s := startProd(t, prodYAML)
	certs := filepath.Join(s.dir, "certs")
	writeFile(t, s.file, strings.ReplaceAll(strings.Replace(prodYAML, "level: info", "level: debug", 1), "CERTS", certs))
	if code, body := s.adminDo(t, http.MethodPost, "/api/v1/reload", ""); code != http.StatusOK {
		t.Fatalf("reload: %d %v", code, body)
	}
	s.wait(t, regexp.MustCompile(`"msg":"log level changed".*"to":"debug"`), 10*time.Second)
	s.wait(t, regexp.MustCompile(`"level":"INFO","msg":"configuration reloaded"`), 10*time.Second)
	writeFile(t, s.file, strings.ReplaceAll(strings.Replace(prodYAML, "level: info", "level: debug\n  format: text", 1), "CERTS", certs))
	code, body := s.adminDo(t, http.MethodPost, "/api/v1/reload", "")
	if code != http.StatusUnprocessableEntity || !strings.Contains(wsgatetest.JSON(t, body), "log.format") {
		t.Fatalf("log.format change: %d %v, want 422 naming log.format", code, body)
	}
	_ = os.Remove(s.file)
}

func lastField(s string) string {
	f := strings.Fields(s)
	if len(f) == 0 {
		return ""
	}
	return f[len(f)-1]
}

// Issue 15 item 12: scripts/release.sh builds a versioned static binary whose
// `version` prints the version, with a SHA256SUMS that verifies.
func TestReleaseScript(t *testing.T) {
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "../../scripts/release.sh", "v0.0.1-test")
	cmd.Env = append(cleanEnv(), "PLATFORMS=linux/amd64", "OUT="+out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("release.sh: %v\n%s", err, b)
	}
	bin := filepath.Join(out, "wsgate_v0.0.1-test_linux_amd64")
	v, err := exec.CommandContext(ctx, bin, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(v), "wsgate v0.0.1-test ") {
		t.Fatalf("version: %v %s", err, v)
	}
	check := exec.CommandContext(ctx, "sha256sum", "-c", "SHA256SUMS")
	check.Dir = out
	if b, err := check.CombinedOutput(); err != nil {
		t.Fatalf("SHA256SUMS: %v\n%s", err, b)
	}
	if b, err := exec.CommandContext(ctx, "bash", "../../scripts/release.sh", "1.0").CombinedOutput(); err == nil || !strings.Contains(string(b), "usage") {
		t.Fatalf("bad version accepted: %s", b)
	}
}

// Issue 15 item 2: scripts/gen-certs.sh writes what the README's production
// command and examples/wsgate.yaml name.
func TestGenCertsScriptMatchesExample(t *testing.T) {
	ex, err := os.ReadFile("../../examples/wsgate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"cert_file: examples/certs/server.pem", "key_file: examples/certs/server-key.pem"} {
		if !strings.Contains(string(ex), p) {
			t.Fatalf("examples/wsgate.yaml no longer names %s", p)
		}
	}
	script, err := os.ReadFile("../../scripts/gen-certs.sh")
	if err != nil || !strings.Contains(string(script), "certs --dir examples/certs") {
		t.Fatalf("gen-certs.sh does not write examples/certs: %v", err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"scripts/gen-certs.sh", "config example > wsgate.yaml", "serve --config wsgate.yaml"} {
		if !strings.Contains(string(readme), want) {
			t.Errorf("README's production steps lack %q", want)
		}
	}
	// `wsgate certs` itself (what the script runs) is exercised by every
	// startProd test; here: it refuses to overwrite without --force.
	dir := t.TempDir()
	certsIn(t, dir)
	if out, err := run(t, nil, "certs", "--dir", dir); err == nil || !strings.Contains(out, "--force") {
		t.Fatalf("certs over existing files: %v\n%s", err, out)
	}
	if out, err := run(t, nil, "certs", "--dir", dir, "--force"); err != nil {
		t.Fatalf("certs --force: %v\n%s", err, out)
	}
	if fi, err := os.Stat(filepath.Join(dir, "server-key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("server key mode: %v %v", fi, err)
	}
}

// Issue 15 item 2: the README's production steps, run in a fresh directory: certs
// where examples/wsgate.yaml expects them, the example with a fresh secret,
// validate, serve; a token minted from that config connects.
func TestReadmeProductionFlow(t *testing.T) {
	dir := t.TempDir()
	bin := buildBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	step := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Dir, cmd.Env = dir, cleanEnv()
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("wsgate %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	step("certs", "--dir", "examples/certs")
	writeFile(t, filepath.Join(dir, "wsgate.yaml"), step("config", "example"))
	step("config", "validate", "wsgate.yaml")
	p := startProcIn(t, dir, "serve", "--config", "wsgate.yaml", "--listen", "127.0.0.1:0")
	addr := p.wait(t, listeningRE, 30*time.Second)[1]
	tok := lastField(step("token", "--config", "wsgate.yaml", "--sub", "alice"))
	out := step("connect", "wss://"+addr+"/ws", "--token", tok, "--cacert", "examples/certs/ca.pem", "--wait", "500ms")
	if !strings.Contains(out, `"type":"welcome"`) {
		t.Fatalf("connect: %s", out)
	}
}

// Issue 15 item 6: connect's --insecure, --subprotocol and --header.
func TestConnectFlags(t *testing.T) {
	d := startDev(t, nil)
	out, err := run(t, nil, "connect", d.url, "--token", d.token, "--insecure", "--wait", "300ms")
	if err != nil || !strings.Contains(out, "INSECURE") || !strings.Contains(out, `"type":"welcome"`) {
		t.Fatalf("--insecure: %v\n%s", err, out)
	}
	out, err = run(t, nil, "connect", d.url, "--token", d.token, "--cacert", d.caFile, "--subprotocol", "nope.v9")
	if err == nil {
		t.Fatalf("--subprotocol nope.v9 connected:\n%s", out)
	}
	out, err = run(t, nil, "connect", d.url, "--token", d.token, "--cacert", d.caFile, "--header", "Origin: https://evil.example")
	if err == nil || !strings.Contains(out, "403") {
		t.Fatalf("--header Origin: %v\n%s", err, out)
	}
	if out, err := run(t, nil, "connect", d.url, "--header", "no-colon"); err == nil || !strings.Contains(out, "Name: value") {
		t.Fatalf("bad --header: %v\n%s", err, out)
	}
}

// Issue 15 item 5: started with `go run ./cmd/wsgate serve --dev` from the
// repository root, the banner's commands say `go run ./cmd/wsgate …` and work as
// pasted from there.
func TestDevBannerAfterGoRun(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles wsgate with go run")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "run", "./cmd/wsgate", "serve", "--dev", "--listen", "127.0.0.1:0", "--log-level", "warn")
	cmd.Dir = root
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // go run's child dies with the group
	p := startExec(t, cmd)
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	line := p.wait(t, bannerConn, 3*time.Minute)[1]
	if !strings.HasPrefix(line, "go run ./cmd/wsgate connect ") {
		t.Fatalf("banner after go run: %q", line)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, "sh", "-c", line)
	c.Dir, c.Env = root, cleanEnv()
	c.Stdin = strings.NewReader(`{"type":"ping","id":"p"}` + "\n")
	out, err := c.CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"type":"pong"`) {
		t.Fatalf("pasted %q: %v\n%s", line, err, out)
	}
}

// Issue 15 item 12: no Docker engine runs here, so the Dockerfile's build stage is
// checked by running its own build command (read from the Dockerfile, not
// copied) in a clean environment: the binary must be static (no ELF
// interpreter: it runs on distroless/static) and answer `version` with the
// stamped version.
func TestDockerfileBuildStage(t *testing.T) {
	df, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^RUN (CGO_ENABLED=0 go build [^\n\\]+)`).FindSubmatch(df)
	if m == nil {
		t.Fatal("Dockerfile: no `RUN CGO_ENABLED=0 go build …` line")
	}
	out := filepath.Join(t.TempDir(), "wsgate")
	line := strings.NewReplacer("${VERSION}", "v0.0.2-docker", "/out/wsgate", out).Replace(string(m[1]))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "bash", "-c", line)
	build.Dir = "../.."
	build.Env = cleanEnv()
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", line, err, b)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("the Dockerfile's build produces a dynamically linked binary; distroless/static cannot run it")
		}
	}
	v, err := exec.CommandContext(ctx, out, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(v), "wsgate v0.0.2-docker") {
		t.Fatalf("version: %v %s", err, v)
	}
}
