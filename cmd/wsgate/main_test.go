package main

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

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
	out, err := run(t, nil, "serve", "--listen", "127.0.0.1:0")
	if err == nil {
		t.Fatal("server started without keys or TLS")
	}
	for _, want := range []string{"auth.keys", "tls.cert_file", "--dev"} {
		if !strings.Contains(out, want) {
			t.Errorf("output does not mention %s:\n%s", want, out)
		}
	}
	out, err = run(t, nil, "token", "--secret", "short", "--sub", "a")
	if err == nil || !strings.Contains(out, "32") {
		t.Errorf("short secret accepted or unclear: %s", out)
	}
	out, err = run(t, nil, "token", "--secret", strings.Repeat("k", 32), "--sub", "alice", "--claim", "tier=pro")
	if err != nil || strings.Count(strings.TrimSpace(out), ".") != 2 {
		t.Errorf("token: %v %s", err, out)
	}
	out, err = run(t, nil, "serve", "--bogus")
	if err == nil || !strings.Contains(out, "bogus") {
		t.Errorf("unknown flag: %v %s", err, out)
	}
}
