package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/wsgate/wsgate/internal/readfile"
)

// MinSecretBytes is the shortest HMAC secret accepted (for HS256; HS384 and
// HS512 need 48 and 64 bytes, RFC 7518 §3.2).
const MinSecretBytes = 32

// MinRSABits is the smallest RSA modulus accepted.
const MinRSABits = 2048

// secretPrefix marks a base64-encoded secret; FormatSecret prints it.
const secretPrefix = "base64:"

// maxKeyFileBytes bounds PublicKeyFile reads: a PEM public key is a few KiB.
const maxKeyFileBytes = 1 << 20

// Key is one statically configured verification key.
//
// Exactly one of Secret, PublicKeyPEM and PublicKeyFile is set. Algorithms is
// the allow-list for this key; it is checked against the key type at load
// (HS* only for secrets, RS*/PS* only for RSA, ES* only for the ECDSA key of
// the matching curve, EdDSA only for Ed25519). When empty it defaults to the
// whole family for that key type (for secrets: the HS* variants the secret is
// long enough for).
type Key struct {
	// ID is the kid. Optional: a token without a kid is tried against every
	// key whose allow-list holds its alg.
	ID         string
	Algorithms []string
	// Secret is an HMAC secret, "base64:<std or url base64>" or raw text; it
	// must decode to at least MinSecretBytes bytes. See ParseSecret.
	Secret string
	// PublicKeyPEM is a PEM "PUBLIC KEY", "RSA PUBLIC KEY" or "CERTIFICATE".
	PublicKeyPEM string
	// PublicKeyFile is a file holding what PublicKeyPEM would.
	PublicKeyFile string
}

// ParseSecret decodes a configured HMAC secret. "base64:..." is decoded as
// standard or URL-safe base64, padded or not; anything else is taken as raw
// bytes. The result must be at least MinSecretBytes long.
func ParseSecret(s string) ([]byte, error) {
	var b []byte
	if rest, ok := strings.CutPrefix(s, secretPrefix); ok {
		rest = strings.TrimSpace(rest)
		var err error
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			if b, err = enc.Strict().DecodeString(rest); err == nil {
				break
			}
		}
		if err != nil {
			return nil, fmt.Errorf("invalid base64 after %q prefix: %w", secretPrefix, err)
		}
	} else {
		b = []byte(s)
	}
	if len(b) < MinSecretBytes {
		return nil, fmt.Errorf("must decode to at least %d bytes, got %d", MinSecretBytes, len(b))
	}
	return b, nil
}

// FormatSecret renders a secret in the form ParseSecret reads back
// ("base64:" + standard base64). The dev-mode banner prints secrets this way.
func FormatSecret(secret []byte) string {
	return secretPrefix + base64.StdEncoding.EncodeToString(secret)
}

// NewSecret returns a fresh random 32-byte secret, formatted by FormatSecret.
func NewSecret() string {
	b := make([]byte, MinSecretBytes)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (it aborts the process instead).
	return FormatSecret(b)
}

// Algorithm families.
var (
	hmacAlgs  = []string{"HS256", "HS384", "HS512"}
	rsaAlgs   = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	eddsaAlgs = []string{"EdDSA"}
)

// hmacMinLen is the RFC 7518 §3.2 minimum key size per HMAC alg.
var hmacMinLen = map[string]int{"HS256": 32, "HS384": 48, "HS512": 64}

// ecAlgForCurve is the only ES alg a curve may be used with.
func ecAlgForCurve(c elliptic.Curve) string {
	switch c {
	case elliptic.P256():
		return "ES256"
	case elliptic.P384():
		return "ES384"
	case elliptic.P521():
		return "ES512"
	}
	return ""
}

// familyAlgs is the default allow-list for a verification key.
func familyAlgs(key any) []string {
	switch k := key.(type) {
	case []byte:
		var out []string
		for _, a := range hmacAlgs {
			if len(k) >= hmacMinLen[a] {
				out = append(out, a)
			}
		}
		return out
	case *rsa.PublicKey:
		return rsaAlgs
	case *ecdsa.PublicKey:
		if a := ecAlgForCurve(k.Curve); a != "" {
			return []string{a}
		}
	case ed25519.PublicKey:
		return eddsaAlgs
	}
	return nil
}

// checkAlg says whether alg may be used with key. This is the single place
// that prevents key confusion: a public key never gets an HS* alg.
func checkAlg(alg string, key any) error {
	switch k := key.(type) {
	case []byte:
		min, ok := hmacMinLen[alg]
		if !ok {
			return fmt.Errorf("algorithm %q is not allowed for an HMAC secret (allowed: %s)", alg, strings.Join(hmacAlgs, ", "))
		}
		if len(k) < min {
			return fmt.Errorf("algorithm %s needs a secret of at least %d bytes, got %d", alg, min, len(k))
		}
		return nil
	case *rsa.PublicKey:
		if !slices.Contains(rsaAlgs, alg) {
			return fmt.Errorf("algorithm %q is not allowed for an RSA key (allowed: %s)", alg, strings.Join(rsaAlgs, ", "))
		}
		return nil
	case *ecdsa.PublicKey:
		want := ecAlgForCurve(k.Curve)
		if want == "" {
			return errors.New("unsupported ECDSA curve (want P-256, P-384 or P-521)")
		}
		if alg != want {
			return fmt.Errorf("algorithm %q is not allowed for an ECDSA %s key (allowed: %s)", alg, k.Curve.Params().Name, want)
		}
		return nil
	case ed25519.PublicKey:
		if alg != "EdDSA" {
			return fmt.Errorf("algorithm %q is not allowed for an Ed25519 key (allowed: EdDSA)", alg)
		}
		return nil
	}
	return fmt.Errorf("unsupported key type %T", key)
}

// vkey is a loaded verification key. It is immutable once built.
type vkey struct {
	id   string
	algs []string
	key  any // []byte, *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
}

func (k *vkey) allows(alg string) bool { return slices.Contains(k.algs, alg) }

// newVKey validates key against algs (or picks the family default).
func newVKey(id string, key any, algs []string) (*vkey, error) {
	if len(algs) == 0 {
		algs = familyAlgs(key)
		if len(algs) == 0 {
			return nil, fmt.Errorf("no usable algorithm for key type %T", key)
		}
	}
	for _, a := range algs {
		if strings.EqualFold(a, "none") {
			return nil, errors.New(`algorithm "none" is never accepted`)
		}
		if err := checkAlg(a, key); err != nil {
			return nil, err
		}
	}
	return &vkey{id: id, algs: slices.Clone(algs), key: key}, nil
}

// loadKey loads configured key i; errors name the offending field.
func loadKey(i int, k Key) (*vkey, error) {
	path := fmt.Sprintf("auth.keys[%d]", i)
	set := 0
	for _, s := range []string{k.Secret, k.PublicKeyPEM, k.PublicKeyFile} {
		if s != "" {
			set++
		}
	}
	if set != 1 {
		return nil, fmt.Errorf("%s: exactly one of secret, public_key_pem, public_key_file must be set, got %d", path, set)
	}
	var (
		raw   any
		field string
	)
	switch {
	case k.Secret != "":
		field = path + ".secret"
		b, err := ParseSecret(k.Secret)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", field, err)
		}
		raw = b
	case k.PublicKeyPEM != "":
		field = path + ".public_key_pem"
		pk, err := ParsePublicKeyPEM([]byte(k.PublicKeyPEM))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", field, err)
		}
		raw = pk
	default:
		field = path + ".public_key_file"
		data, err := readfile.Bounded(k.PublicKeyFile, maxKeyFileBytes)
		if err != nil {
			return nil, fmt.Errorf("%s: key file: %w", field, err)
		}
		pk, err := ParsePublicKeyPEM(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", field, k.PublicKeyFile, err)
		}
		raw = pk
	}
	vk, err := newVKey(k.ID, raw, k.Algorithms)
	if err != nil {
		return nil, fmt.Errorf("%s.algorithms: %w", path, err)
	}
	return vk, nil
}

// ParsePublicKeyPEM reads the first PEM block of data as a verification key:
// "PUBLIC KEY" (PKIX: RSA, ECDSA P-256/384/521 or Ed25519), "RSA PUBLIC KEY"
// (PKCS#1) or "CERTIFICATE" (its public key). Private keys are refused so
// that they are not left lying in gateway configuration. RSA keys must have
// at least MinRSABits bits.
func ParsePublicKeyPEM(data []byte) (any, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	var (
		pub any
		err error
	)
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var c *x509.Certificate
		if c, err = x509.ParseCertificate(block.Bytes); err == nil {
			pub = c.PublicKey
		}
	default:
		if strings.Contains(block.Type, "PRIVATE") {
			return nil, fmt.Errorf("PEM block %q is a private key; configure the public key only", block.Type)
		}
		return nil, fmt.Errorf("unsupported PEM block type %q", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", block.Type, err)
	}
	return checkPublicKey(pub)
}

// checkPublicKey accepts only key types and sizes the verifier supports.
func checkPublicKey(pub any) (any, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < MinRSABits {
			return nil, fmt.Errorf("RSA key has %d bits, need at least %d", k.N.BitLen(), MinRSABits)
		}
		return k, nil
	case *ecdsa.PublicKey:
		if ecAlgForCurve(k.Curve) == "" {
			return nil, errors.New("unsupported ECDSA curve (want P-256, P-384 or P-521)")
		}
		return k, nil
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("Ed25519 key has %d bytes, want %d", len(k), ed25519.PublicKeySize)
		}
		return k, nil
	}
	return nil, fmt.Errorf("unsupported public key type %T", pub)
}
