package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Signer mints JWTs for `wsgate token`, dev mode and tests. It is safe for
// concurrent use.
type Signer struct {
	method jwt.SigningMethod
	key    any
	kid    string
	err    error // set by NewHMACSigner for a bad secret, returned by Mint
	now    func() time.Time
}

// NewHMACSigner returns an HS256 signer. A secret shorter than MinSecretBytes
// makes every Mint fail rather than produce tokens no Verifier accepts.
func NewHMACSigner(secret []byte, kid string) *Signer {
	s, err := NewSigner("HS256", secret, kid)
	if err != nil {
		return &Signer{err: err}
	}
	return s
}

// NewSigner returns a signer for alg. key is a []byte secret for HS*, an
// *rsa.PrivateKey for RS*/PS*, an *ecdsa.PrivateKey of the matching curve for
// ES*, or an ed25519.PrivateKey for EdDSA; the same alg/key-type rules as for
// verification apply. kid, when not empty, goes in the header.
func NewSigner(alg string, key any, kid string) (*Signer, error) {
	method := jwt.GetSigningMethod(alg)
	if method == nil || alg == "none" {
		return nil, fmt.Errorf("auth: signer: unsupported alg %q", alg)
	}
	var pub any
	switch k := key.(type) {
	case []byte:
		pub = k
	case *rsa.PrivateKey:
		pub = &k.PublicKey
	case *ecdsa.PrivateKey:
		pub = &k.PublicKey
	case ed25519.PrivateKey:
		pub = k.Public()
	default:
		return nil, fmt.Errorf("auth: signer: unsupported key type %T", key)
	}
	if err := checkAlg(alg, pub); err != nil {
		return nil, fmt.Errorf("auth: signer: %w", err)
	}
	return &Signer{method: method, key: key, kid: kid, now: time.Now}, nil
}

// Mint returns a token for sub valid for ttl: it sets sub, iat, nbf (now)
// and exp (now+ttl), then merges claims over them, so a caller (typically a
// test) may override any of these, e.g. to forge an expired token. A claim
// set to nil is removed instead (e.g. {"exp": nil} mints a token without
// exp).
func (s *Signer) Mint(sub string, ttl time.Duration, claims map[string]any) (string, error) {
	if s.err != nil {
		return "", s.err
	}
	if s.method == nil {
		return "", errors.New("auth: signer: not initialised (use NewSigner)")
	}
	if ttl <= 0 {
		return "", fmt.Errorf("auth: signer: ttl must be positive, got %s", ttl)
	}
	now := s.now()
	mc := jwt.MapClaims{
		"sub": sub,
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"exp": now.Add(ttl).Unix(),
	}
	for k, v := range claims {
		if v == nil {
			delete(mc, k)
		} else {
			mc[k] = v
		}
	}
	t := jwt.NewWithClaims(s.method, mc)
	if s.kid != "" {
		t.Header["kid"] = s.kid
	}
	out, err := t.SignedString(s.key)
	if err != nil {
		return "", fmt.Errorf("auth: signer: %w", err)
	}
	return out, nil
}
