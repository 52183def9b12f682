package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/transport"
)

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

// The README's first command: `wsgate serve --dev` prints a banner with the URL, the
// secret and a sample token that works; SIGTERM sends 1001 and exits 0.
func TestServeDevBannerTokenAndGracefulExit(t *testing.T) {
	bin := buildBinary(t)
	cmd := exec.Command(bin, "serve", "--dev", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--log-level", "warn")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	sc := bufio.NewScanner(stdout)
	var url, token, caFile string
	urlRE := regexp.MustCompile(`WebSocket URL:\s+(\S+)`)
	caRE := regexp.MustCompile(`--cacert (\S+)`)
	lines := make(chan string, 100)
	go func() {
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	deadline := time.After(30 * time.Second)
	expectToken := false
	for url == "" || token == "" || caFile == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("server exited before printing the banner")
			}
			if m := urlRE.FindStringSubmatch(l); m != nil {
				url = m[1]
			}
			if m := caRE.FindStringSubmatch(l); m != nil {
				caFile = m[1]
			}
			if expectToken {
				token = strings.TrimSpace(l)
				expectToken = false
			}
			if strings.HasPrefix(l, "Sample token") {
				expectToken = true
			}
		case <-deadline:
			t.Fatalf("no complete banner (url=%q token=%v ca=%q)", url, token != "", caFile)
		}
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	rec := &closeRecorder{done: make(chan struct{}), msgs: make(chan []byte, 16)}
	conn, _, err := transport.Dial(context.Background(), url, &transport.DialOptions{
		Header:    http.Header{"Authorization": {"Bearer " + token}},
		TLSConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}, rec)
	if err != nil {
		t.Fatalf("sample token from the banner refused: %v", err)
	}
	go conn.Serve()
	select {
	case m := <-rec.msgs:
		if !strings.Contains(string(m), `"welcome"`) {
			t.Fatalf("first message %s", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no welcome")
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-rec.done:
		if rec.code != 1001 {
			t.Fatalf("close code %d, want 1001", rec.code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("client not closed on SIGTERM")
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err := <-waited:
		if err != nil {
			t.Fatalf("exit: %v (want status 0)", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("process did not exit within the drain timeout")
	}
}

func TestServeWithoutKeysRefusesAndSaysWhat(t *testing.T) {
	bin := buildBinary(t)
	out, err := exec.Command(bin, "serve", "--listen", "127.0.0.1:0").CombinedOutput()
	if err == nil {
		t.Fatal("server started without keys or TLS")
	}
	for _, want := range []string{"auth.keys", "tls.cert_file", "--dev"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output does not mention %s:\n%s", want, out)
		}
	}
	out, err = exec.Command(bin, "token", "--secret", "short", "--sub", "a").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "32") {
		t.Errorf("short secret accepted or unclear: %s", out)
	}
	out, err = exec.Command(bin, "token", "--secret", strings.Repeat("k", 32), "--sub", "alice", "--claim", "tier=pro").CombinedOutput()
	if err != nil || strings.Count(strings.TrimSpace(string(out)), ".") != 2 {
		t.Errorf("token: %v %s", err, out)
	}
	out, err = exec.Command(bin, "serve", "--bogus").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "bogus") {
		t.Errorf("unknown flag: %v %s", err, out)
	}
}
