package integrity

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// SigningKey is one Ed25519 server signing key.
type SigningKey struct {
	ID      string
	Private ed25519.PrivateKey
}

// GenerateSigningKey makes a fresh random key (e.g. per process when no key is configured).
func GenerateSigningKey(kid string) (SigningKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return SigningKey{}, fmt.Errorf("integrity: generate signing key: %w", err)
	}
	return SigningKey{ID: kid, Private: priv}, nil
}

// SigningKeyFromSeed builds a key from a 32-byte seed (from configuration).
func SigningKeyFromSeed(kid string, seed []byte) (SigningKey, error) {
	if len(seed) != ed25519.SeedSize {
		return SigningKey{}, fmt.Errorf("integrity: signing key %q: seed must be %d bytes", kid, ed25519.SeedSize)
	}
	return SigningKey{ID: kid, Private: ed25519.NewKeyFromSeed(seed)}, nil
}

// ServerSigner signs outgoing messages with the current key and publishes
// the public half of every listed key (current first) as a JWKS, so messages
// signed before a rotation still verify. Safe for concurrent use; immutable.
//
// A server signature proves origin and integrity of the body at time ts. It
// is not bound to a connection (a broadcast is signed once for all
// subscribers), so freshness against replay rests on TLS and on ts.
type ServerSigner struct {
	cur  SigningKey
	jwks []byte
	now  func() time.Time
}

// NewServerSigner uses current to sign; retired keys are only published.
func NewServerSigner(current SigningKey, retired ...SigningKey) (*ServerSigner, error) {
	type jwk struct {
		Kty string `json:"kty"`
		Crv string `json:"crv"`
		X   string `json:"x"`
		Kid string `json:"kid"`
		Alg string `json:"alg"`
		Use string `json:"use"`
	}
	var set struct {
		Keys []jwk `json:"keys"`
	}
	seen := map[string]bool{}
	for _, k := range append([]SigningKey{current}, retired...) {
		if k.ID == "" || len(k.ID) > maxKidLen {
			return nil, fmt.Errorf("integrity: signing key id %q: must be 1-%d bytes", k.ID, maxKidLen)
		}
		if len(k.Private) != ed25519.PrivateKeySize {
			return nil, fmt.Errorf("integrity: signing key %q: not an Ed25519 private key", k.ID)
		}
		if seen[k.ID] {
			return nil, fmt.Errorf("integrity: signing key id %q listed twice", k.ID)
		}
		seen[k.ID] = true
		pub, _ := k.Private.Public().(ed25519.PublicKey)
		set.Keys = append(set.Keys, jwk{Kty: "OKP", Crv: "Ed25519", X: B64(pub), Kid: k.ID, Alg: AlgEdDSA, Use: "sig"})
	}
	b, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("integrity: encode JWKS: %w", err)
	}
	return &ServerSigner{cur: current, jwks: b, now: time.Now}, nil
}

// Sign wraps msg (the exact bytes the client should act on, normally a JSON
// object) in a server envelope signed with the current key.
func (s *ServerSigner) Sign(msg []byte) []byte {
	ts := s.now().UnixMilli()
	e := ServerEnvelope{Alg: AlgEdDSA, Kid: s.cur.ID, TS: ts, Body: msg}
	e.Sig = ed25519.Sign(s.cur.Private, ServerSigningInput(e.Alg, e.Kid, ts, msg))
	return e.Marshal()
}

// JWKS is the public key set for /.well-known/wsgate-keys.json
// (Content-Type application/jwk-set+json). The slice is shared: do not modify.
func (s *ServerSigner) JWKS() []byte { return s.jwks }

// ServerKeys are verification keys by kid, parsed from a JWKS.
type ServerKeys map[string]PublicKey

// maxJWKSLen bounds a fetched JWKS before parsing.
const maxJWKSLen = 64 << 10

// ParseJWKS reads the Ed25519 keys of a JWKS; keys of other types are skipped.
func ParseJWKS(b []byte) (ServerKeys, error) {
	if len(b) > maxJWKSLen {
		return nil, errors.New("integrity: JWKS too large")
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("integrity: JWKS: %w", err)
	}
	out := ServerKeys{}
	for _, raw := range set.Keys {
		var meta struct {
			Kid string `json:"kid"`
			Kty string `json:"kty"`
			Crv string `json:"crv"`
		}
		if err := json.Unmarshal(raw, &meta); err != nil {
			return nil, fmt.Errorf("integrity: JWKS key: %w", err)
		}
		if meta.Kty != "OKP" || meta.Crv != "Ed25519" || meta.Kid == "" {
			continue
		}
		k, err := ParseJWK(raw)
		if err != nil {
			return nil, fmt.Errorf("integrity: JWKS key %q: %w", meta.Kid, err)
		}
		if _, dup := out[meta.Kid]; dup {
			return nil, fmt.Errorf("integrity: JWKS: kid %q listed twice", meta.Kid)
		}
		out[meta.Kid] = k
	}
	if len(out) == 0 {
		return nil, errors.New("integrity: JWKS has no Ed25519 key")
	}
	return out, nil
}

// VerifyServerMessage checks a server envelope against keys and returns the
// signed body and its ts (unix ms). Freshness policy is the caller's.
func VerifyServerMessage(keys ServerKeys, msg []byte) (body []byte, ts int64, err error) {
	e, err := ParseServerEnvelope(msg)
	if err != nil {
		return nil, 0, err
	}
	k, ok := keys[e.Kid]
	if !ok {
		return nil, 0, reject(CodeBadSignature, "unknown server kid")
	}
	if !k.Verify(ServerSigningInput(e.Alg, e.Kid, e.TS, e.Body), e.Sig) {
		return nil, 0, reject(CodeBadSignature, "server signature does not verify")
	}
	return e.Body, e.TS, nil
}
