package main

import (
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/conn/transport"
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
	d := startDev(t, nil, "--admin-listen", "127.0.0.1:0")
	rec, _, err := dial(t, d.url, d.token, d.tls)
	if err != nil {
		t.Fatalf("sample token from the banner refused: %v", err)
	}
	rec.expectWelcome(t)
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
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
	if err := d.stop(t); err != nil {
		t.Fatalf("exit: %v (want status 0)", err)
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
