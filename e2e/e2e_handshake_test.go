package e2e

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/wait"
)

func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

func hsToken(t *testing.T, secret []byte, claims jwt.MapClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// expectRefused dials and checks the HTTP status of the refusal, then checks the
// reason in the server log and that a fresh legitimate client is still served.
func expectRefused(t *testing.T, s *wsgatetest.Server, o wsgatetest.DialOptions, status int, reason string) {
	t.Helper()
	c, resp, err := s.Dial(t, o)
	if err == nil {
		c.Conn.Close()
		t.Fatalf("handshake accepted, want %d (%s)", status, reason)
	}
	if resp == nil {
		t.Fatalf("no HTTP response (want %d): %v", status, err)
	}
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d (%s)", resp.StatusCode, status, reason)
	}
	if reason != "" && !s.Logs.Contains(`"reason":"`+reason+`"`, 2*time.Second) {
		t.Fatalf("log does not record reason %q", reason)
	}
}

func TestHandshakeRejections(t *testing.T) {
	cfg := wsgatetest.Config()
	cfg.Auth.Issuer = "https://issuer.test"
	cfg.Auth.Audience = []string{"wsgate"}
	cfg.Auth.MaxLifetime = 2 * time.Hour
	cfg.Limits.HandshakeRate = config.RateLimit{Rate: 1000, Burst: 1000}
	s := wsgatetest.Start(t, cfg)
	secret := []byte(wsgatetest.Secret)
	now := time.Now()
	good := jwt.MapClaims{"sub": "alice", "iss": "https://issuer.test", "aud": "wsgate", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	with := func(k string, v any) jwt.MapClaims {
		c := jwt.MapClaims{}
		for kk, vv := range good {
			c[kk] = vv
		}
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	noneTok, _ := jwt.NewWithClaims(jwt.SigningMethodNone, good).SignedString(jwt.UnsafeAllowNoneSignatureType)
	wrongKey := hsToken(t, []byte(strings.Repeat("k", 40)), good)

	cases := []struct {
		name   string
		header http.Header
		status int
		reason string
	}{
		{"no credential", nil, 401, "no_credential"},
		{"malformed token", bearer("not.a.jwt"), 401, "malformed"},
		{"bad signature", bearer(wrongKey), 401, "bad_signature"},
		{"expired", bearer(hsToken(t, secret, with("exp", now.Add(-time.Minute).Unix()))), 401, "expired"},
		{"not yet valid", bearer(hsToken(t, secret, with("nbf", now.Add(time.Hour).Unix()))), 401, "not_yet_valid"},
		{"alg none", bearer(noneTok), 401, ""},
		{"wrong audience", bearer(hsToken(t, secret, with("aud", "other"))), 401, "wrong_audience"},
		{"wrong issuer", bearer(hsToken(t, secret, with("iss", "https://evil.test"))), 401, "wrong_issuer"},
		{"lifetime too long", bearer(hsToken(t, secret, with("exp", now.Add(100*time.Hour).Unix()))), 401, "lifetime_too_long"},
		{"missing exp", bearer(hsToken(t, secret, with("exp", nil))), 401, "missing_exp"},
		{"bad origin", http.Header{"Authorization": {"Bearer " + hsToken(t, secret, good)}, "Origin": {"https://evil.example"}}, 403, "bad_origin"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			expectRefused(t, s, wsgatetest.DialOptions{Header: c.header}, c.status, c.reason)
			// The server keeps serving legitimate clients.
			cl, _, err := s.Dial(t, wsgatetest.DialOptions{Header: bearer(hsToken(t, secret, good))})
			if err != nil {
				t.Fatalf("legitimate client refused after %s: %v", c.name, err)
			}
			cl.Expect(t, "welcome", 5*time.Second)
			cl.Conn.Close()
		})
	}
	// No secret or token ever reaches the log.
	for _, secretish := range []string{wsgatetest.Secret, hsToken(t, secret, good)[:40]} {
		if strings.Contains(s.Logs.String(), secretish) {
			t.Fatalf("log contains a secret")
		}
	}
}

func TestKeyConfusionHSAgainstRSA(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	eder, _ := x509.MarshalPKIXPublicKey(&ek.PublicKey)
	ecPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: eder})
	cfg := wsgatetest.Config()
	cfg.Auth.Keys = []config.Key{
		{ID: "rsa", Algorithms: []string{"RS256"}, PublicKeyPEM: string(pubPEM)},
		{ID: "ec", Algorithms: []string{"ES256"}, PublicKeyPEM: string(ecPEM)},
	}
	s := wsgatetest.Start(t, cfg)
	claims := jwt.MapClaims{"sub": "mallory", "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix()}
	// The classic attack: HS256 with the public key bytes as the HMAC secret.
	for _, pk := range [][]byte{pubPEM, ecPEM} {
		forged := hsToken(t, pk, claims)
		expectRefused(t, s, wsgatetest.DialOptions{Header: bearer(forged)}, 401, "")
	}
	// A real RS256 token works.
	tok, err := jwt.NewWithClaims(jwt.SigningMethodRS256, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := s.Dial(t, wsgatetest.DialOptions{Header: bearer(tok)})
	if err != nil {
		t.Fatalf("RS256 refused: %v", err)
	}
	c.Expect(t, "welcome", 5*time.Second)
	etok, _ := jwt.NewWithClaims(jwt.SigningMethodES256, claims).SignedString(ek)
	c2, _, err := s.Dial(t, wsgatetest.DialOptions{Header: bearer(etok)})
	if err != nil {
		t.Fatalf("ES256 refused: %v", err)
	}
	c2.Expect(t, "welcome", 5*time.Second)
}

func TestCredentialCarriers(t *testing.T) {
	cfg := wsgatetest.Config()
	cfg.Auth.CookieName = "wsgate_token"
	s := wsgatetest.Start(t, cfg)
	tok := s.Token(t, "alice", nil)
	// Sec-WebSocket-Protocol: marker form with an application protocol.
	c, resp, err := s.Dial(t, wsgatetest.DialOptions{Subprotocols: []string{"wsgate.v1", "bearer", tok}})
	if err != nil {
		t.Fatalf("subprotocol bearer: %v", err)
	}
	if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != "wsgate.v1" {
		t.Fatalf("server chose subprotocol %q, want wsgate.v1 (never the token)", got)
	}
	c.Expect(t, "welcome", 5*time.Second)
	// The guide's token.<jwt> form.
	c, resp, err = s.Dial(t, wsgatetest.DialOptions{Subprotocols: []string{"wsgate.v1", "token." + tok}})
	if err != nil {
		t.Fatalf("token.<jwt>: %v", err)
	}
	if strings.Contains(resp.Header.Get("Sec-WebSocket-Protocol"), tok) {
		t.Fatal("token echoed in Sec-WebSocket-Protocol")
	}
	c.Expect(t, "welcome", 5*time.Second)
	// Cookie.
	c, _, err = s.Dial(t, wsgatetest.DialOptions{Header: http.Header{"Cookie": {"wsgate_token=" + tok}}})
	if err != nil {
		t.Fatalf("cookie: %v", err)
	}
	c.Expect(t, "welcome", 5*time.Second)
	// ?token= is refused unless allow_query_token.
	expectRefused(t, s, wsgatetest.DialOptions{URL: s.URL + "?token=" + tok}, 401, "malformed_credential")
}

func TestTickets(t *testing.T) {
	cfg := wsgatetest.Config()
	cfg.Auth.Tickets.TTL = time.Second
	s := wsgatetest.Start(t, cfg)
	hc := s.HTTPClient()
	issue := func() string {
		tk, _ := ticketFor(t, s, "carol", nil)
		return tk
	}
	// Without a valid bearer token: 401.
	if resp, _ := httpDo(t, hc, "POST", s.HTTPURL+"/v1/tickets", "", ""); resp.StatusCode != 401 {
		t.Fatalf("ticket without token: %d", resp.StatusCode)
	}
	tk := issue()
	c, _, err := s.Dial(t, wsgatetest.DialOptions{URL: s.URL + "?ticket=" + tk})
	if err != nil {
		t.Fatalf("ticket refused: %v", err)
	}
	if w := c.Expect(t, "welcome", 5*time.Second); w["user"] != "carol" {
		t.Fatalf("ticket identity %v", w["user"])
	}
	expectRefused(t, s, wsgatetest.DialOptions{URL: s.URL + "?ticket=" + tk}, 401, "bad_ticket")
	old := issue()
	time.Sleep(1500 * time.Millisecond)
	expectRefused(t, s, wsgatetest.DialOptions{URL: s.URL + "?ticket=" + old}, 401, "bad_ticket")
	if strings.Contains(s.Logs.String(), tk) {
		t.Fatal("ticket value in the log")
	}
}

func TestHandshakeFloodAndSpoofedXFF(t *testing.T) {
	cfg := wsgatetest.Config()
	cfg.Limits.HandshakeRate = config.RateLimit{Rate: 1, Burst: 5}
	s := wsgatetest.Start(t, cfg)
	tok := s.Token(t, "dave", nil)
	limited := 0
	for i := 0; i < 20; i++ {
		// A spoofed X-Forwarded-For from an untrusted peer must not buy a fresh bucket.
		h := bearer(tok)
		h.Set("X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i))
		c, resp, err := s.Dial(t, wsgatetest.DialOptions{Header: h})
		if err == nil {
			c.Conn.Close()
			continue
		}
		if resp == nil || resp.StatusCode != 429 {
			t.Fatalf("attempt %d: %v", i, err)
		}
		if resp.Header.Get("Retry-After") == "" {
			t.Fatal("429 without Retry-After")
		}
		limited++
	}
	if limited < 10 {
		t.Fatalf("only %d of 20 rapid handshakes were limited", limited)
	}
	if !s.Logs.Contains(`"reason":"handshake_rate"`, time.Second) {
		t.Fatal("no handshake_rate reason in log")
	}
}

func TestTrustedProxyXFF(t *testing.T) {
	s := proxiedServer(t)
	// Behind a trusted proxy, distinct clients get distinct per-IP quotas.
	connectVia(t, s, "u1", "198.51.100.1")
	connectVia(t, s, "u2", "198.51.100.2")
	expectRefused(t, s, wsgatetest.DialOptions{Header: xff(s.Token(t, "u3", nil), "198.51.100.1")}, 429, "ip_quota")
}

func TestQuotas(t *testing.T) {
	cfg := wsgatetest.Config()
	cfg.Limits.Connections = config.Connections{PerIP: 3, PerUser: 2, Global: 100}
	s := wsgatetest.Start(t, cfg)
	a1 := s.Connect(t, "erin", nil)
	s.Connect(t, "erin", nil)
	expectRefused(t, s, wsgatetest.DialOptions{Header: bearer(s.Token(t, "erin", nil))}, 429, "user_quota")
	s.Connect(t, "frank", nil)
	expectRefused(t, s, wsgatetest.DialOptions{Header: bearer(s.Token(t, "gina", nil))}, 429, "ip_quota")
	// Closing one frees its slot.
	a1.Conn.Close()
	wait.For(t, "slot released after close", 5*time.Second, func() bool {
		c, _, err := s.Dial(t, wsgatetest.DialOptions{Header: bearer(s.Token(t, "erin", nil))})
		if err != nil {
			return false
		}
		c.Expect(t, "welcome", 5*time.Second)
		return true
	})

	cfg2 := wsgatetest.Config()
	cfg2.Limits.Connections = config.Connections{PerIP: 10, PerUser: 10, Global: 1}
	s2 := wsgatetest.Start(t, cfg2)
	s2.Connect(t, "x", nil)
	expectRefused(t, s2, wsgatetest.DialOptions{Header: bearer(s2.Token(t, "y", nil))}, 503, "global_quota")
}

func TestProtocolErrorsAtHandshake(t *testing.T) {
	cfg := wsgatetest.Config()
	cfg.InsecurePlaintext = true
	s := wsgatetest.Start(t, cfg)
	send := func(req string) (int, http.Header) {
		conn, err := net.Dial("tcp", s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(conn, req); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header
	}
	tok := s.Token(t, "p", nil)
	base := "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nAuthorization: Bearer " + tok + "\r\n"
	if code, h := send(base + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n"); code != 426 || h.Get("Sec-WebSocket-Version") != "13" {
		t.Fatalf("unsupported version: %d %q", code, h.Get("Sec-WebSocket-Version"))
	}
	if code, _ := send(base + "Sec-WebSocket-Version: 13\r\n\r\n"); code != 400 {
		t.Fatalf("missing key: %d", code)
	}
	if code, _ := send("GET /ws HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok + "\r\n\r\n"); code != 400 {
		t.Fatalf("plain GET: %d", code)
	}
	// Oversize headers: 431 from the HTTP server, before any WebSocket code.
	big := base + "X-Big: " + strings.Repeat("a", 64<<10) + "\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if code, _ := send(big); code != 431 {
		t.Fatalf("oversize headers: %d", code)
	}
}

func TestSlowloris(t *testing.T) {
	cfg := wsgatetest.Config()
	cfg.Timeouts.ReadHeader = 300 * time.Millisecond
	s := wsgatetest.Start(t, cfg)
	conn, err := tls.Dial("tcp", s.Addr, s.TLSConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: x\r\n")
	// Dribble a header byte at a time; the server must give up on us.
	closed := make(chan struct{})
	go func() {
		buf := make([]byte, 1024)
		for {
			_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second)) // past the 10 s bound below: only the server closes it
			if _, err := conn.Read(buf); err != nil {
				close(closed)
				return
			}
		}
	}()
	// Bounded by time, not by a count of bytes: on a starved machine the
	// server's 300 ms timer may fire late, but not 10 s late.
	give := time.After(10 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-closed:
			s.Connect(t, "after-slowloris", nil)
			return
		case <-give:
			t.Fatal("slow header not cut off within 10s (read_header 300ms)")
		case <-tick.C:
			_, _ = io.WriteString(conn, "X")
		}
	}
}

// One address holding many silent sockets (no request sent) cannot exhaust the
// server's file descriptors: past limits.connections.pending_per_ip its new sockets
// are closed at accept, and clients from other addresses are served.
func TestSilentSocketsBoundedPerIP(t *testing.T) {
	cfg := wsgatetest.Config()
	cfg.Limits.Connections.PendingPerIP = 20
	s := wsgatetest.Start(t, cfg)
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	var silent []net.Conn
	for i := 0; i < 40; i++ {
		c, err := d.Dial("tcp", s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		silent = append(silent, c)
	}
	defer func() {
		for _, c := range silent {
			c.Close()
		}
	}()
	refused := 0
	for _, c := range silent {
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err != nil {
			if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
				refused++
			}
		}
	}
	if refused < 20 {
		t.Fatalf("only %d of 40 silent sockets from one address were refused", refused)
	}
	c := s.Connect(t, "other-address", nil)
	c.Send(t, `{"type":"ping"}`)
	c.Expect(t, "pong", 5*time.Second)
}
