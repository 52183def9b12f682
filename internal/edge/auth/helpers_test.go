package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wsgate/wsgate/internal/state/statetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testKeys are generated once per test binary: RSA generation is slow.
type testKeys struct {
	rsa, rsa2 *rsa.PrivateKey
	ec256     *ecdsa.PrivateKey
	ec384     *ecdsa.PrivateKey
	ed        ed25519.PrivateKey
	secret    []byte
}

var (
	keysOnce sync.Once
	keysVal  testKeys
	keysErr  error
)

func keys(t testing.TB) testKeys {
	t.Helper()
	keysOnce.Do(func() {
		k := &keysVal
		var e1, e2, e3, e4, e5 error
		k.rsa, e1 = rsa.GenerateKey(rand.Reader, 2048)
		k.rsa2, e2 = rsa.GenerateKey(rand.Reader, 2048)
		k.ec256, e3 = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		k.ec384, e4 = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		_, k.ed, e5 = ed25519.GenerateKey(rand.Reader)
		keysErr = errors.Join(e1, e2, e3, e4, e5)
		k.secret = []byte("0123456789abcdef0123456789abcdef") // 32 bytes
	})
	if keysErr != nil {
		t.Fatal(keysErr)
	}
	return keysVal
}

func pubPEM(t testing.TB, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// algCase is a signing algorithm, a private key that signs with it and the
// verifier's key for it.
type algCase struct {
	alg  string
	sign any
	key  Key
}

// algCases is one case per supported algorithm family and curve.
func algCases(t testing.TB) []algCase {
	t.Helper()
	k := keys(t)
	return []algCase{
		{"HS256", k.secret, Key{ID: "hs", Secret: string(k.secret)}},
		{"RS256", k.rsa, Key{ID: "rs", PublicKeyPEM: pubPEM(t, &k.rsa.PublicKey)}},
		{"PS384", k.rsa, Key{ID: "rs", PublicKeyPEM: pubPEM(t, &k.rsa.PublicKey)}},
		{"ES256", k.ec256, Key{ID: "es", PublicKeyPEM: pubPEM(t, &k.ec256.PublicKey)}},
		{"ES384", k.ec384, Key{ID: "es", PublicKeyPEM: pubPEM(t, &k.ec384.PublicKey)}},
		{"EdDSA", k.ed, Key{ID: "ed", PublicKeyPEM: pubPEM(t, k.ed.Public())}},
	}
}

// newClock returns a settable clock for Options.Now.
func newClock() *statetest.Clock { return statetest.At(time.Unix(1_800_000_000, 0)) }

func mustSigner(t testing.TB, alg string, key any, kid string, clk *statetest.Clock) *Signer {
	t.Helper()
	s, err := NewSigner(alg, key, kid)
	if err != nil {
		t.Fatal(err)
	}
	if clk != nil {
		s.now = clk.Now
	}
	return s
}

func mint(t testing.TB, s *Signer, sub string, ttl time.Duration, claims map[string]any) string {
	t.Helper()
	tok, err := s.Mint(sub, ttl, claims)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func newTestVerifier(t testing.TB, opts Options) *Verifier {
	t.Helper()
	v, err := NewVerifier(context.Background(), opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

// rawToken builds an unsigned-by-golang-jwt token from JSON parts, for
// attacks golang-jwt refuses to produce.
func rawToken(header, claims map[string]any, sig []byte) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding
	return enc.EncodeToString(h) + "." + enc.EncodeToString(c) + "." + enc.EncodeToString(sig)
}

func wantReason(t testing.TB, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want reason %q", want)
	}
	if got := Reason(err); got != want {
		t.Fatalf("reason = %q, want %q (err: %v)", got, want, err)
	}
	var ae *Error
	if !errors.As(err, &ae) {
		t.Fatalf("error %T is not *Error", err)
	}
}

func wantErrContains(t testing.TB, err error, sub string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), sub) {
		t.Fatalf("err = %v, want it to contain %q", err, sub)
	}
}
