package integrity

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"math/big"
)

// maxJWKLen bounds the handshake key parameter before any parsing.
const maxJWKLen = 1024

// PublicKey is a pop-mode client key or a server verification key: Ed25519
// or ECDSA P-256. The zero value verifies nothing.
type PublicKey struct {
	alg string // AlgEdDSA or AlgES256
	ed  ed25519.PublicKey
	ec  *ecdsa.PublicKey
	jkt string
}

// Alg is the envelope algorithm this key verifies (EdDSA or ES256).
func (k PublicKey) Alg() string { return k.alg }

// Thumbprint is the RFC 7638 SHA-256 thumbprint, base64url (the cnf.jkt value).
func (k PublicKey) Thumbprint() string { return k.jkt }

// Verify reports whether sig is a valid signature of msg under k. ES256
// signatures are the 64-byte r||s form that JOSE and WebCrypto use.
func (k PublicKey) Verify(msg, sig []byte) bool {
	switch k.alg {
	case AlgEdDSA:
		return len(sig) == ed25519.SignatureSize && ed25519.Verify(k.ed, msg, sig)
	case AlgES256:
		if len(sig) != 64 || k.ec == nil {
			return false
		}
		h := sha256.Sum256(msg)
		r := new(big.Int).SetBytes(sig[:32])
		s := new(big.Int).SetBytes(sig[32:])
		return ecdsa.Verify(k.ec, h[:], r, s)
	}
	return false
}

// PublicKeyFromEd25519 wraps an Ed25519 public key.
func PublicKeyFromEd25519(pub ed25519.PublicKey) (PublicKey, error) {
	if len(pub) != ed25519.PublicKeySize {
		return PublicKey{}, errors.New("integrity: ed25519 public key must be 32 bytes")
	}
	k := PublicKey{alg: AlgEdDSA, ed: append(ed25519.PublicKey(nil), pub...)}
	k.jkt = B64(thumbprintSum(k.canonicalJWK()))
	return k, nil
}

// PublicKeyFromECDSA wraps a P-256 public key.
func PublicKeyFromECDSA(pub *ecdsa.PublicKey) (PublicKey, error) {
	if pub == nil || pub.Curve != elliptic.P256() {
		return PublicKey{}, errors.New("integrity: only ECDSA P-256 keys are supported")
	}
	// Round-trip through the encoding to validate the point and drop any
	// reliance on the deprecated big.Int coordinates.
	raw, err := pub.Bytes()
	if err != nil {
		return PublicKey{}, errors.New("integrity: invalid P-256 public key")
	}
	return es256Key(raw, "integrity: invalid P-256 public key")
}

// es256Key parses raw, an uncompressed P-256 point, into a key with its
// thumbprint; notOnCurve is the error text when raw is not a valid point.
func es256Key(raw []byte, notOnCurve string) (PublicKey, error) {
	ec, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
	if err != nil {
		return PublicKey{}, errors.New(notOnCurve)
	}
	k := PublicKey{alg: AlgES256, ec: ec}
	k.jkt = B64(thumbprintSum(k.canonicalJWK()))
	return k, nil
}

// canonicalJWK is the RFC 7638 input: required members only, sorted, no
// whitespace. Members are base64url without padding so no escaping occurs.
func (k PublicKey) canonicalJWK() []byte {
	switch k.alg {
	case AlgEdDSA:
		return []byte(`{"crv":"Ed25519","kty":"OKP","x":"` + B64(k.ed) + `"}`)
	case AlgES256:
		raw, _ := k.ec.Bytes() // 0x04 || X || Y, validated at construction
		if len(raw) != 65 {
			return nil
		}
		return []byte(`{"crv":"P-256","kty":"EC","x":"` + B64(raw[1:33]) + `","y":"` + B64(raw[33:]) + `"}`)
	}
	return nil
}

// JWK is the public key as a minimal JWK (the RFC 7638 canonical form, which
// is also a valid JWK), e.g. for the pop_key handshake parameter.
func (k PublicKey) JWK() []byte { return k.canonicalJWK() }

func thumbprintSum(canonical []byte) []byte {
	s := sha256.Sum256(canonical)
	return s[:]
}

// jwkFields are the members we read. Unknown members ("alg", "use",
// "key_ops", "ext", "kid"…) are ignored as RFC 7517 allows.
type jwkFields struct {
	Kty *string `json:"kty"`
	Crv *string `json:"crv"`
	X   *string `json:"x"`
	Y   *string `json:"y"`
	D   *string `json:"d"`
}

// ParseJWK parses a public Ed25519 (OKP) or P-256 (EC) JWK. It refuses a JWK
// carrying a private part ("d"): a client that leaks its private key into a
// URL must be told, not silently served. Member names are matched exactly and
// must not repeat.
func ParseJWK(b []byte) (PublicKey, error) {
	if len(b) > maxJWKLen {
		return PublicKey{}, errors.New("integrity: JWK too large")
	}
	var f jwkFields
	dec := newDecoder(b)
	seen := map[string]bool{}
	err := walkObject(dec, func(name string) error {
		if seen[name] {
			return errors.New("duplicate JWK member")
		}
		seen[name] = true
		var dst **string
		switch name {
		case "kty":
			dst = &f.Kty
		case "crv":
			dst = &f.Crv
		case "x":
			dst = &f.X
		case "y":
			dst = &f.Y
		case "d":
			dst = &f.D
		default:
			var skip json.RawMessage
			return dec.Decode(&skip)
		}
		s, err := tokString(dec)
		if err != nil {
			return err
		}
		*dst = &s
		return nil
	})
	if err == nil {
		err = noTrailing(dec)
	}
	if err != nil {
		return PublicKey{}, errors.New("integrity: JWK: " + err.Error())
	}
	if f.D != nil {
		return PublicKey{}, errors.New("integrity: JWK contains a private key")
	}
	if f.Kty == nil || f.Crv == nil || f.X == nil {
		return PublicKey{}, errors.New("integrity: JWK: missing kty, crv or x")
	}
	x, err := b64.DecodeString(*f.X)
	if err != nil {
		return PublicKey{}, errors.New("integrity: JWK: x is not base64url")
	}
	switch {
	case *f.Kty == "OKP" && *f.Crv == "Ed25519":
		if f.Y != nil {
			return PublicKey{}, errors.New("integrity: JWK: OKP key with y")
		}
		return PublicKeyFromEd25519(x)
	case *f.Kty == "EC" && *f.Crv == "P-256":
		if f.Y == nil {
			return PublicKey{}, errors.New("integrity: JWK: EC key without y")
		}
		y, err := b64.DecodeString(*f.Y)
		if err != nil || len(x) != 32 || len(y) != 32 {
			return PublicKey{}, errors.New("integrity: JWK: P-256 coordinates must be 32 bytes of base64url")
		}
		return es256Key(append(append([]byte{4}, x...), y...), "integrity: JWK: point not on P-256")
	}
	return PublicKey{}, errors.New("integrity: JWK: only OKP/Ed25519 and EC/P-256 keys are supported")
}

// CheckHandshakeKey decodes the handshake key parameter (base64url of the
// JWK JSON), parses the public key and checks that its RFC 7638 thumbprint
// equals jkt, the token's cnf.jkt claim (compared in constant time, though
// neither value is secret). Errors are *Error: CodeBadEnvelope for a
// malformed key, CodeBadSignature for a thumbprint mismatch.
func CheckHandshakeKey(jwkB64 string, jkt string) (PublicKey, error) {
	if jkt == "" {
		return PublicKey{}, reject(CodeBadSignature, "token has no cnf.jkt")
	}
	if len(jwkB64) > b64.EncodedLen(maxJWKLen) {
		return PublicKey{}, reject(CodeBadEnvelope, "pop key too large")
	}
	raw, err := b64.DecodeString(jwkB64)
	if err != nil {
		return PublicKey{}, reject(CodeBadEnvelope, "pop key is not base64url")
	}
	k, err := ParseJWK(raw)
	if err != nil {
		return PublicKey{}, rejectErr(CodeBadEnvelope, "pop key", err)
	}
	if subtle.ConstantTimeCompare([]byte(k.jkt), []byte(jkt)) != 1 {
		return PublicKey{}, reject(CodeBadSignature, "pop key thumbprint differs from cnf.jkt")
	}
	return k, nil
}
