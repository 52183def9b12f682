package e2e

// Regression tests for the outside security review (issue 13) and the handshake
// items of issue 15. Each test is named after its item (TestSec01… is item 13.1,
// TestUX04… is item 15.4) and runs over real sockets.

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/bgrun"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/wsframe"
)

// slowJWKS is a real HTTP JWKS server that answers after a delay and whose key set
// can be rotated.
type slowJWKS struct {
	*httptest.Server
	delay time.Duration
	hits  atomic.Int64
	mu    sync.Mutex
	keys  []map[string]any
}

func newSlowJWKS(t *testing.T, delay time.Duration) *slowJWKS {
	t.Helper()
	j := &slowJWKS{delay: delay}
	j.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		j.hits.Add(1)
		select {
		case <-time.After(j.delay):
		case <-r.Context().Done():
			return
		}
		j.mu.Lock()
		b, _ := json.Marshal(map[string]any{"keys": j.keys})
		j.mu.Unlock()
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(b)
	}))
	t.Cleanup(j.Close)
	return j
}

func (j *slowJWKS) publish(keys ...map[string]any) {
	j.mu.Lock()
	j.keys = keys
	j.mu.Unlock()
}

// ecJWK renders an ES256 public key as a JWK.
func ecJWK(k *ecdsa.PrivateKey, kid string) map[string]any {
	b64 := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	pad := func(b []byte) []byte { return append(make([]byte, 32-len(b)), b...) }
	return map[string]any{"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
		"x": b64(pad(k.X.Bytes())), "y": b64(pad(k.Y.Bytes()))}
}

func esToken(t *testing.T, k *ecdsa.PrivateKey, kid, sub string) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"sub": sub, "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()})
	tok.Header["kid"] = kid
	s, err := tok.SignedString(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rawUpgrade writes a hand-built upgrade request over TLS (or plain TCP when tc is
// nil) and returns the status and body of the answer.
func rawUpgrade(t *testing.T, addr string, tc *tls.Config, req string) (int, string) {
	t.Helper()
	var conn net.Conn
	var err error
	if tc != nil {
		conn, err = tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, tc)
	} else {
		conn, err = net.DialTimeout("tcp", addr, 5*time.Second)
	}
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatalf("write request: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(body)
}

// 13.1: an attacker who aborts unknown-kid handshakes cannot cancel the JWKS
// refresh and so cannot keep a freshly rotated key refused.
func TestSec01JWKSRefreshNotCancellable(t *testing.T) {
	oldKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	newKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	idp := newSlowJWKS(t, 500*time.Millisecond)
	idp.publish(ecJWK(oldKey, "k1"))

	cfg := wsgatetest.Config()
	cfg.Auth.JWKSURL = idp.URL + "/jwks.json"
	cfg.Auth.JWKSMinRefresh = 3 * time.Second
	cfg.Limits.HandshakeRate = config.RateLimit{Rate: 10000, Burst: 10000}
	cfg.Alerts.Rules = nil
	s := wsgatetest.Start(t, cfg)
	c, _, err := s.Dial(t, wsgatetest.DialOptions{Header: bearer(esToken(t, oldKey, "k1", "before"))})
	if err != nil {
		t.Fatalf("token with the original key refused: %v", err)
	}
	c.Expect(t, "welcome", 5*time.Second)

	// The provider rotates.
	idp.publish(ecJWK(oldKey, "k1"), ecJWK(newKey, "k2"))

	// The attacker sends a handshake with a made-up kid and hangs up as soon as
	// wsgate has asked the identity provider (or after 100 ms), long before the
	// provider answers. It reports whether its handshake started a fetch.
	var aborted atomic.Int64
	abortOne := func(i int) bool {
		conn, err := tls.Dial("tcp", s.Addr, s.TLSConfig)
		if err != nil {
			return false
		}
		defer conn.Close()
		before := idp.hits.Load()
		tok := esToken(t, newKey, fmt.Sprintf("made-up-%d", i), "mallory")
		_, _ = io.WriteString(conn, wsframe.Head("HTTP/1.1", "127.0.0.1", "/ws")+"Authorization: Bearer "+tok+"\r\n\r\n")
		for range 10 {
			if idp.hits.Load() > before {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		aborted.Add(1)
		return idp.hits.Load() > before
	}
	// Once the initial fetch's min-refresh gap has passed, an attacker handshake
	// starts a refresh and is dropped mid-fetch.
	deadline := time.Now().Add(3*cfg.Auth.JWKSMinRefresh + 5*time.Second)
	for i := 0; !abortOne(i); i++ {
		if time.Now().After(deadline) {
			t.Fatalf("no unknown-kid handshake made wsgate fetch the JWKS (%d tried)", i+1)
		}
	}
	// The attacker keeps going for the rest of the test.
	attacker := bgrun.NewLoops(t)
	attacker.Go(func() {
		for i := 1_000_000; ; i++ {
			select {
			case <-attacker.Stop():
				return
			default:
			}
			abortOne(i)
		}
	})
	defer attacker.Halt()

	// Within that one refresh, a legitimate client with the new key is accepted:
	// the first attempt and every later one.
	for i := range 5 {
		c, resp, err := s.Dial(t, wsgatetest.DialOptions{Header: bearer(esToken(t, newKey, "k2", "alice"))})
		if err != nil {
			status := 0
			if resp != nil {
				status = resp.StatusCode
			}
			t.Fatalf("attempt %d with the rotated key refused (%d) after %d aborted unknown-kid handshakes, JWKS fetched %d times: %v",
				i+1, status, aborted.Load(), idp.hits.Load(), err)
		}
		c.Expect(t, "welcome", 5*time.Second)
		_ = c.Conn.Close()
	}
}

// 13.10: with no origins.allowed, Origin must be this server's origin: scheme,
// host and port, not the host name alone.
func TestSec10OriginSchemeHostPort(t *testing.T) {
	cfg := wsgatetest.Config()
	cfg.Limits.HandshakeRate = config.RateLimit{Rate: 1000, Burst: 1000}
	s := wsgatetest.Start(t, cfg)
	_, port, _ := net.SplitHostPort(s.Addr)
	tok := s.Token(t, "olga", nil)
	for _, o := range []string{
		"https://127.0.0.1:1",             // same host, another port
		"http://127.0.0.1:" + port,        // same host and port, another scheme
		"https://127.0.0.1",               // default port
		"https://localhost:" + port,       // another host
		"https://127.0.0.1:" + port + "0", // port prefix trick
	} {
		h := bearer(tok)
		h.Set("Origin", o)
		expectRefused(t, s, wsgatetest.DialOptions{Header: h}, http.StatusForbidden, "bad_origin")
	}
	h := bearer(tok)
	h.Set("Origin", "https://127.0.0.1:"+port)
	c, _, err := s.Dial(t, wsgatetest.DialOptions{Header: h})
	if err != nil {
		t.Fatalf("same-origin page refused: %v", err)
	}
	c.Expect(t, "welcome", 5*time.Second)

	// Behind a TLS-terminating trusted proxy the browser's scheme is the proxy's
	// X-Forwarded-Proto.
	pcfg := wsgatetest.Config()
	pcfg.InsecurePlaintext = true
	pcfg.TrustedProxies = []string{"127.0.0.1/32"}
	ps := wsgatetest.Start(t, pcfg)
	ptok := ps.Token(t, "olga", nil)
	req := func(origin, proto string) int {
		r := wsframe.Head("HTTP/1.1", "gate.example", "/ws") + "Authorization: Bearer " + ptok + "\r\nOrigin: " + origin + "\r\n"
		if proto != "" {
			r += "X-Forwarded-For: 198.51.100.7\r\nX-Forwarded-Proto: " + proto + "\r\n"
		}
		code, _ := rawUpgrade(t, ps.Addr, nil, r+"\r\n")
		return code
	}
	if code := req("https://gate.example", "https"); code != http.StatusSwitchingProtocols {
		t.Fatalf("https page behind a TLS-terminating proxy: %d", code)
	}
	if code := req("http://gate.example", "https"); code != http.StatusForbidden {
		t.Fatalf("http page for an https endpoint: %d", code)
	}
	if code := req("http://gate.example:8080", ""); code != http.StatusForbidden {
		t.Fatalf("another port behind the proxy: %d", code)
	}
}

// 13.12: an Authorization token and a token subprotocol entry together are
// refused with 400, like two Authorization headers.
func TestSec12AuthorizationAndTokenSubprotocol(t *testing.T) {
	s := wsgatetest.Start(t, nil)
	alice, bob := s.Token(t, "alice", nil), s.Token(t, "bob", nil)
	for _, protos := range [][]string{{"wsgate.v1", "bearer", bob}, {"wsgate.v1", "token." + bob}} {
		expectRefused(t, s, wsgatetest.DialOptions{Header: bearer(alice), Subprotocols: protos}, http.StatusBadRequest, "ambiguous_credential")
	}
	code, body := rawUpgrade(t, s.Addr, s.TLSConfig, wsframe.Head("HTTP/1.1", "127.0.0.1", "/ws")+
		"Authorization: Bearer "+alice+"\r\nAuthorization: Bearer "+bob+"\r\n\r\n")
	if code != http.StatusBadRequest || !strings.Contains(body, "one credential") {
		t.Fatalf("two Authorization headers: %d %s", code, body)
	}
}

// 13.13: an upgrade request with a body is refused before any of it is read as
// WebSocket frames.
func TestSec13UpgradeWithBody(t *testing.T) {
	s := wsgatetest.Start(t, nil)
	head := wsframe.Head("HTTP/1.1", "127.0.0.1", "/ws") + "Authorization: Bearer " + s.Token(t, "carl", nil) + "\r\n"
	// A masked text frame {"type":"ping"} smuggled as the "body".
	frame := "\x81\x8f\x00\x00\x00\x00" + `{"type":"ping"}`
	for name, req := range map[string]string{
		"content-length": head + fmt.Sprintf("Content-Length: %d\r\n\r\n", len(frame)) + frame,
		"chunked":        head + "Transfer-Encoding: chunked\r\n\r\n" + fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(frame), frame),
	} {
		code, body := rawUpgrade(t, s.Addr, s.TLSConfig, req)
		if code != http.StatusBadRequest {
			t.Fatalf("%s: status %d, want 400 (%s)", name, code, body)
		}
	}
	if !s.Logs.Contains(`"reason":"upgrade_with_body"`, 2*time.Second) {
		t.Fatal("log does not record reason upgrade_with_body")
	}
	// Content-Length: 0 is no body.
	code, _ := rawUpgrade(t, s.Addr, s.TLSConfig, head+"Content-Length: 0\r\n\r\n")
	if code != http.StatusSwitchingProtocols {
		t.Fatalf("Content-Length: 0: status %d", code)
	}
}

// 15.4: token.<jwt> as the only offered subprotocol is refused before the
// upgrade with a 400 that says what to do, instead of a 101 the browser fails.
func TestUX04TokenSubprotocolAlone(t *testing.T) {
	s := wsgatetest.Start(t, nil)
	tok := s.Token(t, "tess", nil)
	code, body := rawUpgrade(t, s.Addr, s.TLSConfig, wsframe.Head("HTTP/1.1", "127.0.0.1", "/ws")+"Sec-WebSocket-Protocol: token."+tok+"\r\n\r\n")
	if code != http.StatusBadRequest || !strings.Contains(body, "application subprotocol") || !strings.Contains(body, "bearer, <jwt>") {
		t.Fatalf("token.<jwt> alone: %d %s", code, body)
	}
	if strings.Contains(body, tok[:20]) {
		t.Fatal("refusal echoes the token")
	}
	// With an application subprotocol, and in the bearer form, it works.
	for _, protos := range [][]string{{"wsgate.v1", "token." + tok}, {"bearer", tok}} {
		c, resp, err := s.Dial(t, wsgatetest.DialOptions{Subprotocols: protos})
		if err != nil {
			t.Fatalf("%v: %v", protos[0], err)
		}
		if resp.Header.Get("Sec-WebSocket-Protocol") == "" {
			t.Fatalf("%v: no subprotocol answered", protos[0])
		}
		c.Expect(t, "welcome", 5*time.Second)
	}
}

// v6 returns the i-th address of the /64 2001:db8:1:2::/64 (i > 0) or, with
// another /64, 2001:db8:1:3::i.
func v6(net64, i int) string { return fmt.Sprintf("2001:db8:1:%x:%x::%x", net64, (i*7919)&0xffff, i) }

// handshakesFromOne64 opens 60 connections for tok from 60 addresses of the
// /64 2001:db8:1:2::/64 through the trusted proxy, the i-th on node(i), and
// returns how many were accepted; a refusal other than 429 fails the test.
func handshakesFromOne64(t *testing.T, tok string, node func(i int) *wsgatetest.Server) int {
	t.Helper()
	accepted := 0
	for i := 1; i <= 60; i++ {
		c, resp, err := node(i).Dial(t, wsgatetest.DialOptions{Header: xff(tok, v6(2, i))})
		if err == nil {
			accepted++
			_ = c.Conn.Close()
			continue
		}
		if resp == nil || resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("handshake %d: %v", i, err)
		}
	}
	return accepted
}

// 13.3: every per-IP control keys an IPv6 client by its /64 (configurable), so 60
// addresses of one /64 are one client: handshake rate, connection caps, IP
// message budgets, IP bans (admin and automatic), and the admin API shows the
// prefix.
func TestSec03IPv6PrefixKeys(t *testing.T) {
	base := func() *config.Config {
		cfg := wsgatetest.Config()
		cfg.TrustedProxies = []string{"127.0.0.1/32"}
		cfg.Alerts.Rules = nil
		return cfg
	}

	t.Run("handshake rate", func(t *testing.T) {
		cfg := base()
		cfg.Limits.HandshakeRate = config.RateLimit{Rate: 0.01, Burst: 20}
		s := wsgatetest.Start(t, cfg)
		tok := s.Token(t, "hs", nil)
		if accepted := handshakesFromOne64(t, tok, func(int) *wsgatetest.Server { return s }); accepted > 21 {
			t.Fatalf("60 handshakes from 60 addresses of one /64: %d accepted, want at most the burst (20)", accepted)
		}
		// Another /64 has its own bucket; an IPv4 client is still keyed by its address.
		for _, other := range []string{v6(3, 1), "198.51.100.7"} {
			c, _, err := s.Dial(t, wsgatetest.DialOptions{Header: xff(tok, other)})
			if err != nil {
				t.Fatalf("%s refused: %v", other, err)
			}
			_ = c.Conn.Close()
		}
	})

	t.Run("configurable prefix", func(t *testing.T) {
		cfg := base()
		cfg.Limits.HandshakeRate = config.RateLimit{Rate: 0.01, Burst: 2}
		cfg.Limits.IPv6Prefix = 128
		cfg.Limits.IPv4Prefix = 24
		s := wsgatetest.Start(t, cfg)
		tok := s.Token(t, "pfx", nil)
		for i := 1; i <= 6; i++ { // /128: each address its own bucket
			c, _, err := s.Dial(t, wsgatetest.DialOptions{Header: xff(tok, v6(2, i))})
			if err != nil {
				t.Fatalf("ipv6_prefix 128, address %d refused: %v", i, err)
			}
			_ = c.Conn.Close()
		}
		refused := 0
		for i := 1; i <= 6; i++ { // /24: one IPv4 network is one client
			c, _, err := s.Dial(t, wsgatetest.DialOptions{Header: xff(tok, fmt.Sprintf("198.51.100.%d", i))})
			if err != nil {
				refused++
				continue
			}
			_ = c.Conn.Close()
		}
		if refused < 4 {
			t.Fatalf("ipv4_prefix 24: only %d of 6 handshakes from one /24 refused", refused)
		}
	})

	t.Run("connection cap", func(t *testing.T) {
		cfg := base()
		cfg.Limits.HandshakeRate = config.RateLimit{Rate: 1000, Burst: 1000}
		cfg.Limits.Connections.PerIP = 5
		s := wsgatetest.Start(t, cfg)
		for i := 1; i <= 5; i++ {
			c, _, err := s.Dial(t, wsgatetest.DialOptions{Header: xff(s.Token(t, fmt.Sprintf("u%d", i), nil), v6(2, i))})
			if err != nil {
				t.Fatalf("connection %d refused: %v", i, err)
			}
			c.Expect(t, "welcome", 5*time.Second)
		}
		for i := 6; i <= 60; i += 9 {
			expectRefused(t, s, wsgatetest.DialOptions{Header: xff(s.Token(t, fmt.Sprintf("u%d", i), nil), v6(2, i))}, http.StatusTooManyRequests, "ip_quota")
		}
		c, _, err := s.Dial(t, wsgatetest.DialOptions{Header: xff(s.Token(t, "other", nil), v6(3, 1))})
		if err != nil {
			t.Fatalf("another /64 refused: %v", err)
		}
		c.Expect(t, "welcome", 5*time.Second)
	})

	t.Run("ip message budget", func(t *testing.T) {
		cfg := base()
		cfg.Limits.HandshakeRate = config.RateLimit{Rate: 1000, Burst: 1000}
		tier := cfg.Rate.Tiers["default"]
		tier.IPMessages = config.RateLimit{Rate: 0.01, Burst: 5}
		cfg.Rate.Tiers["default"] = tier
		cfg.Abuse.MaxStrikes = 100
		s := wsgatetest.Start(t, cfg)
		a, _, err := s.Dial(t, wsgatetest.DialOptions{Header: xff(s.Token(t, "ma", nil), v6(2, 1))})
		if err != nil {
			t.Fatal(err)
		}
		a.Expect(t, "welcome", 5*time.Second)
		for i := range 5 {
			a.Send(t, fmt.Sprintf(`{"type":"ping","id":%d}`, i))
			a.Expect(t, "pong", 5*time.Second)
		}
		b, _, err := s.Dial(t, wsgatetest.DialOptions{Header: xff(s.Token(t, "mb", nil), v6(2, 2))})
		if err != nil {
			t.Fatal(err)
		}
		b.Expect(t, "welcome", 5*time.Second)
		b.Send(t, `{"type":"ping","id":"b"}`)
		if e := b.Expect(t, "error", 5*time.Second); e["code"] != "rate_limited" {
			t.Fatalf("second address of the /64 got %v, want rate_limited (shared IP budget)", e)
		}
	})

	t.Run("bans", func(t *testing.T) {
		cfg := base()
		cfg.Limits.HandshakeRate = config.RateLimit{Rate: 1000, Burst: 1000}
		cfg.Alerts.Rules = []config.AlertRule{{Name: "auth_failures_per_ip", Event: "auth_failure", Window: time.Minute,
			Threshold: 20, PerIP: true, Cooldown: 5 * time.Minute, AutoBan: true, BanTTL: 10 * time.Minute}}
		s := wsgatetest.Start(t, cfg)
		tok := s.Cfg.Admin.Token
		// The admin bans one address: the ban is on its /64, and shown so.
		st, out := adminCall(t, s, "POST", "/api/v1/bans", tok, map[string]any{"ip": v6(2, 5), "ttl": "1h"})
		if b, _ := out["ban"].(map[string]any); st != 200 || b["subject"] != "ip:2001:db8:1:2::/64" {
			t.Fatalf("admin ban of %s: %d %v", v6(2, 5), st, out)
		}
		expectRefused(t, s, wsgatetest.DialOptions{Header: xff(s.Token(t, "neighbour", nil), v6(2, 44))}, http.StatusForbidden, "banned")
		_, list := adminCall(t, s, "GET", "/api/v1/bans", tok, nil)
		if !strings.Contains(fmt.Sprint(list), "ip:2001:db8:1:2::/64") {
			t.Fatalf("ban list does not show the prefix: %v", list)
		}
		// Unbanning any address of it lifts the prefix ban.
		if st, out := adminCall(t, s, "DELETE", "/api/v1/bans/ip:"+v6(2, 9), tok, nil); st != 200 || out["unbanned"] != "ip:2001:db8:1:2::/64" {
			t.Fatalf("unban: %d %v", st, out)
		}
		c, _, err := s.Dial(t, wsgatetest.DialOptions{Header: xff(s.Token(t, "neighbour", nil), v6(2, 44))})
		if err != nil {
			t.Fatalf("after unban: %v", err)
		}
		c.Expect(t, "welcome", 5*time.Second)

		// Failed handshakes from 20 addresses of another /64 auto-ban that /64.
		for i := 1; i <= 20; i++ {
			expectRefused(t, s, wsgatetest.DialOptions{Header: xff("not.a.jwt", v6(3, i))}, http.StatusUnauthorized, "")
		}
		expectRefused(t, s, wsgatetest.DialOptions{Header: xff(s.Token(t, "late", nil), v6(3, 59))}, http.StatusForbidden, "banned")
		if !s.Logs.Contains(`"subject":"ip:2001:db8:1:3::/64"`, 2*time.Second) {
			t.Fatal("auto-ban not logged with the prefix subject")
		}
	})
}

// 15.7: message-level strikes ban the user, not the IP: other users behind the
// same address (a NAT, an office) keep connecting.
func TestUX07StrikesBanUserNotIP(t *testing.T) {
	cfg := wsgatetest.Config()
	cfg.Abuse.MaxStrikes = 3
	s := wsgatetest.Start(t, cfg)
	strikeOut(t, s, "striker", 3)
	expectRefused(t, s, wsgatetest.DialOptions{Header: bearer(s.Token(t, "striker", nil))}, http.StatusForbidden, "banned")
	colleague := s.Connect(t, "colleague", nil)
	colleague.Send(t, `{"type":"ping","id":1}`)
	colleague.Expect(t, "pong", 5*time.Second)
	if strings.Contains(s.Logs.String(), `"subject":"ip:`) {
		t.Fatal("message strikes banned an IP by default")
	}

	// abuse.ban_ip: true opts back in to IP bans for message strikes.
	cfg2 := wsgatetest.Config()
	cfg2.Abuse.MaxStrikes = 3
	cfg2.Abuse.BanIP = true
	s2 := wsgatetest.Start(t, cfg2)
	strikeOut(t, s2, "striker", 3)
	expectRefused(t, s2, wsgatetest.DialOptions{Header: bearer(s2.Token(t, "colleague", nil))}, http.StatusForbidden, "banned")
}

// 13.16: only a token typed as a subscription grant (typ "subscription") grants
// a channel; an access token that happens to carry a "channel" claim does not, and
// a subscription token does not open a connection.
func TestSec16SubscriptionTokenType(t *testing.T) {
	s := wsgatetest.Start(t, nil)
	alice := s.Connect(t, "alice", nil) // no channel permissions of her own
	access := s.Token(t, "alice", map[string]any{"channel": "chat:vip"})
	alice.SendJSON(t, map[string]any{"type": "subscribe", "id": 1, "channel": "chat:vip", "token": access})
	if e := alice.Expect(t, "error", 5*time.Second); e["code"] != "permission_denied" {
		t.Fatalf("access token with a channel claim used as a subscription grant: %v", e)
	}
	grant := s.Token(t, "alice", map[string]any{"channel": "chat:vip", "typ": "subscription"})
	alice.SendJSON(t, map[string]any{"type": "subscribe", "id": 2, "channel": "chat:vip", "token": grant})
	if a := alice.Expect(t, "ack", 5*time.Second); fmt.Sprint(a["ref"]) != "2" {
		t.Fatalf("subscription token refused: %v", a)
	}
	// A subscription grant is no access token: not for the handshake, not for a ticket.
	expectRefused(t, s, wsgatetest.DialOptions{Header: bearer(grant)}, http.StatusUnauthorized, "wrong_token_type")
	if resp, _ := httpDo(t, s.HTTPClient(), "POST", s.HTTPURL+"/v1/tickets", "Bearer "+grant, ""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("ticket for a subscription token: %d", resp.StatusCode)
	}
}

// 13.3 with shared state in Redis: two nodes count one /64 as one client for the
// handshake rate, and a ban placed through one node's admin API on an address
// holds for the whole /64 on the other.
func TestSec03IPv6PrefixKeysRedis(t *testing.T) {
	_, nodes := cluster(t, 2, func(c *config.Config) {
		c.TrustedProxies = []string{"127.0.0.1/32"}
		c.Limits.HandshakeRate = config.RateLimit{Rate: 0.01, Burst: 20}
		c.Alerts.Rules = nil
	})
	a, b := nodes[0], nodes[1]
	tok := a.Token(t, "hs", nil)
	if accepted := handshakesFromOne64(t, tok, func(i int) *wsgatetest.Server { return nodes[i%2] }); accepted > 21 {
		t.Fatalf("60 handshakes from one /64 over two nodes: %d accepted, want at most the burst (20)", accepted)
	}
	st, out := adminCall(t, a, "POST", "/api/v1/bans", a.Cfg.Admin.Token, map[string]any{"ip": v6(4, 1), "ttl": "1h"})
	if bn, _ := out["ban"].(map[string]any); st != 200 || bn["subject"] != "ip:2001:db8:1:4::/64" {
		t.Fatalf("admin ban: %d %v", st, out)
	}
	refusedWithin(t, b, xff(b.Token(t, "n", nil), v6(4, 33)), http.StatusForbidden, 5*time.Second, "prefix ban from node A in force on node B")
}
