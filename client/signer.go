package client

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/wsgate/wsgate/internal/conn/integrity"
)

// Options tune a Signer. The zero value is right for real use.
type Options struct {
	// Now is the clock for ts; default time.Now.
	Now func() time.Time
	// Rand supplies nonces; default crypto/rand.Reader.
	Rand io.Reader
}

// Signer seals messages for one connection at a time. It is safe for
// concurrent use; seq follows the order in which Seal calls return, so send
// frames in that order.
type Signer struct {
	alg     string
	kid     string
	subject string
	hmacKey []byte
	ed      ed25519.PrivateKey
	ec      *ecdsa.PrivateKey
	pub     integrity.PublicKey
	now     func() time.Time
	rand    io.Reader

	mu     sync.Mutex
	connID string
	seq    uint64
}

func newSigner(opts *Options) *Signer {
	s := &Signer{now: time.Now, rand: rand.Reader}
	if opts != nil {
		if opts.Now != nil {
			s.now = opts.Now
		}
		if opts.Rand != nil {
			s.rand = opts.Rand
		}
	}
	return s
}

// NewHMACSigner signs with a derived per-user key as handed out by the
// server's ticket/token endpoint (kid and 32-byte key). subject must be the
// identity the server authenticated.
func NewHMACSigner(kid string, key []byte, subject string, opts *Options) (*Signer, error) {
	if kid == "" || len(key) != 32 || subject == "" {
		return nil, errors.New("client: hmac signer needs a kid, a 32-byte key and a subject")
	}
	s := newSigner(opts)
	s.alg, s.kid, s.subject = integrity.AlgHS256, kid, subject
	s.hmacKey = append([]byte(nil), key...)
	return s, nil
}

// ParseHMACKey reads the endpoint's {"alg":"HS256","kid":"…","key":"…"} object.
func ParseHMACKey(b []byte) (kid string, key []byte, err error) {
	var k struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Key string `json:"key"`
	}
	if err := json.Unmarshal(b, &k); err != nil {
		return "", nil, fmt.Errorf("client: parse hmac key: %w", err)
	}
	if k.Alg != integrity.AlgHS256 {
		return "", nil, fmt.Errorf("client: parse hmac key: unsupported alg %q", k.Alg)
	}
	key, err = integrity.UnB64(k.Key)
	if err != nil || len(key) != 32 {
		return "", nil, errors.New("client: parse hmac key: key must be 32 bytes of base64url")
	}
	return k.Kid, key, nil
}

// NewPopSigner signs with a private key the client holds: ed25519.PrivateKey
// or a P-256 *ecdsa.PrivateKey. Its Thumbprint must be the token's cnf.jkt.
func NewPopSigner(priv crypto.Signer, subject string, opts *Options) (*Signer, error) {
	if subject == "" {
		return nil, errors.New("client: pop signer needs a subject")
	}
	s := newSigner(opts)
	s.subject = subject
	var err error
	switch k := priv.(type) {
	case ed25519.PrivateKey:
		if len(k) != ed25519.PrivateKeySize {
			return nil, errors.New("client: bad Ed25519 private key")
		}
		s.alg, s.ed = integrity.AlgEdDSA, k
		s.pub, err = integrity.PublicKeyFromEd25519(k.Public().(ed25519.PublicKey))
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, errors.New("client: only P-256 ECDSA keys are supported")
		}
		s.alg, s.ec = integrity.AlgES256, k
		s.pub, err = integrity.PublicKeyFromECDSA(&k.PublicKey)
	default:
		return nil, fmt.Errorf("client: unsupported private key type %T", priv)
	}
	if err != nil {
		return nil, fmt.Errorf("client: pop signer: %w", err)
	}
	s.kid = s.pub.Thumbprint()
	return s, nil
}

// Thumbprint is the RFC 7638 thumbprint of the pop public key (cnf.jkt), or
// "" for an hmac signer.
func (s *Signer) Thumbprint() string {
	if s.alg == integrity.AlgHS256 {
		return ""
	}
	return s.pub.Thumbprint()
}

// PublicJWK is the pop public key as JWK JSON (nil for hmac).
func (s *Signer) PublicJWK() []byte {
	if s.alg == integrity.AlgHS256 {
		return nil
	}
	return s.pub.JWK()
}

// Bind starts a new connection: connID is the id from the server's welcome
// message. seq restarts at 1.
func (s *Signer) Bind(connID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.connID, s.seq = connID, 0
}

func (s *Signer) sign(in []byte) ([]byte, error) {
	switch s.alg {
	case integrity.AlgHS256:
		m := hmac.New(sha256.New, s.hmacKey)
		m.Write(in)
		return m.Sum(nil), nil
	case integrity.AlgEdDSA:
		return ed25519.Sign(s.ed, in), nil
	case integrity.AlgES256:
		h := sha256.Sum256(in)
		r, ss, err := ecdsa.Sign(s.rand, s.ec, h[:])
		if err != nil {
			return nil, fmt.Errorf("client: ecdsa sign: %w", err)
		}
		sig := make([]byte, 64)
		r.FillBytes(sig[:32])
		ss.FillBytes(sig[32:])
		return sig, nil
	}
	return nil, errors.New("client: signer has no key")
}

// Seal wraps msg, a JSON object with a string "type" member, in a signed
// envelope with the next seq, a fresh nonce and the current time. The server
// acts on msg byte for byte.
func (s *Signer) Seal(msg []byte) ([]byte, error) {
	var t struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(msg, &t); err != nil {
		return nil, fmt.Errorf("client: seal: message is not a JSON object: %w", err)
	}
	if err := integrity.CheckBody(msg, t.Type); err != nil {
		return nil, fmt.Errorf("client: seal: %w", err)
	}
	nonce := make([]byte, integrity.NonceLen)
	if _, err := io.ReadFull(s.rand, nonce); err != nil {
		return nil, fmt.Errorf("client: seal: nonce: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.connID == "" {
		return nil, errors.New("client: seal before Bind(connID)")
	}
	if s.seq >= integrity.MaxSafeInteger {
		return nil, errors.New("client: seq exhausted; reconnect")
	}
	h := integrity.Header{Alg: s.alg, Kid: s.kid, Type: t.Type, Seq: s.seq + 1, TS: s.now().UnixMilli(), Nonce: nonce}
	mac, err := s.sign(integrity.SigningInput(h, s.subject, s.connID, msg))
	if err != nil {
		return nil, err
	}
	s.seq++
	e := integrity.Envelope{Header: h, Body: msg, MAC: mac}
	return e.Marshal(), nil
}

// HandshakeParams returns the pop query parameters (pop_key, pop_ts,
// pop_nonce, pop_proof) for a WebSocket URL with this host (authority as in
// the Host header) and escaped path. Add them to the URL's query.
func (s *Signer) HandshakeParams(host, path string) (url.Values, error) {
	if s.alg == integrity.AlgHS256 {
		return nil, errors.New("client: handshake proof needs a pop signer")
	}
	nonce := make([]byte, integrity.NonceLen)
	if _, err := io.ReadFull(s.rand, nonce); err != nil {
		return nil, fmt.Errorf("client: handshake nonce: %w", err)
	}
	ts := s.now().UnixMilli()
	proof, err := s.sign(integrity.HandshakeInput(s.alg, s.kid, host, path, ts, nonce))
	if err != nil {
		return nil, err
	}
	return url.Values{
		integrity.ParamPopKey:   {integrity.B64(s.pub.JWK())},
		integrity.ParamPopTS:    {strconv.FormatInt(ts, 10)},
		integrity.ParamPopNonce: {integrity.B64(nonce)},
		integrity.ParamPopProof: {integrity.B64(proof)},
	}, nil
}

// VerifyServer checks a server-signed message against the server's JWKS
// (from /.well-known/wsgate-keys.json) and returns the signed body. It does
// not judge freshness; use VerifyServerAt for that.
func VerifyServer(jwks, msg []byte) ([]byte, error) {
	keys, err := integrity.ParseJWKS(jwks)
	if err != nil {
		return nil, err
	}
	body, _, err := integrity.VerifyServerMessage(keys, msg)
	return body, err
}

// VerifyServerAt is VerifyServer that also requires the signature's ts to be
// within window of now.
func VerifyServerAt(jwks, msg []byte, now time.Time, window time.Duration) ([]byte, error) {
	keys, err := integrity.ParseJWKS(jwks)
	if err != nil {
		return nil, err
	}
	body, ts, err := integrity.VerifyServerMessage(keys, msg)
	if err != nil {
		return nil, err
	}
	if d := now.UnixMilli() - ts; d > window.Milliseconds() || -d > window.Milliseconds() {
		return nil, &integrity.Error{Code: integrity.CodeStale, Detail: "server signature ts outside window"}
	}
	return body, nil
}

// Error is a rejection with a stable Code (see docs/integrity.md).
type Error = integrity.Error

// Code is a rejection code such as "bad_signature" or "stale".
type Code = integrity.Code

// CodeOf returns the rejection code of err, or "".
func CodeOf(err error) Code { return integrity.CodeOf(err) }
