package integrity

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/internal/defaults"
)

// Mode is the integrity mode of a namespace or route.
type Mode string

// Modes.
const (
	ModeOff  Mode = "off"
	ModeHMAC Mode = "hmac"
	ModePop  Mode = "pop"
)

// ParseMode accepts "", "off", "hmac" and "pop" ("" means off).
func ParseMode(s string) (Mode, error) {
	switch Mode(s) {
	case "", ModeOff:
		return ModeOff, nil
	case ModeHMAC, ModePop:
		return Mode(s), nil
	}
	return "", fmt.Errorf("integrity: unknown mode %q (want off, hmac or pop)", s)
}

// DefaultWindow is the default allowed clock difference for ts.
const DefaultWindow = 30 * time.Second

// Options configure a Verifier.
type Options struct {
	// Keys verifies hmac-mode messages. Required for hmac connections.
	Keys *KeyRing
	// Replay remembers nonces across connections. Required. Share one
	// instance between all Verifiers of a process (or use a cluster-wide one).
	Replay ReplayCache
	// Window is the accepted |server time - ts|. Default 30s (DefaultWindow);
	// nonces are remembered for 2*Window, the longest a ts stays acceptable.
	Window time.Duration
	// Now is the clock; default time.Now. For tests.
	Now func() time.Time
}

// Verifier opens signed client messages and checks pop handshakes. It is
// safe for concurrent use; per-connection state lives in ConnIntegrity.
type Verifier struct {
	keys   atomic.Pointer[KeyRing]
	replay ReplayCache
	window time.Duration
	now    func() time.Time
}

// NewVerifier validates opts and applies defaults.
func NewVerifier(opts Options) (*Verifier, error) {
	if opts.Replay == nil {
		return nil, errors.New("integrity: Options.Replay is required")
	}
	if opts.Window < 0 {
		return nil, errors.New("integrity: Options.Window must not be negative")
	}
	opts.Window = cmp.Or(opts.Window, DefaultWindow)
	defaults.Now(&opts.Now)
	v := &Verifier{replay: opts.Replay, window: opts.Window, now: opts.Now}
	v.keys.Store(opts.Keys)
	return v, nil
}

// SetKeyRing swaps the hmac master keys (config reload). Open connections
// pick up the new ring on their next message.
func (v *Verifier) SetKeyRing(r *KeyRing) { v.keys.Store(r) }

// Window is the effective ts window.
func (v *Verifier) Window() time.Duration { return v.window }

// ConnIntegrity is the integrity state of one connection. Open serialises
// on it, so one value must belong to exactly one connection.
type ConnIntegrity struct {
	mode    Mode
	subject string
	connID  string
	pop     PublicKey

	mu      sync.Mutex
	lastSeq uint64
	ring    *KeyRing          // ring the cached keys were derived from
	derived map[string][]byte // kid -> derived key; at most len(ring) entries
}

// Mode of the connection.
func (c *ConnIntegrity) Mode() Mode { return c.mode }

// LastSeq is the last accepted seq (0 before the first message).
func (c *ConnIntegrity) LastSeq() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastSeq
}

// NewHMACConn starts hmac-mode state for a connection of subject whose
// server-assigned id (sent in the welcome message) is connID.
func (v *Verifier) NewHMACConn(subject, connID string) (*ConnIntegrity, error) {
	if subject == "" || connID == "" {
		return nil, errors.New("integrity: hmac connection needs a subject and a connection id")
	}
	if v.keys.Load() == nil {
		return nil, errors.New("integrity: hmac mode without a KeyRing")
	}
	return &ConnIntegrity{mode: ModeHMAC, subject: subject, connID: connID}, nil
}

// NewPopConn starts pop-mode state for a connection whose key was checked by
// VerifyPopHandshake.
func (v *Verifier) NewPopConn(subject, connID string, key PublicKey) (*ConnIntegrity, error) {
	if subject == "" || connID == "" {
		return nil, errors.New("integrity: pop connection needs a subject and a connection id")
	}
	if key.alg == "" {
		return nil, errors.New("integrity: pop connection without a key")
	}
	return &ConnIntegrity{mode: ModePop, subject: subject, connID: connID, pop: key}, nil
}

// nonceKey scopes a nonce by purpose and subject and hashes it to a fixed size
// so cache memory per entry is bounded whatever the subject length.
func nonceKey(purpose, scope string, nonce []byte) string {
	h := sha256.New()
	var lp []byte
	lp = appendLPs(lp, purpose)
	lp = appendLPs(lp, scope)
	lp = appendLP(lp, nonce)
	h.Write(lp)
	return "wsgate:n:" + B64(h.Sum(nil))
}

func (v *Verifier) checkTS(ts int64) error {
	now := v.now().UnixMilli()
	d := now - ts
	if d < 0 {
		d = -d
	}
	if d > v.window.Milliseconds() {
		if ts > now {
			return reject(CodeStale, "ts is in the future")
		}
		return reject(CodeStale, "ts is too old")
	}
	return nil
}

func (v *Verifier) checkNonce(ctx context.Context, purpose, scope string, nonce []byte) error {
	dup, err := v.replay.Seen(ctx, nonceKey(purpose, scope, nonce), 2*v.window)
	if err != nil {
		return rejectErr(CodeInternal, "replay cache", err)
	}
	if dup {
		return reject(CodeReplay, "nonce already used")
	}
	return nil
}

// Open verifies one raw message of the connection and returns the inner
// message bytes the server must act on, and its type. Checks, in order:
// envelope format, algorithm and key, signature, ts window, nonce (shared
// replay cache, only after the signature verified so forged messages cannot
// fill it), seq. The seq only advances when every check passed.
func (v *Verifier) Open(ctx context.Context, st *ConnIntegrity, raw []byte) (body []byte, typ string, err error) {
	if st == nil {
		return nil, "", errors.New("integrity: Open without connection state")
	}
	env, err := ParseEnvelope(raw)
	if err != nil {
		return nil, "", err
	}
	st.mu.Lock()
	defer st.mu.Unlock()

	in := SigningInput(env.Header, st.subject, st.connID, env.Body)
	switch st.mode {
	case ModeHMAC:
		if env.Alg != AlgHS256 {
			return nil, "", reject(CodeBadSignature, "alg does not match the connection's mode")
		}
		key, ok := st.hmacKey(v.keys.Load(), env.Kid)
		if !ok {
			return nil, "", reject(CodeBadSignature, "unknown kid")
		}
		m := hmac.New(sha256.New, key)
		m.Write(in)
		if !hmac.Equal(m.Sum(nil), env.MAC) {
			return nil, "", reject(CodeBadSignature, "mac does not verify")
		}
	case ModePop:
		if env.Alg != st.pop.alg {
			return nil, "", reject(CodeBadSignature, "alg does not match the connection's key")
		}
		if env.Kid != st.pop.jkt {
			return nil, "", reject(CodeBadSignature, "kid is not the key's thumbprint")
		}
		if !st.pop.Verify(in, env.MAC) {
			return nil, "", reject(CodeBadSignature, "signature does not verify")
		}
	default:
		return nil, "", errors.New("integrity: connection state has no mode")
	}
	if err := v.checkTS(env.TS); err != nil {
		return nil, "", err
	}
	if err := v.checkNonce(ctx, "msg", st.subject, env.Nonce); err != nil {
		return nil, "", err
	}
	if env.Seq <= st.lastSeq {
		return nil, "", reject(CodeBadSeq, "seq not greater than the last accepted")
	}
	st.lastSeq = env.Seq
	return env.Body, env.Type, nil
}

func (c *ConnIntegrity) hmacKey(r *KeyRing, kid string) ([]byte, bool) {
	if r == nil {
		return nil, false
	}
	if c.ring != r {
		c.ring, c.derived = r, nil
	}
	if k, ok := c.derived[kid]; ok {
		return k, true
	}
	k, ok := r.userKey(kid, c.subject)
	if !ok {
		return nil, false
	}
	if c.derived == nil {
		c.derived = make(map[string][]byte, 2)
	}
	c.derived[kid] = k
	return k, true
}

// Handshake parameter names. Browsers cannot set headers on a WebSocket, so
// each value is accepted as a query parameter or as a header; when both are
// present they must agree.
const (
	ParamPopKey   = "pop_key"   // base64url(JWK JSON); header Wsgate-Pop-Key
	ParamPopTS    = "pop_ts"    // unix ms, decimal; header Wsgate-Pop-Ts
	ParamPopNonce = "pop_nonce" // base64url 16-32 bytes; header Wsgate-Pop-Nonce
	ParamPopProof = "pop_proof" // base64url signature over HandshakeInput; header Wsgate-Pop-Proof
)

// PopParams are the proof-of-possession values of a handshake.
type PopParams struct {
	Key   string // base64url JWK
	TS    int64
	Nonce []byte
	Proof []byte
}

// PopParamsFromRequest reads the pop handshake values from r's query or headers.
func PopParamsFromRequest(r *http.Request) (PopParams, error) {
	q := r.URL.Query()
	get := func(param, header string) (string, error) {
		qs, hs := q[param], r.Header.Values(header)
		if len(qs) > 1 || len(hs) > 1 {
			return "", reject(CodeBadEnvelope, param+" given more than once")
		}
		switch {
		case len(qs) == 1 && len(hs) == 1 && qs[0] != hs[0]:
			return "", reject(CodeBadEnvelope, param+" differs between query and header")
		case len(qs) == 1:
			return qs[0], nil
		case len(hs) == 1:
			return hs[0], nil
		}
		return "", reject(CodeBadEnvelope, "missing "+param)
	}
	var p PopParams
	var err error
	if p.Key, err = get(ParamPopKey, "Wsgate-Pop-Key"); err != nil {
		return p, err
	}
	ts, err := get(ParamPopTS, "Wsgate-Pop-Ts")
	if err != nil {
		return p, err
	}
	if p.TS, err = strconv.ParseInt(ts, 10, 64); err != nil || p.TS <= 0 || p.TS > MaxSafeInteger {
		return p, reject(CodeBadEnvelope, "pop_ts is not a positive integer")
	}
	nonce, err := get(ParamPopNonce, "Wsgate-Pop-Nonce")
	if err != nil {
		return p, err
	}
	if p.Nonce, err = b64.DecodeString(nonce); err != nil || len(p.Nonce) < minNonceLen || len(p.Nonce) > maxNonceLen {
		return p, reject(CodeBadEnvelope, "pop_nonce must be 16-32 bytes of base64url")
	}
	proof, err := get(ParamPopProof, "Wsgate-Pop-Proof")
	if err != nil {
		return p, err
	}
	if p.Proof, err = b64.DecodeString(proof); err != nil || len(p.Proof) != 64 {
		return p, reject(CodeBadEnvelope, "pop_proof must be a 64-byte base64url signature")
	}
	return p, nil
}

// VerifyPopHandshake checks a pop handshake before the upgrade: the key's
// thumbprint equals jkt (the token's cnf.jkt), the proof is a signature by
// that key over HandshakeInput(alg, jkt, host, path, ts, nonce), ts is within
// the window and the nonce was not used before. host is r.Host, path is
// r.URL.EscapedPath(). It returns the key for NewPopConn.
func (v *Verifier) VerifyPopHandshake(ctx context.Context, p PopParams, jkt, host, path string) (PublicKey, error) {
	k, err := CheckHandshakeKey(p.Key, jkt)
	if err != nil {
		return PublicKey{}, err
	}
	if len(p.Nonce) < minNonceLen || len(p.Nonce) > maxNonceLen {
		return PublicKey{}, reject(CodeBadEnvelope, "pop_nonce must be 16-32 bytes")
	}
	if !k.Verify(HandshakeInput(k.alg, k.jkt, host, path, p.TS, p.Nonce), p.Proof) {
		return PublicKey{}, reject(CodeBadSignature, "pop_proof does not verify")
	}
	if err := v.checkTS(p.TS); err != nil {
		return PublicKey{}, err
	}
	if err := v.checkNonce(ctx, "pop-handshake", k.jkt, p.Nonce); err != nil {
		return PublicKey{}, err
	}
	return k, nil
}
