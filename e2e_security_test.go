package wsgate_test

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
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/wsgatetest"
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

// secUpgradeHead is the start of a valid upgrade request to /ws, without the
// final blank line.
func secUpgradeHead(host string) string {
	return "GET /ws HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
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
		_, _ = io.WriteString(conn, secUpgradeHead("127.0.0.1")+"Authorization: Bearer "+tok+"\r\n\r\n")
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
	stop := make(chan struct{})
	var attacker sync.WaitGroup
	attacker.Add(1)
	go func() {
		defer attacker.Done()
		for i := 1_000_000; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			abortOne(i)
		}
	}()
	defer func() { close(stop); attacker.Wait() }()

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
