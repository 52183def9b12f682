package check

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/internal/edge/auth"
)

// maxTokenBytes bounds a token the tool parses (it comes from a flag, but a
// flag can come from a file).
const maxTokenBytes = 64 << 10

// creds holds the valid credential and what the tool can forge from it.
type creds struct {
	valid  string // "" when none
	source string // how valid was obtained, for the report
	signer *auth.Signer
	sub    string
	claims map[string]any // extra claims of minted tokens
	pubPEM []byte         // public key of an asymmetric --key (key confusion)
}

func newCreds(o *Options) (*creds, error) {
	c := &creds{sub: o.Subject, claims: o.Claims}
	switch {
	case o.Secret != "":
		raw, err := auth.ParseSecret(o.Secret)
		if err != nil {
			return nil, fmt.Errorf("--secret: %w", err)
		}
		alg := o.Alg
		if alg == "" {
			alg = "HS256"
		}
		s, err := auth.NewSigner(alg, raw, o.Kid)
		if err != nil {
			return nil, fmt.Errorf("--secret: %w", err)
		}
		c.signer, c.source = s, "minted with --secret"
	case len(o.KeyPEM) > 0:
		key, alg, err := parsePrivateKey(o.KeyPEM)
		if err != nil {
			return nil, fmt.Errorf("--key: %w", err)
		}
		if o.Alg != "" {
			alg = o.Alg
		}
		s, err := auth.NewSigner(alg, key, o.Kid)
		if err != nil {
			return nil, fmt.Errorf("--key: %w", err)
		}
		c.signer, c.source = s, "minted with --key"
		if pub, ok := key.(crypto.Signer); ok {
			if der, err := x509.MarshalPKIXPublicKey(pub.Public()); err == nil {
				c.pubPEM = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
			}
		}
	}
	if o.Token != "" {
		if len(o.Token) > maxTokenBytes {
			return nil, fmt.Errorf("--token: %d bytes exceeds %d", len(o.Token), maxTokenBytes)
		}
		c.valid, c.source = o.Token, "--token"
		return c, nil
	}
	if c.signer != nil {
		tok, err := c.mint(c.sub, nil)
		if err != nil {
			return nil, err
		}
		c.valid = tok
	}
	return c, nil
}

// canMint reports whether tokens can be signed with a real key.
func (c *creds) canMint() bool { return c.signer != nil }

// mint signs a 15-minute token for sub with the configured claims and extra
// overrides.
func (c *creds) mint(sub string, extra map[string]any) (string, error) {
	if c.signer == nil {
		return "", errors.New("no signing key: give --secret or --key")
	}
	cl := maps.Clone(c.claims)
	if cl == nil {
		cl = map[string]any{}
	}
	maps.Copy(cl, extra)
	tok, err := c.signer.Mint(sub, 15*time.Minute, cl)
	if err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	return tok, nil
}

// expired mints a token that expired an hour ago.
func (c *creds) expired() (string, error) {
	now := time.Now()
	return c.mint(c.sub, map[string]any{
		"iat": now.Add(-2 * time.Hour).Unix(),
		"nbf": now.Add(-2 * time.Hour).Unix(),
		"exp": now.Add(-time.Hour).Unix(),
	})
}

// forgeBase is the token bad tokens are derived from: the valid one, or an
// unsigned-looking synthetic one when the tool has no credential (a server
// that checks nothing accepts it anyway).
func (c *creds) forgeBase() string {
	if c.valid != "" {
		return c.valid
	}
	now := time.Now()
	h := b64(`{"alg":"HS256","typ":"JWT"}`)
	p, _ := json.Marshal(map[string]any{"sub": c.sub, "iat": now.Unix(), "exp": now.Add(15 * time.Minute).Unix()})
	return h + "." + base64.RawURLEncoding.EncodeToString(p) + "." + b64("wsgate-check-not-a-signature")
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// jwtParts splits a compact JWS and decodes its header. It never trusts the
// input: any malformation is an error.
func jwtParts(tok string) (header map[string]any, parts []string, err error) {
	if len(tok) > maxTokenBytes {
		return nil, nil, errors.New("token too long")
	}
	parts = strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, nil, fmt.Errorf("not a JWT: %d parts, want 3", len(parts))
	}
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return nil, nil, fmt.Errorf("not a JWT: header: %w", err)
	}
	if err := json.Unmarshal(hb, &header); err != nil {
		return nil, nil, fmt.Errorf("not a JWT: header: %w", err)
	}
	if _, err := base64.RawURLEncoding.DecodeString(parts[1]); err != nil {
		return nil, nil, fmt.Errorf("not a JWT: payload: %w", err)
	}
	return header, parts, nil
}

// flipSignature keeps header and claims and corrupts the signature, so only
// a server that verifies signatures notices.
func flipSignature(tok string) (string, error) {
	_, parts, err := jwtParts(tok)
	if err != nil {
		return "", err
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) == 0 {
		return "", errors.New("not a JWT: signature is empty or not base64url")
	}
	sig[0] ^= 0x5a
	sig[len(sig)-1] ^= 0xa5
	return parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// withAlg replaces the header's alg, keeps the claims and drops the
// signature: the `alg: none` attack when alg is a spelling of none.
func withAlg(tok, alg string) (string, error) {
	h, parts, err := jwtParts(tok)
	if err != nil {
		return "", err
	}
	h["alg"] = alg
	hb, err := json.Marshal(h)
	if err != nil {
		return "", fmt.Errorf("encode header: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(hb) + "." + parts[1] + ".", nil
}

// keyConfusion signs the claims of tok with HS256 using the public key PEM
// as the HMAC secret: a server that lets the token pick the algorithm
// verifies it with the public key it holds.
func keyConfusion(tok string, pubPEM []byte) (string, error) {
	_, parts, err := jwtParts(tok)
	if err != nil {
		return "", err
	}
	pb, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var claims jwt.MapClaims
	if err := json.Unmarshal(pb, &claims); err != nil {
		return "", fmt.Errorf("claims: %w", err)
	}
	out, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(pubPEM)
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	return out, nil
}

// parsePrivateKey reads the first private key of a PEM file and the default
// algorithm for it.
func parsePrivateKey(data []byte) (any, string, error) {
	for {
		var blk *pem.Block
		blk, data = pem.Decode(data)
		if blk == nil {
			return nil, "", errors.New("no PEM private key found")
		}
		if !strings.Contains(blk.Type, "PRIVATE KEY") {
			continue
		}
		var key any
		var err error
		switch blk.Type {
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(blk.Bytes)
		default:
			key, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
		}
		if err != nil {
			return nil, "", fmt.Errorf("parse %s: %w", blk.Type, err)
		}
		switch k := key.(type) {
		case *rsa.PrivateKey:
			return k, "RS256", nil
		case *ecdsa.PrivateKey:
			switch k.Curve {
			case elliptic.P256():
				return k, "ES256", nil
			case elliptic.P384():
				return k, "ES384", nil
			case elliptic.P521():
				return k, "ES512", nil
			}
			return nil, "", errors.New("unsupported ECDSA curve")
		case ed25519.PrivateKey:
			return k, "EdDSA", nil
		}
		return nil, "", fmt.Errorf("unsupported private key type %T", key)
	}
}

// subjectOf returns the sub claim of a JWT, "" if it has none.
func subjectOf(tok string) string {
	_, parts, err := jwtParts(tok)
	if err != nil {
		return ""
	}
	pb, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var c struct {
		Sub string `json:"sub"`
	}
	_ = json.Unmarshal(pb, &c)
	return c.Sub
}
