package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest"
)

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func (ca *testCA) client(t *testing.T, cn, uri string) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	u, _ := url.Parse(uri)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs: []*url.URL{u},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// mtlsConfig is the base test configuration trusting ca for client
// certificates, with tls.client_auth clientAuth and auth.mode mode.
func mtlsConfig(t *testing.T, ca *testCA, clientAuth, mode string) *config.Config {
	t.Helper()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, ca.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := wsgatetest.Config()
	cfg.TLS.ClientCAFile = caFile
	cfg.TLS.ClientAuth = clientAuth
	cfg.Auth.Mode = mode
	return cfg
}

// withCert is s's client TLS configuration presenting cert.
func withCert(s *wsgatetest.Server, cert tls.Certificate) *tls.Config {
	tc := s.TLSConfig.Clone()
	tc.Certificates = []tls.Certificate{cert}
	return tc
}

func TestMTLS(t *testing.T) {
	ca := newCA(t, "test client CA")
	other := newCA(t, "untrusted CA")
	s := wsgatetest.Start(t, mtlsConfig(t, ca, "verify_if_given", "jwt_or_mtls"))
	// A good client certificate alone is a credential; identity from the URI SAN.
	c, _, err := s.Dial(t, wsgatetest.DialOptions{TLSConfig: withCert(s, ca.client(t, "svc", "spiffe://test/svc-a"))})
	if err != nil {
		t.Fatalf("good client cert refused: %v", err)
	}
	if w := c.Expect(t, "welcome", 5*time.Second); w["user"] != "spiffe://test/svc-a" {
		t.Fatalf("identity %v", w["user"])
	}
	// No certificate and no token: 401.
	expectRefused(t, s, wsgatetest.DialOptions{}, 401, "no_credential")
	// A certificate from another CA fails the TLS handshake itself.
	if _, _, err := s.Dial(t, wsgatetest.DialOptions{TLSConfig: withCert(s, other.client(t, "evil", "spiffe://test/evil"))}); err == nil {
		t.Fatal("untrusted client certificate accepted")
	}
	s.Connect(t, "token-user", nil)

	// require: no certificate fails at TLS.
	cfg2 := mtlsConfig(t, ca, "require", "mtls")
	cfg2.TLS.IdentityFrom = "cn"
	s2 := wsgatetest.Start(t, cfg2)
	if _, _, err := s2.Dial(t, wsgatetest.DialOptions{Header: bearer(s2.Token(t, "x", nil))}); err == nil {
		t.Fatal("require: connection without a client certificate accepted")
	}
	c2, _, err := s2.Dial(t, wsgatetest.DialOptions{TLSConfig: withCert(s2, ca.client(t, "device-42", "spiffe://x/y"))})
	if err != nil {
		t.Fatalf("require with good cert: %v", err)
	}
	if w := c2.Expect(t, "welcome", 5*time.Second); w["user"] != "device-42" {
		t.Fatalf("cn identity %v", w["user"])
	}
}

func TestPingPong(t *testing.T) {
	s := wsgatetest.Start(t, nil)
	c := s.Connect(t, "pinger", nil)
	c.Send(t, `{"type":"ping","id":7}`)
	p := c.Expect(t, "pong", 5*time.Second)
	if p["ref"] != float64(7) || p["timestamp"] == nil {
		t.Fatalf("pong %v", p)
	}
}

func TestTokenExpiryAndRefresh(t *testing.T) {
	s := wsgatetest.Start(t, nil)
	// Expiry closes with 4001.
	h := bearer(s.TokenTTL(t, "short", 1500*time.Millisecond, nil))
	c, _, err := s.Dial(t, wsgatetest.DialOptions{Header: h})
	if err != nil {
		t.Fatal(err)
	}
	c.Expect(t, "welcome", 5*time.Second)
	c.ExpectClose(t, 4001, 5*time.Second)

	// Refresh extends.
	c, _, err = s.Dial(t, wsgatetest.DialOptions{Header: bearer(s.TokenTTL(t, "renew", 1500*time.Millisecond, nil))})
	if err != nil {
		t.Fatal(err)
	}
	c.Expect(t, "welcome", 5*time.Second)
	c.SendJSON(t, map[string]any{"type": "refresh", "id": "r1", "token": s.TokenTTL(t, "renew", time.Hour, nil)})
	r := c.Expect(t, "refreshed", 5*time.Second)
	if r["ref"] != "r1" {
		t.Fatalf("refreshed %v", r)
	}
	time.Sleep(2 * time.Second)
	c.Send(t, `{"type":"ping"}`)
	c.Expect(t, "pong", 5*time.Second)

	// Refresh for another subject fails and the old expiry stays.
	c, _, err = s.Dial(t, wsgatetest.DialOptions{Header: bearer(s.TokenTTL(t, "victim", 1500*time.Millisecond, nil))})
	if err != nil {
		t.Fatal(err)
	}
	c.Expect(t, "welcome", 5*time.Second)
	c.SendJSON(t, map[string]any{"type": "refresh", "id": 2, "token": s.Token(t, "attacker", nil)})
	e := c.Expect(t, "error", 5*time.Second)
	if e["code"] != "refresh_failed" {
		t.Fatalf("error %v", e)
	}
	c.ExpectClose(t, 4001, 5*time.Second)
}

func TestIdleAndKeepalive(t *testing.T) {
	cfg := wsgatetest.Config()
	cfg.Timeouts.Idle = time.Second
	s := wsgatetest.Start(t, cfg)
	c := s.Connect(t, "sleepy", nil)
	c.ExpectClose(t, 4002, 5*time.Second)
}

func TestShutdownSends1001(t *testing.T) {
	s := wsgatetest.Start(t, nil)
	var clients []*wsgatetest.Client
	for i := 0; i < 5; i++ {
		clients = append(clients, s.Connect(t, "u", nil))
	}
	done := make(chan error, 1)
	go func() { done <- s.Stop(t) }()
	for _, c := range clients {
		c.ExpectClose(t, 1001, 5*time.Second)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("shutdown did not finish within the drain timeout")
	}
}

// Thousands of connections broken abruptly (no close frame) must all give their
// quota slots back: the guide's server never released them.
func TestQuotaCountsReturnToZeroAfterAbruptDisconnects(t *testing.T) {
	cfg := wsgatetest.Config()
	cfg.InsecurePlaintext = true // keeps the test about quotas, not TLS handshakes
	cfg.Limits.HandshakeRate.Rate = 0
	cfg.Limits.Connections.PerIP = 0
	cfg.Limits.Connections.PerUser = 0
	cfg.Log.Level = "warn"
	s := wsgatetest.Start(t, cfg)
	const total, parallel = 2000, 50
	var wg sync.WaitGroup
	sem := make(chan struct{}, parallel)
	errs := make(chan error, total)
	tok := s.Token(t, "churn", nil)
	for i := 0; i < total; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			c, _, err := s.Dial(t, wsgatetest.DialOptions{Header: bearer(tok)})
			if err != nil {
				errs <- err
				return
			}
			if i%2 == 0 {
				select {
				case <-c.Msgs:
				case <-time.After(5 * time.Second):
				}
			}
			// Abrupt: drop the TCP connection without a close frame.
			_ = c.Conn.NetConn().(*net.TCPConn).SetLinger(0)
			_ = c.Conn.Close()
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("dial: %v", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		conns, inUse := s.Connections(), s.QuotaInUse(context.Background())
		if conns == 0 && inUse == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %d abrupt disconnects: %d sessions and %d quota slots still held", total, conns, inUse)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
