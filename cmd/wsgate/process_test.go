package main

import (
	"github.com/wsgate/wsgate/internal/tools/wsgatetest"

	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/conn/transport"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

func TestMain(m *testing.M) {
	restore := wsgatetest.IsolateUserCache()
	code := m.Run()
	restore()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// buildBinary compiles wsgate once per test process; every process test runs
// that same binary.
func buildBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "wsgate-bin-*")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "wsgate")
		cmd := exec.Command("go", "build", "-o", binPath, ".")
		cmd.Stderr = os.Stderr
		binErr = cmd.Run()
	})
	if binErr != nil {
		t.Fatalf("build: %v", binErr)
	}
	return binPath
}

// proc is a running wsgate process whose stdout and stderr lines are collected.
type proc struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	lines  []string
	notify chan struct{} // closed and replaced on every new line
	exited chan struct{}
	err    error
}

// startProc runs the built binary with args (and extra environment) until the
// test ends.
func startProc(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	return startCmd(t, "", env, args...)
}

// startProcIn runs the built binary in directory dir.
func startProcIn(t *testing.T, dir string, args ...string) *proc {
	t.Helper()
	return startCmd(t, dir, nil, args...)
}

func startCmd(t *testing.T, dir string, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(buildBinary(t), args...)
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), env...)
	return startExec(t, cmd)
}

// startExec starts cmd, collecting its output lines, and kills it when the test ends.
func startExec(t *testing.T, cmd *exec.Cmd) *proc {
	t.Helper()
	if cmd.Env == nil {
		cmd.Env = cleanEnv()
	}
	p := &proc{cmd: cmd, notify: make(chan struct{}), exited: make(chan struct{})}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errp, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var readers sync.WaitGroup
	for _, r := range []io.Reader{out, errp} {
		readers.Add(1)
		go func() {
			defer readers.Done()
			sc := bufio.NewScanner(r)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				p.mu.Lock()
				p.lines = append(p.lines, sc.Text())
				close(p.notify)
				p.notify = make(chan struct{})
				p.mu.Unlock()
			}
		}()
	}
	go func() {
		readers.Wait()
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			t.Error("process did not exit after kill")
		}
	})
	return p
}

// cleanEnv is the test's environment without WSGATE_* variables, which every
// wsgate process would read as configuration.
func cleanEnv() []string {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "WSGATE_") {
			env = append(env, e)
		}
	}
	return env
}

// wait returns the first submatch of re in the output, waiting at most within.
func (p *proc) wait(t *testing.T, re *regexp.Regexp, within time.Duration) []string {
	t.Helper()
	deadline := time.After(within)
	seen := 0
	for {
		p.mu.Lock()
		lines, ch := p.lines[seen:], p.notify
		seen = len(p.lines)
		p.mu.Unlock()
		for _, l := range lines {
			if m := re.FindStringSubmatch(l); m != nil {
				return m
			}
		}
		select {
		case <-ch:
		case <-p.exited:
			p.mu.Lock()
			done := seen == len(p.lines)
			p.mu.Unlock()
			if done {
				t.Fatalf("process exited (%v) before printing %s; output:\n%s", p.err, re, p.output())
			}
		case <-deadline:
			t.Fatalf("no line matching %s within %s; output:\n%s", re, within, p.output())
		}
	}
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// stop sends SIGTERM and waits for the exit status.
func (p *proc) stop(t *testing.T) error {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return p.err
	case <-time.After(20 * time.Second):
		t.Fatal("process did not exit within 20s of SIGTERM")
		return nil
	}
}

// run runs the built binary to completion with the test's environment
// (without WSGATE_*) plus env and returns its combined output. A run that
// does not end within 60 s fails the test.
func run(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, buildBinary(t), args...)
	cmd.Env = append(cleanEnv(), env...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("wsgate %s: no exit within 60s\n%s", strings.Join(args, " "), out)
	}
	return string(out), err
}

// runCode is run (without extra environment) returning the exit status.
func runCode(t *testing.T, args ...string) (string, int) {
	t.Helper()
	out, err := run(t, nil, args...)
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out, 0
	case errors.As(err, &ee):
		return out, ee.ExitCode()
	}
	t.Fatalf("%v: %v\n%s", args, err, out)
	return "", -1
}

var listeningRE = regexp.MustCompile(`"msg":"listening".*"addr":"([^"]+)".*"admin":"([^"]*)"`)

// prodServer is a production-style server started from a config file.
type prodServer struct {
	*proc
	dir, file, addr, admin string
	tls                    *tls.Config
}

const adminTok = "admin-token-admin-token-admin-token-0123"

// certsIn creates certificates with `wsgate certs` in dir.
func certsIn(t *testing.T, dir string) {
	t.Helper()
	if out, err := run(t, nil, "certs", "--dir", dir); err != nil {
		t.Fatalf("wsgate certs: %v\n%s", err, out)
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startProd writes yaml (with CERTS replaced by the certificate directory) and
// serves it with `wsgate serve -c`.
func startProd(t *testing.T, yaml string) *prodServer {
	t.Helper()
	dir := t.TempDir()
	certs := filepath.Join(dir, "certs")
	certsIn(t, certs)
	s := &prodServer{dir: dir, file: filepath.Join(dir, "wsgate.yaml")}
	writeFile(t, s.file, strings.ReplaceAll(yaml, "CERTS", certs))
	s.proc = startProc(t, nil, "serve", "-c", s.file)
	m := s.wait(t, listeningRE, 30*time.Second)
	s.addr, s.admin = m[1], m[2]
	pem, err := os.ReadFile(filepath.Join(certs, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	s.tls = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return s
}

// adminDo calls the admin API.
func (s *prodServer) adminDo(t *testing.T, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+s.admin+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminTok)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// closeRecorder is the handler of a test connection: the messages that
// arrive (up to 64 unread), and the close code once it ended (done closed).
type closeRecorder struct {
	once sync.Once
	done chan struct{}
	code uint16
	msgs chan []byte
	conn *transport.Conn
}

func (c *closeRecorder) OnMessage(_ *transport.Conn, _ transport.Opcode, b []byte) {
	select {
	case c.msgs <- b:
	default:
	}
}
func (c *closeRecorder) OnPing(*transport.Conn, []byte) {}
func (c *closeRecorder) OnPong(*transport.Conn, []byte) {}
func (c *closeRecorder) OnClose(_ *transport.Conn, err error) {
	c.code, _ = transport.CloseCode(err)
	c.once.Do(func() { close(c.done) })
}

// dial opens a WebSocket with token (and optional client certificate) and
// returns the recorder and the refusal, if any.
func dial(t *testing.T, url, token string, tc *tls.Config) (*closeRecorder, *http.Response, error) {
	t.Helper()
	rec := &closeRecorder{done: make(chan struct{}), msgs: make(chan []byte, 64)}
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	conn, resp, err := transport.Dial(ctx, url, &transport.DialOptions{Header: h, TLSConfig: tc, Subprotocols: []string{"wsgate.v1"}}, rec)
	if err != nil {
		return nil, resp, err
	}
	rec.conn = conn
	go conn.Serve()
	t.Cleanup(func() { _ = conn.WriteClose(transport.StatusNormal, "") })
	return rec, resp, nil
}

// expectWelcome waits for the welcome message.
func (c *closeRecorder) expectWelcome(t *testing.T) {
	t.Helper()
	select {
	case m := <-c.msgs:
		if !strings.Contains(string(m), `"welcome"`) {
			t.Fatalf("first message %s, want welcome", m)
		}
	case <-c.done:
		t.Fatalf("closed (%d) before welcome", c.code)
	case <-time.After(10 * time.Second):
		t.Fatal("no welcome within 10s")
	}
}

// devServer is a `wsgate serve --dev` process and what its banner printed.
type devServer struct {
	*proc
	url, token, caFile, admin, adminToken, demo, mint, connect string
	tls                                                        *tls.Config
}

var (
	bannerURL   = regexp.MustCompile(`WebSocket URL:\s+(\S+)`)
	bannerAdmin = regexp.MustCompile(`Admin listener:\s+http://(\S+)\s+\(admin token: (\S+)\)`)
	bannerDemo  = regexp.MustCompile(`Demo page:\s+(\S+)`)
	bannerToken = regexp.MustCompile(`^(ey\S+\.\S+\.\S+)$`)
	bannerCA    = regexp.MustCompile(`--cacert (\S+)`)
	bannerMint  = regexp.MustCompile(`^\s+(\S.* token --secret .*)$`)
	bannerConn  = regexp.MustCompile(`^\s+(\S.* connect wss://.*)$`)
)

func startDev(t *testing.T, env []string, args ...string) *devServer {
	t.Helper()
	p := startProc(t, env, append([]string{"serve", "--dev", "--listen", "127.0.0.1:0", "--log-level", "warn"}, args...)...)
	d := &devServer{proc: p}
	d.url = p.wait(t, bannerURL, 30*time.Second)[1]
	d.demo = p.wait(t, bannerDemo, 5*time.Second)[1]
	m := p.wait(t, bannerAdmin, 5*time.Second)
	d.admin, d.adminToken = m[1], m[2]
	d.token = p.wait(t, bannerToken, 5*time.Second)[1]
	d.connect = p.wait(t, bannerConn, 5*time.Second)[1]
	d.caFile = p.wait(t, bannerCA, 5*time.Second)[1]
	d.mint = p.wait(t, bannerMint, 5*time.Second)[1]
	pem, err := os.ReadFile(d.caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("%s: no certificate", d.caFile)
	}
	d.tls = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return d
}
