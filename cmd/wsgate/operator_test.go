package main

import (
	"crypto/tls"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/conn/transport"
)

const prodYAML = `listen: 127.0.0.1:0
tls:
  cert_file: CERTS/server.pem
  key_file: CERTS/server-key.pem
auth:
  keys:
    - id: k1
      algorithms: [HS256]
      secret: "first-secret-first-secret-first-secret-0123"
admin:
  listen: 127.0.0.1:0
  token: "` + adminTok + `"
log:
  level: info
`

// Issue 13 item 6: POST /api/v1/reload on a server started with `wsgate serve -c
// FILE` re-reads FILE, answers 200, and the change takes effect (a key added to
// the file verifies tokens after the reload and not before). Through the built
// binary, with certificates from `wsgate certs` (issue 15 item 2).
func TestSec06AdminReloadThroughBinary(t *testing.T) {
	s := startProd(t, prodYAML)
	url := "wss://" + s.addr + "/ws"
	const second = "second-secret-second-secret-second-0123456"
	tok, err := run(t, nil, "token", "--secret", second, "--sub", "alice", "--kid", "k2")
	if err != nil {
		t.Fatalf("token: %v %s", err, tok)
	}
	tok = strings.TrimSpace(tok)
	if _, resp, err := dial(t, url, tok, s.tls); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("token of a key not yet configured: err=%v resp=%v, want 401", err, resp)
	}
	writeFile(t, s.file, strings.ReplaceAll(strings.Replace(prodYAML, "  keys:\n", "  keys:\n    - id: k2\n      algorithms: [HS256]\n      secret: \""+second+"\"\n", 1), "CERTS", filepath.Join(s.dir, "certs")))
	code, body := s.adminDo(t, http.MethodPost, "/api/v1/reload", "")
	if code != http.StatusOK {
		t.Fatalf("POST /api/v1/reload: %d %v, want 200", code, body)
	}
	c, resp, err := dial(t, url, tok, s.tls)
	if err != nil {
		t.Fatalf("token of the reloaded key refused: %v %v", err, resp)
	}
	c.expectWelcome(t)
	// `wsgate admin reload` is the same call from the CLI; a broken file is
	// refused with the reason and the running configuration stays.
	writeFile(t, s.file, "limits:\n  max_message_bytes: 1\n")
	out, err := run(t, nil, "admin", "reload", "--admin", s.admin, "--admin-token", adminTok)
	if err == nil || !strings.Contains(out, "422") || !strings.Contains(out, "max_message_bytes") {
		t.Fatalf("admin reload of a broken file: %v\n%s", err, out)
	}
	if c2, _, err := dial(t, url, tok, s.tls); err != nil {
		t.Fatalf("running configuration lost after a refused reload: %v", err)
	} else {
		c2.expectWelcome(t)
	}
}

// Issue 13 item 4 (the --config half): --dev refuses a configuration file rather
// than adding a printed key next to production keys.
func TestSec04DevRefusesConfigFile(t *testing.T) {
	dir := t.TempDir()
	certsIn(t, filepath.Join(dir, "certs"))
	f := filepath.Join(dir, "prod.yaml")
	writeFile(t, f, strings.ReplaceAll(prodYAML, "CERTS", filepath.Join(dir, "certs")))
	out, err := run(t, nil, "serve", "--dev", "--config", f)
	if err == nil || !strings.Contains(out, "--dev refuses --config") {
		t.Fatalf("serve --dev --config: %v\n%s", err, out)
	}
}

// Issue 15 item 1: `wsgate admin bans` and `wsgate admin unban SUBJECT`, token
// from the flag or from WSGATE_ADMIN__TOKEN (the variable that also sets the
// server's admin.token, so `serve` in the same shell does not trip over it).
func TestAdminBansAndUnbanCLI(t *testing.T) {
	s := startProd(t, prodYAML)
	if code, body := s.adminDo(t, http.MethodPost, "/api/v1/bans", `{"subject":"ip:203.0.113.7","ttl":"10m","reason":"test"}`); code/100 != 2 {
		t.Fatalf("create ban: %d %v", code, body)
	}
	env := []string{"WSGATE_ADMIN__TOKEN=" + adminTok}
	out, err := run(t, env, "admin", "bans", "--admin", s.admin)
	if err != nil || !strings.Contains(out, "ip:203.0.113.7") || !strings.Contains(out, "test") {
		t.Fatalf("admin bans: %v\n%s", err, out)
	}
	out, err = run(t, nil, "admin", "unban", "203.0.113.7", "--admin", "http://"+s.admin, "--admin-token", adminTok)
	if err != nil || !strings.Contains(out, "unbanned ip:203.0.113.7") {
		t.Fatalf("admin unban: %v\n%s", err, out)
	}
	out, err = run(t, env, "admin", "bans", "--admin", s.admin)
	if err != nil || strings.Contains(out, "203.0.113.7") || !strings.Contains(out, "no active bans") {
		t.Fatalf("ban still listed after unban: %v\n%s", err, out)
	}
	out, err = run(t, nil, "admin", "bans", "--admin", s.admin, "--admin-token", "wrong-wrong-wrong-wrong-wrong-wrong-wrong")
	if err == nil || !strings.Contains(out, "401") {
		t.Fatalf("wrong token: %v\n%s", err, out)
	}
	out, err = run(t, nil, "admin", "bans", "--admin", s.admin)
	if err == nil || !strings.Contains(out, "WSGATE_ADMIN__TOKEN") {
		t.Fatalf("no token: %v\n%s", err, out)
	}
}

// Issue 15 item 9: auth.mode mtls starts without JWT keys; a client certificate
// from `wsgate certs` connects, a client without one is refused.
func TestMTLSOnlyStartsWithoutJWTKeys(t *testing.T) {
	s := startProd(t, `listen: 127.0.0.1:0
tls:
  cert_file: CERTS/server.pem
  key_file: CERTS/server-key.pem
  client_auth: require
  client_ca_file: CERTS/ca.pem
auth:
  mode: mtls
admin:
  listen: 127.0.0.1:0
  token: "`+adminTok+`"
`)
	cert, err := tls.LoadX509KeyPair(filepath.Join(s.dir, "certs", "client.pem"), filepath.Join(s.dir, "certs", "client-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	tc := s.tls.Clone()
	tc.Certificates = []tls.Certificate{cert}
	c, resp, err := dial(t, "wss://"+s.addr+"/ws", "", tc)
	if err != nil {
		t.Fatalf("client certificate refused: %v %v", err, resp)
	}
	c.expectWelcome(t)
	if _, _, err := dial(t, "wss://"+s.addr+"/ws", "", s.tls); err == nil {
		t.Fatal("a client without a certificate was accepted")
	}
}

// Issue 15 item 10: shutdown is logged; no Redis gauge without Redis; version
// comes from the build info.
func TestShutdownLoggedMetricsVersion(t *testing.T) {
	s := startProd(t, prodYAML)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + s.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if !strings.Contains(string(b), "wsgate_") || strings.Contains(string(b), "wsgate_redis_up") {
		t.Fatalf("metrics without Redis configured export wsgate_redis_up (or nothing):\n%.2000s", b)
	}
	if err := s.stop(t); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	out := s.output()
	for _, want := range []string{`"msg":"shutting down`, `"msg":"stopped"`} {
		if !strings.Contains(out, want) {
			t.Errorf("shutdown log lacks %s:\n%s", want, out)
		}
	}
	v, err := run(t, nil, "version")
	if err != nil || !regexp.MustCompile(`^wsgate \S+ .*go1\.\d+`).MatchString(v) {
		t.Fatalf("version: %v %q", err, v)
	}
}

// Issue 15 item 1: --dev never bans loopback clients (the banner says so): more
// strikes than max_strikes from 127.0.0.1 leave the next connection welcome and
// the ban list empty.
func TestDevNeverBansLoopback(t *testing.T) {
	d := startDev(t, nil)
	if !strings.Contains(d.output(), "never ban loopback") {
		t.Fatalf("banner does not say loopback is never banned:\n%s", d.output())
	}
	c, resp, err := dial(t, d.url, d.token, d.tls)
	if err != nil {
		t.Fatalf("sample token: %v %v", err, resp)
	}
	c.expectWelcome(t)
	// A refresh without a token is a strike (default: 10 in 60 s ban).
	for i := range 15 {
		if err := c.conn.WriteMessage(transport.Text, []byte(`{"type":"refresh","id":"r`+strconv.Itoa(i)+`"}`)); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		select {
		case m := <-c.msgs:
			if !strings.Contains(string(m), `"type":"error"`) {
				t.Fatalf("reply %d: %s", i, m)
			}
		case <-c.done:
			t.Fatalf("closed (%d) after %d strikes: --dev banned a loopback client", c.code, i+1)
		case <-time.After(10 * time.Second):
			t.Fatalf("no reply to strike %d", i)
		}
	}
	// The strikes were counted (so a ban was due without the --dev rule).
	resp, err = (&http.Client{Timeout: 10 * time.Second}).Get("http://" + d.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if m := regexp.MustCompile(`(?m)^wsgate_strikes_total\{[^}]*\} (\d+)`).FindStringSubmatch(string(b)); m == nil || atoi(m[1]) < 10 {
		t.Fatalf("strikes not counted (want >= 10):\n%s", regexp.MustCompile(`(?m)^wsgate_strikes.*$`).FindAllString(string(b), -1))
	}
	c2, resp, err := dial(t, d.url, d.token, d.tls)
	if err != nil {
		t.Fatalf("new connection after 15 strikes refused: %v %v", err, resp)
	}
	c2.expectWelcome(t)
	out, err := run(t, nil, "admin", "bans", "--admin", d.admin, "--admin-token", d.adminToken)
	if err != nil || !strings.Contains(out, "no active bans") {
		t.Fatalf("admin bans: %v\n%s", err, out)
	}
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}
