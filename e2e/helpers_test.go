package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/server"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/wait"
)

// replyWait bounds the wait for a reply. Generous: in cluster mode a reply may
// wait on Redis, which a loaded CI machine can starve for a few seconds (each
// call is bounded by the client's 1 s timeout and retried); a bound only decides
// how long a failing test takes.
const replyWait = 15 * time.Second

// expectError skips c's messages until an error reply and checks its code.
func expectError(t *testing.T, c *wsgatetest.Client, code string) map[string]any {
	t.Helper()
	e := c.Expect(t, "error", replyWait)
	if e["code"] != code {
		t.Fatalf("error %v (%v), want code %s: %v", e["code"], e["message"], code, e)
	}
	return e
}

// ticketFor asks s for a one-time ticket for sub (a token with claims is minted for
// it) and returns the ticket and, when the server has integrity master keys, the
// per-user signing key object.
func ticketFor(t *testing.T, s *wsgatetest.Server, sub string, claims map[string]any) (string, json.RawMessage) {
	t.Helper()
	resp, body := httpDo(t, s.HTTPClient(), "POST", s.HTTPURL+"/v1/tickets", "Bearer "+s.Token(t, sub, claims), "")
	var out struct {
		Ticket    string          `json:"ticket"`
		Integrity json.RawMessage `json:"integrity"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(body, &out) != nil || out.Ticket == "" {
		t.Fatalf("ticket endpoint: %d %s", resp.StatusCode, body)
	}
	return out.Ticket, out.Integrity
}

// xff returns a bearer header for tok arriving through the trusted proxy on
// behalf of client.
func xff(tok, client string) http.Header {
	h := bearer(tok)
	h.Set("X-Forwarded-For", client)
	return h
}

// proxiedServer trusts a reverse proxy on loopback and allows one connection
// per client IP, so the address it believes is visible in the quota.
func proxiedServer(t *testing.T) *wsgatetest.Server {
	t.Helper()
	cfg := wsgatetest.Config()
	cfg.TrustedProxies = []string{"127.0.0.1/32"}
	cfg.Limits.Connections.PerIP = 1
	return wsgatetest.Start(t, cfg)
}

// connectVia connects sub through the trusted proxy with X-Forwarded-For
// forwarded and reads the welcome.
func connectVia(t *testing.T, s *wsgatetest.Server, sub, forwarded string) *wsgatetest.Client {
	t.Helper()
	c, _, err := s.Dial(t, wsgatetest.DialOptions{Header: xff(s.Token(t, sub, nil), forwarded)})
	if err != nil {
		t.Fatalf("%s via %s: %v", sub, forwarded, err)
	}
	c.Expect(t, "welcome", 5*time.Second)
	return c
}

// startMutated starts a server with cfg, changed by mutate first (when not nil).
func startMutated(t *testing.T, cfg *config.Config, mutate func(*config.Config)) *wsgatetest.Server {
	t.Helper()
	if mutate != nil {
		mutate(cfg)
	}
	return wsgatetest.Start(t, cfg)
}

// stoppedAudit stops s, which flushes and closes its audit log, and returns
// the log at path.
func stoppedAudit(t *testing.T, s *wsgatetest.Server, path string) string {
	t.Helper()
	if err := s.Stop(t); err != nil {
		t.Logf("stop: %v", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// startDevServer runs the test configuration as `serve --dev` sets it up (dev
// keys, demo pages, the cached development certificate) and returns the
// server and what the dev banner would print.
func startDevServer(t *testing.T) (*wsgatetest.Server, *server.DevInfo) {
	t.Helper()
	cfg := wsgatetest.Config()
	info, err := server.PrepareDev(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return wsgatetest.Start(t, cfg, server.WithDev(info)), info
}

// strikeOut connects sub to s and sends n messages that strike (unknown type)
// without waiting for the replies; with abuse.max_strikes n the server closes
// the connection 1008.
func strikeOut(t *testing.T, s *wsgatetest.Server, sub string, n int) {
	t.Helper()
	c := s.Connect(t, sub, nil)
	for range n {
		c.Send(t, `{"type":"nope"}`)
	}
	c.ExpectClose(t, 1008, 5*time.Second)
}

// refusedWithin dials s with header h until the handshake is refused with
// status (a ban or a quota reaching another node), for at most within.
func refusedWithin(t *testing.T, s *wsgatetest.Server, h http.Header, status int, within time.Duration, what string) {
	t.Helper()
	wait.For(t, what, within, func() bool {
		_, resp, err := s.Dial(t, wsgatetest.DialOptions{Header: h})
		return err != nil && resp != nil && resp.StatusCode == status
	})
}

// httpDo sends a request with the Authorization header value authorization
// (none when empty) and body (a JSON document; none when empty) with c (nil:
// http.DefaultClient), and returns the response, its body already read and
// closed, and the body.
func httpDo(t *testing.T, c *http.Client, method, url, authorization, body string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		t.Fatalf("%s %s: body: %v", method, url, err)
	}
	return resp, b
}
