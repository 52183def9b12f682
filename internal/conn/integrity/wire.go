package integrity

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"

	"github.com/wsgate/wsgate/internal/truncate"
)

// Version is the only envelope version this package speaks.
const Version = 1

// Algorithms carried in the envelope's "alg" member (JOSE names).
const (
	AlgHS256 = "HS256" // hmac mode: HMAC-SHA256, 32-byte mac
	AlgES256 = "ES256" // pop mode: ECDSA P-256 + SHA-256, 64-byte r||s (IEEE P1363, as WebCrypto emits)
	AlgEdDSA = "EdDSA" // pop mode and server output: Ed25519, 64-byte signature
)

// Domain-separation tags; every signing input starts with one of them
// (length-prefixed) so a signature made for one purpose is never valid for another.
const (
	tagMsg       = "wsgate-msg-v1"
	tagHandshake = "wsgate-pop-handshake-v1"
	tagServer    = "wsgate-srv-v1"
)

// Limits of the envelope. MaxSafeInteger keeps seq and ts exact in JavaScript.
const (
	MaxSafeInteger = 1<<53 - 1
	maxTypeLen     = 256
	maxKidLen      = 128
	minNonceLen    = 16
	maxNonceLen    = 32
	// NonceLen is what the helpers generate.
	NonceLen = 16
)

// b64 is the one base64 flavour of the protocol: URL alphabet, no padding,
// strict (non-canonical trailing bits rejected) so every value has exactly
// one textual form and nonces cannot be replayed under another spelling.
var b64 = base64.RawURLEncoding.Strict()

// B64 encodes b the way the protocol does (base64url, no padding).
func B64(b []byte) string { return b64.EncodeToString(b) }

// UnB64 decodes a protocol base64url string strictly.
func UnB64(s string) ([]byte, error) { return b64.DecodeString(s) }

// Header is the signed metadata of a client message.
type Header struct {
	Alg   string
	Kid   string
	Type  string
	Seq   uint64
	TS    int64 // unix milliseconds
	Nonce []byte
}

// Envelope is a parsed client message envelope.
type Envelope struct {
	Header
	Body []byte // exact inner message bytes, what the server acts on
	MAC  []byte
}

// ServerEnvelope is a parsed server-signed message.
type ServerEnvelope struct {
	Alg  string
	Kid  string
	TS   int64
	Body []byte
	Sig  []byte
}

// appendLP appends a 4-byte big-endian length and b.
func appendLP(dst []byte, b []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(b)))
	return append(dst, b...)
}

func appendLPs(dst []byte, s string) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(s)))
	return append(dst, s...)
}

// SigningInput is the exact byte string a client message's mac/signature covers:
//
//	LP("wsgate-msg-v1") || LP(alg) || LP(kid) || LP(type) || U64(seq) || U64(ts)
//	  || LP(nonce) || LP(subject) || LP(connID) || LP(body)
//
// LP(x) is a 4-byte big-endian length followed by x; U64 is 8 bytes big-endian;
// nonce is the decoded nonce bytes; ts is unix milliseconds.
func SigningInput(h Header, subject, connID string, body []byte) []byte {
	n := 4*8 + 16 + len(tagMsg) + len(h.Alg) + len(h.Kid) + len(h.Type) + len(h.Nonce) + len(subject) + len(connID) + len(body)
	b := make([]byte, 0, n)
	b = appendLPs(b, tagMsg)
	b = appendLPs(b, h.Alg)
	b = appendLPs(b, h.Kid)
	b = appendLPs(b, h.Type)
	b = binary.BigEndian.AppendUint64(b, h.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(h.TS))
	b = appendLP(b, h.Nonce)
	b = appendLPs(b, subject)
	b = appendLPs(b, connID)
	b = appendLP(b, body)
	return b
}

// HandshakeInput is what a pop client signs at the handshake:
//
//	LP("wsgate-pop-handshake-v1") || LP(alg) || LP(jkt) || LP(host) || LP(path) || U64(ts) || LP(nonce)
//
// host is the request authority as the Host header carries it (lower case,
// port only when not the default), path the escaped URL path without query.
func HandshakeInput(alg, jkt, host, path string, ts int64, nonce []byte) []byte {
	b := make([]byte, 0, 64+len(alg)+len(jkt)+len(host)+len(path)+len(nonce))
	b = appendLPs(b, tagHandshake)
	b = appendLPs(b, alg)
	b = appendLPs(b, jkt)
	b = appendLPs(b, strings.ToLower(host))
	b = appendLPs(b, path)
	b = binary.BigEndian.AppendUint64(b, uint64(ts))
	b = appendLP(b, nonce)
	return b
}

// ServerSigningInput is what the server signs:
//
//	LP("wsgate-srv-v1") || LP(alg) || LP(kid) || U64(ts) || LP(body)
func ServerSigningInput(alg, kid string, ts int64, body []byte) []byte {
	b := make([]byte, 0, 40+len(alg)+len(kid)+len(body))
	b = appendLPs(b, tagServer)
	b = appendLPs(b, alg)
	b = appendLPs(b, kid)
	b = binary.BigEndian.AppendUint64(b, uint64(ts))
	b = appendLP(b, body)
	return b
}

// Marshal encodes the envelope in its one wire form (member order fixed; the
// order does not matter to the verifier but keeps vectors reproducible).
func (e *Envelope) Marshal() []byte {
	typ, _ := json.Marshal(e.Type) // string marshalling cannot fail
	return appendEnvelope(typ, e.Alg, e.Kid, &e.Seq, e.TS, e.Nonce, e.Body, e.MAC)
}

// serverTypeJSON is ServerType as a JSON string.
var serverTypeJSON = []byte(`"` + ServerType + `"`)

// Marshal encodes a server-signed message:
//
//	{"type":"signed","sig":{"v":1,"alg":"EdDSA","kid":"…","ts":N,"body":"…","mac":"…"}}
func (e *ServerEnvelope) Marshal() []byte {
	return appendEnvelope(serverTypeJSON, e.Alg, e.Kid, nil, e.TS, nil, e.Body, e.Sig)
}

// appendEnvelope encodes {"type":…,"sig":{…}} with the members in their
// fixed order. seq and nonce are members of client envelopes only (seq not
// nil); typ is already JSON.
func appendEnvelope(typ []byte, alg, kid string, seq *uint64, ts int64, nonce, body, mac []byte) []byte {
	kidJSON, _ := json.Marshal(kid)
	// Room for the fixed text (84 bytes with a 20-digit ts, 38 more for seq
	// and nonce) and the values: one allocation.
	n := 84 + len(typ) + len(alg) + len(kidJSON) + b64.EncodedLen(len(body)) + b64.EncodedLen(len(mac))
	if seq != nil {
		n += 38 + b64.EncodedLen(len(nonce))
	}
	b := make([]byte, 0, n)
	b = append(b, `{"type":`...)
	b = append(b, typ...)
	b = append(b, `,"sig":{"v":1,"alg":"`...)
	b = append(b, alg...)
	b = append(b, `","kid":`...)
	b = append(b, kidJSON...)
	if seq != nil {
		b = append(b, `,"seq":`...)
		b = strconv.AppendUint(b, *seq, 10)
	}
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, ts, 10)
	if seq != nil {
		b = append(b, `,"nonce":"`...)
		b = b64.AppendEncode(b, nonce)
		b = append(b, '"')
	}
	b = append(b, `,"body":"`...)
	b = b64.AppendEncode(b, body)
	b = append(b, `","mac":"`...)
	b = b64.AppendEncode(b, mac)
	b = append(b, `"}}`...)
	return b
}

// ServerType is the outer type of server-signed messages.
const ServerType = "signed"

// walkObject reads one JSON object from dec and calls fn for each member name;
// fn must consume the value. Names are compared exactly (encoding/json's
// case-insensitive struct matching is deliberately avoided).
func walkObject(dec *json.Decoder, fn func(name string) error) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return errors.New("not a JSON object")
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		name, ok := tok.(string)
		if !ok {
			return errors.New("bad member name")
		}
		if err := fn(name); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil { // closing '}'
		return err
	}
	return nil
}

// noTrailing fails when anything but whitespace follows the top-level value.
func noTrailing(dec *json.Decoder) error {
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after JSON object")
	}
	return nil
}

func newDecoder(b []byte) *json.Decoder {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec
}

func tokString(dec *json.Decoder) (string, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", err
	}
	s, ok := tok.(string)
	if !ok {
		return "", errors.New("want a string")
	}
	return s, nil
}

// tokUint reads a plain non-negative decimal integer no larger than MaxSafeInteger.
func tokUint(dec *json.Decoder) (uint64, error) {
	tok, err := dec.Token()
	if err != nil {
		return 0, err
	}
	n, ok := tok.(json.Number)
	if !ok {
		return 0, errors.New("want a number")
	}
	s := string(n)
	if s == "" || len(s) > 16 || (len(s) > 1 && s[0] == '0') {
		return 0, errors.New("want a canonical integer")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errors.New("want an integer")
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v > MaxSafeInteger {
		return 0, errors.New("integer out of range")
	}
	return v, nil
}

// sigMember flags, to reject duplicates and find missing members.
const (
	fV = 1 << iota
	fAlg
	fKid
	fSeq
	fTS
	fNonce
	fBody
	fMAC
)

// trunc shortens a member name quoted in an error (at a rune boundary).
func trunc(s string) string {
	if len(s) > 32 {
		return truncate.UTF8(s, 32) + "…"
	}
	return s
}

func isObjectPrefix(raw []byte) bool {
	t := bytes.TrimLeft(raw, " \t\r\n")
	return len(t) > 0 && t[0] == '{'
}

type rawSig struct {
	v, seq, ts            uint64
	alg, kid, nonce, body string
	mac                   string
	have                  int
}

// ParseEnvelope parses a client envelope without verifying it. Errors are
// *Error with CodeUnsigned, CodeBadEnvelope or CodeTypeMismatch.
func ParseEnvelope(raw []byte) (*Envelope, error) {
	typ, s, err := parseOuter(raw, fV|fAlg|fKid|fSeq|fTS|fNonce|fBody|fMAC)
	if err != nil {
		return nil, err
	}
	e := &Envelope{Header: Header{Alg: s.alg, Kid: s.kid, Type: typ, Seq: s.seq, TS: int64(s.ts)}}
	macLen := 0
	switch s.alg {
	case AlgHS256:
		macLen = 32
	case AlgES256, AlgEdDSA:
		macLen = 64
	default:
		return nil, reject(CodeBadEnvelope, "unsupported alg")
	}
	if s.kid == "" {
		return nil, reject(CodeBadEnvelope, "empty kid")
	}
	if s.seq == 0 {
		return nil, reject(CodeBadEnvelope, "seq must start at 1")
	}
	if s.ts == 0 {
		return nil, reject(CodeBadEnvelope, "ts must be positive")
	}
	if e.Nonce, err = b64.DecodeString(s.nonce); err != nil || len(e.Nonce) < minNonceLen || len(e.Nonce) > maxNonceLen {
		return nil, reject(CodeBadEnvelope, "nonce must be 16-32 bytes of base64url")
	}
	if e.MAC, err = b64.DecodeString(s.mac); err != nil || len(e.MAC) != macLen {
		return nil, reject(CodeBadEnvelope, "mac has the wrong encoding or length")
	}
	if e.Body, err = b64.DecodeString(s.body); err != nil {
		return nil, reject(CodeBadEnvelope, "body is not base64url")
	}
	if err := CheckBody(e.Body, typ); err != nil {
		return nil, err
	}
	return e, nil
}

// ParseServerEnvelope parses a server-signed message without verifying it.
func ParseServerEnvelope(raw []byte) (*ServerEnvelope, error) {
	typ, s, err := parseOuter(raw, fV|fAlg|fKid|fTS|fBody|fMAC)
	if err != nil {
		return nil, err
	}
	if typ != ServerType {
		return nil, reject(CodeBadEnvelope, `server envelope type must be "signed"`)
	}
	if s.alg != AlgEdDSA {
		return nil, reject(CodeBadEnvelope, "unsupported alg")
	}
	e := &ServerEnvelope{Alg: s.alg, Kid: s.kid, TS: int64(s.ts)}
	if e.Sig, err = b64.DecodeString(s.mac); err != nil || len(e.Sig) != 64 {
		return nil, reject(CodeBadEnvelope, "signature has the wrong encoding or length")
	}
	if e.Body, err = b64.DecodeString(s.body); err != nil {
		return nil, reject(CodeBadEnvelope, "body is not base64url")
	}
	return e, nil
}
