package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"go.uber.org/goleak"

	"github.com/wsgate/wsgate/internal/state/statetest"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/leak"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/wait"
)

// jwksServer serves a mutable JWK set and counts fetches.
type jwksServer struct {
	*httptest.Server
	hits   atomic.Int64
	block  atomic.Pointer[chan struct{}] // when set, requests wait for it to close
	mu     sync.Mutex
	body   []byte
	status int
}

func newJWKSServer(t *testing.T) *jwksServer {
	s := &jwksServer{status: http.StatusOK}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		if b := s.block.Load(); b != nil {
			select {
			case <-*b:
			case <-r.Context().Done():
				return
			}
		}
		s.mu.Lock()
		body, status := s.body, s.status
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(t *testing.T, keys ...map[string]any) {
	t.Helper()
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.body, s.status = b, http.StatusOK
	s.mu.Unlock()
}

func (s *jwksServer) fail(status int) {
	s.mu.Lock()
	s.status = status
	s.mu.Unlock()
}

// jwkOf renders pub as a JWK map with kid and (optional) alg.
func jwkOf(t *testing.T, pub any, kid, alg string) map[string]any {
	t.Helper()
	k, err := jwk.Import(pub)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if kid != "" {
		m["kid"] = kid
	}
	if alg != "" {
		m["alg"] = alg
	}
	return m
}

// startJWKS serves the test RSA key as kid (RS256) from a JWKS endpoint and
// returns a verifier on it (o with JWKSURL and a settable clock).
func startJWKS(t *testing.T, kid string, o Options) (testKeys, *statetest.Clock, *jwksServer, *Verifier) {
	t.Helper()
	k := keys(t)
	clk := newClock()
	srv := newJWKSServer(t)
	srv.set(t, jwkOf(t, &k.rsa.PublicKey, kid, "RS256"))
	o.JWKSURL, o.Now = srv.URL, clk.Now
	return k, clk, srv, newTestVerifier(t, o)
}

func TestJWKSVerifyAndFamilies(t *testing.T) {
	k := keys(t)
	clk := newClock()
	srv := newJWKSServer(t)
	srv.set(t,
		jwkOf(t, &k.rsa.PublicKey, "rsa1", "RS256"),
		jwkOf(t, &k.ec256.PublicKey, "ec1", ""), // no alg: family (ES256 for P-256)
		jwkOf(t, k.ed.Public(), "ed1", ""),
		map[string]any{"kty": "oct", "kid": "oct1", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"},    // ignored
		jwkOf(t, &k.rsa2.PublicKey, "rsa2", "HS256"),                                                          // wrong alg for type: ignored
		map[string]any{"kty": "WEIRD", "kid": "w"},                                                            // unsupported: ignored
		func() map[string]any { m := jwkOf(t, &k.ec384.PublicKey, "enc1", ""); m["use"] = "enc"; return m }(), // not for signatures
	)
	v := newTestVerifier(t, Options{JWKSURL: srv.URL, Now: clk.Now})
	ok := []struct {
		alg, kid string
		key      any
	}{{"RS256", "rsa1", k.rsa}, {"ES256", "ec1", k.ec256}, {"EdDSA", "ed1", k.ed}}
	for _, c := range ok {
		if _, err := v.Verify(context.Background(), mint(t, mustSigner(t, c.alg, c.key, c.kid, clk), "a", time.Minute, nil)); err != nil {
			t.Fatalf("%s: %v", c.kid, err)
		}
	}
	// RS256 only for rsa1 (alg given), PS256 refused.
	_, err := v.Verify(context.Background(), mint(t, mustSigner(t, "PS256", k.rsa, "rsa1", clk), "a", time.Minute, nil))
	wantReason(t, err, ReasonAlgNotAllowed)
	// The oct key was not loaded: an HS256 token naming it is unknown.
	_, err = v.Verify(context.Background(), mint(t, mustSigner(t, "HS256", []byte("secret-secret-secret-secret-secret"), "oct1", clk), "a", time.Minute, nil))
	wantReason(t, err, ReasonUnknownKey)
	// Key confusion through the JWKS: HS256 signed with the RSA key's PEM.
	s := &Signer{method: mustSigner(t, "HS256", k.secret, "", clk).method, key: []byte(pubPEM(t, &k.rsa.PublicKey)), kid: "rsa1", now: clk.Now}
	_, err = v.Verify(context.Background(), mint(t, s, "a", time.Minute, nil))
	wantReason(t, err, ReasonAlgNotAllowed)
	for _, kid := range []string{"rsa2", "enc1", "w"} {
		if v.lookup(kid) != nil {
			t.Fatalf("key %s should have been skipped", kid)
		}
	}
}

func TestJWKSRotationAndFlood(t *testing.T) {
	k, clk, srv, v := startJWKS(t, "old", Options{JWKSMinRefresh: 30 * time.Second, JWKSRefresh: time.Hour})
	if got := srv.hits.Load(); got != 1 {
		t.Fatalf("initial fetches = %d", got)
	}
	// The provider rotates: new kid appears.
	srv.set(t, jwkOf(t, &k.rsa.PublicKey, "old", "RS256"), jwkOf(t, &k.rsa2.PublicKey, "new", "RS256"))
	newTok := mint(t, mustSigner(t, "RS256", k.rsa2, "new", clk), "a", time.Minute, nil)

	// Within the min refresh gap the unknown kid does not trigger a fetch.
	_, err := v.Verify(context.Background(), newTok)
	wantReason(t, err, ReasonUnknownKey)
	if got := srv.hits.Load(); got != 1 {
		t.Fatalf("fetches within min gap = %d", got)
	}
	clk.Advance(31 * time.Second)
	if _, err := v.Verify(context.Background(), newTok); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	if got := srv.hits.Load(); got != 2 {
		t.Fatalf("fetches after rotation = %d", got)
	}

	// A flood of unknown kids, concurrently: at most one fetch per gap.
	clk.Advance(31 * time.Second)
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			tok := mint(t, mustSigner(t, "RS256", k.rsa, fmt.Sprintf("bogus-%d", i), clk), "a", time.Minute, nil)
			_, err := v.Verify(context.Background(), tok)
			if Reason(err) != ReasonUnknownKey {
				t.Errorf("flood %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if got := srv.hits.Load(); got != 3 {
		t.Fatalf("fetches after flood = %d, want 3", got)
	}

	// Old keys disappear on rotation.
	srv.set(t, jwkOf(t, &k.rsa2.PublicKey, "new", "RS256"))
	clk.Advance(31 * time.Second)
	_, err = v.Verify(context.Background(), mint(t, mustSigner(t, "RS256", k.rsa, "old", clk), "a", time.Minute, nil))
	if err != nil {
		t.Fatalf("old key still known (no refresh needed): %v", err)
	}
	_, _ = v.Verify(context.Background(), mint(t, mustSigner(t, "RS256", k.rsa, "unknown", clk), "a", time.Minute, nil))
	_, err = v.Verify(context.Background(), mint(t, mustSigner(t, "RS256", k.rsa, "old", clk), "a", time.Minute, nil))
	wantReason(t, err, ReasonUnknownKey)
}

func TestJWKSUnavailable(t *testing.T) {
	k, clk, srv, v := startJWKS(t, "k1", Options{})
	srv.fail(http.StatusInternalServerError)
	clk.Advance(time.Minute)
	_, err := v.Verify(context.Background(), mint(t, mustSigner(t, "RS256", k.rsa, "k2", clk), "a", time.Minute, nil))
	wantReason(t, err, ReasonJWKSUnavailable)
	// Known keys keep working while the provider is down.
	if _, err := v.Verify(context.Background(), mint(t, mustSigner(t, "RS256", k.rsa, "k1", clk), "a", time.Minute, nil)); err != nil {
		t.Fatal(err)
	}
	// Still rate limited, still reported as unavailable.
	_, err = v.Verify(context.Background(), mint(t, mustSigner(t, "RS256", k.rsa, "k3", clk), "a", time.Minute, nil))
	wantReason(t, err, ReasonJWKSUnavailable)
}

func TestJWKSStartupErrors(t *testing.T) {
	srv := newJWKSServer(t)
	srv.set(t, map[string]any{"kty": "oct", "kid": "x", "k": "c2VjcmV0"})
	_, err := NewVerifier(context.Background(), Options{JWKSURL: srv.URL}, nil)
	wantErrContains(t, err, "auth.jwks_url: initial fetch: jwks has no usable signature keys")
	srv.fail(http.StatusNotFound)
	_, err = NewVerifier(context.Background(), Options{JWKSURL: srv.URL}, nil)
	wantErrContains(t, err, "status 404")
	big := newJWKSServer(t)
	big.mu.Lock()
	big.body = []byte(`{"keys":[` + strings.Repeat(" ", maxJWKSBytes) + `]}`)
	big.mu.Unlock()
	_, err = NewVerifier(context.Background(), Options{JWKSURL: big.URL}, nil)
	wantErrContains(t, err, "larger than")
}

func TestJWKSPeriodicRefreshAndClose(t *testing.T) {
	k := keys(t)
	srv := newJWKSServer(t)
	srv.set(t, jwkOf(t, &k.rsa.PublicKey, "k1", "RS256"))
	before := goleak.IgnoreCurrent()
	v, err := NewVerifier(context.Background(), Options{JWKSURL: srv.URL, JWKSRefresh: 10 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wait.For(t, "three fetches by the refresher", 5*time.Second, func() bool { return srv.hits.Load() >= 3 })
	v.Close()
	v.Close() // idempotent
	// No refresher left; the fetches' keep-alive connections to srv end with it.
	goleak.VerifyNone(t, append([]goleak.Option{before}, leak.HTTPKeepAlive...)...)
	after := srv.hits.Load()
	time.Sleep(50 * time.Millisecond)
	if srv.hits.Load() != after {
		t.Fatal("fetches continued after Close")
	}
}

// Issue 13.1: a handshake that stops waiting (its client hung up) neither
// cancels the refresh nor has its cancellation remembered as a failure; every
// concurrent waiter shares the one fetch.
func TestJWKSRefreshSurvivesAbortedWaiter(t *testing.T) {
	k, clk, srv, v := startJWKS(t, "k1", Options{})
	clk.Advance(time.Minute)
	srv.set(t, jwkOf(t, &k.rsa.PublicKey, "k1", "RS256"), jwkOf(t, &k.rsa2.PublicKey, "k2", "RS256"))
	gate := make(chan struct{})
	srv.block.Store(&gate)
	tok := mint(t, mustSigner(t, "RS256", k.rsa2, "k2", clk), "a", time.Minute, nil)

	ctx, cancel := context.WithCancel(context.Background())
	aborted := make(chan error, 1)
	go func() { _, err := v.Verify(ctx, tok); aborted <- err }()
	wait.For(t, "the unknown kid to start a JWKS fetch", 5*time.Second, func() bool { return srv.hits.Load() >= 2 })
	cancel()
	select {
	case err := <-aborted:
		if err == nil {
			t.Fatal("aborted waiter verified before the fetch finished")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a waiter whose context ended kept waiting")
	}
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for range 10 {
		wg.Go(func() {
			_, err := v.Verify(context.Background(), tok)
			errs <- err
		})
	}
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("rotated key refused after an aborted waiter: %v", err)
		}
	}
	if got := srv.hits.Load(); got != 2 {
		t.Fatalf("JWKS fetched %d times, want 2 (start + one shared refresh)", got)
	}
}
