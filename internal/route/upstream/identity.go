package upstream

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/wsgate/wsgate/internal/defaults"
)

// Identity header names. Every header whose name starts with HeaderPrefix is
// removed from what the client sent before anything is forwarded, so an upstream
// can trust them as wsgate's.
const (
	HeaderPrefix    = "X-Wsgate-"
	HeaderUser      = "X-Wsgate-User"      // the subject, percent-encoded (see EncodeUser)
	HeaderClaims    = "X-Wsgate-Claims"    // base64url (no padding) of the claims as JSON; absent if none or too large
	HeaderConnID    = "X-Wsgate-Conn-Id"   // wsgate's connection id
	HeaderClientIP  = "X-Wsgate-Client-Ip" // the client address as wsgate's guard determined it
	HeaderTimestamp = "X-Wsgate-Timestamp" // unix seconds when wsgate dialled
	HeaderSignature = "X-Wsgate-Signature" // "v2=" + lowercase hex HMAC-SHA256 over CanonicalIdentity
	// HeaderForwardedHost is the route's configured host; signed from v2 on.
	HeaderForwardedHost = "X-Forwarded-Host"
)

// signatureVersion prefixes the signature and starts the canonical string, so a
// later algorithm can be introduced without ambiguity. v2 adds the
// X-Forwarded-Host value; VerifyIdentity still accepts v1 (without a host) from
// wsgate nodes of an older release during a rolling upgrade.
const (
	signatureVersion = "v2"
	legacyVersion    = "v1"
)

// DefaultMaxClaimsBytes bounds the encoded X-Wsgate-Claims header.
const DefaultMaxClaimsBytes = 4096

// DefaultMaxSkew is the skew VerifyIdentity accepts when given 0.
const DefaultMaxSkew = 60 * time.Second

// Errors returned by VerifyIdentity. All mean "do not trust these headers".
var (
	ErrNoIdentity   = errors.New("upstream: identity headers missing")
	ErrBadIdentity  = errors.New("upstream: identity headers malformed")
	ErrBadSignature = errors.New("upstream: identity signature mismatch")
	ErrStale        = errors.New("upstream: identity timestamp outside the allowed skew")
)

// Identity is what wsgate asserts about a client connection to the upstream.
type Identity struct {
	User     string
	Claims   map[string]any // nil when the claims header was absent
	ConnID   string
	ClientIP string
	// Host is the route's configured host (X-Forwarded-Host); "" when the route
	// has none, or when a v1 signature (which does not cover it) was verified.
	Host string
	Time time.Time // when wsgate signed, to the second
}

// SignIdentity sets the identity headers on h: user, claims (dropped when their
// encoding exceeds maxClaims bytes, 0 meaning DefaultMaxClaimsBytes), connection
// id, client IP, timestamp, X-Forwarded-Host (id.Host; removed when empty) and,
// when key is not empty, the signature. Any X-Wsgate-* header already in h is
// removed first. It reports whether the claims had to be dropped.
func SignIdentity(h http.Header, key []byte, id Identity, maxClaims int) (claimsDropped bool, err error) {
	for k := range h {
		if hasPrefixFold(k, HeaderPrefix) {
			delete(h, k)
		}
	}
	defaults.Positive(&maxClaims, DefaultMaxClaimsBytes)
	claims := ""
	if len(id.Claims) > 0 {
		b, err := json.Marshal(id.Claims)
		if err != nil {
			return false, fmt.Errorf("upstream: encode claims: %w", err)
		}
		if base64.RawURLEncoding.EncodedLen(len(b)) <= maxClaims {
			claims = base64.RawURLEncoding.EncodeToString(b)
		} else {
			claimsDropped = true
		}
	}
	ts := id.Time
	if ts.IsZero() {
		ts = time.Now()
	}
	v := identityValues{
		ts:     strconv.FormatInt(ts.Unix(), 10),
		connID: headerSafe(id.ConnID),
		user:   EncodeUser(id.User),
		ip:     headerSafe(id.ClientIP),
		claims: claims,
		host:   headerSafe(id.Host),
	}
	h.Set(HeaderTimestamp, v.ts)
	h.Set(HeaderConnID, v.connID)
	h.Set(HeaderUser, v.user)
	h.Set(HeaderClientIP, v.ip)
	if claims != "" {
		h.Set(HeaderClaims, claims)
	}
	h.Del(HeaderForwardedHost)
	if v.host != "" {
		h.Set(HeaderForwardedHost, v.host)
	}
	if len(key) > 0 {
		h.Set(HeaderSignature, signatureVersion+"="+hex.EncodeToString(sign(key, v)))
	}
	return claimsDropped, nil
}

// identityValues are the header values exactly as sent.
type identityValues struct{ ts, connID, user, ip, claims, host string }

// CanonicalIdentity is the string the signature covers: the version and the six
// header values as sent (empty for an absent header), each followed by "\n":
//
//	"wsgate-identity-v2\n" + timestamp + "\n" + conn-id + "\n" + user + "\n" + client-ip + "\n"
//	  + claims + "\n" + forwarded-host + "\n"
//
// None of the values can contain "\n" (they are header values), so the
// concatenation is unambiguous.
func CanonicalIdentity(ts, connID, user, clientIP, claims, host string) string {
	return "wsgate-identity-" + signatureVersion + "\n" + ts + "\n" + connID + "\n" + user + "\n" + clientIP + "\n" + claims + "\n" + host + "\n"
}

// canonicalV1 is the v1 string: v2 without the host.
func canonicalV1(v identityValues) string {
	return "wsgate-identity-" + legacyVersion + "\n" + v.ts + "\n" + v.connID + "\n" + v.user + "\n" + v.ip + "\n" + v.claims + "\n"
}

func sign(key []byte, v identityValues) []byte {
	return mac(key, CanonicalIdentity(v.ts, v.connID, v.user, v.ip, v.claims, v.host))
}

func mac(key []byte, s string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s))
	return m.Sum(nil)
}

// VerifyIdentity checks the identity headers wsgate set on an upgrade request:
// the signature with key (constant-time), then the timestamp within maxSkew of
// now (0 means DefaultMaxSkew). It is for upstream authors: call it in the
// upgrade handler and refuse the upgrade on any error. The headers are
// replayable within maxSkew by whoever can capture them and reach the upstream
// directly; an upstream that must exclude that remembers the connection ids it
// saw for 2×maxSkew, or requires mTLS from wsgate.
func VerifyIdentity(h http.Header, key []byte, maxSkew time.Duration) (Identity, error) {
	if len(key) == 0 {
		return Identity{}, fmt.Errorf("%w: no key", ErrBadSignature)
	}
	defaults.Positive(&maxSkew, DefaultMaxSkew)
	sig := h.Values(HeaderSignature)
	ts := h.Values(HeaderTimestamp)
	if len(sig) == 0 || len(ts) == 0 {
		return Identity{}, ErrNoIdentity
	}
	v, err := singleValues(h)
	if err != nil {
		return Identity{}, err
	}
	want := sign(key, v)
	s, ok := strings.CutPrefix(sig[0], signatureVersion+"=")
	if !ok {
		// An older wsgate: its signature does not cover the host, so none is
		// reported.
		if s, ok = strings.CutPrefix(sig[0], legacyVersion+"="); ok {
			v.host = ""
			want = mac(key, canonicalV1(v))
		}
	}
	if !ok || len(sig) != 1 || len(s) != 2*sha256.Size {
		return Identity{}, fmt.Errorf("%w: signature format", ErrBadIdentity)
	}
	got, err := hex.DecodeString(s)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: signature is not hex", ErrBadIdentity)
	}
	if !hmac.Equal(got, want) {
		return Identity{}, ErrBadSignature
	}
	// Checked after the signature: a forged timestamp must not tell an attacker
	// anything about the key, and a signed one is trustworthy input.
	sec, err := strconv.ParseInt(v.ts, 10, 64)
	if err != nil || sec < 0 {
		return Identity{}, fmt.Errorf("%w: timestamp", ErrBadIdentity)
	}
	at := time.Unix(sec, 0)
	if d := time.Since(at); d > maxSkew || d < -maxSkew {
		return Identity{}, ErrStale
	}
	user, err := DecodeUser(v.user)
	if err != nil {
		return Identity{}, err
	}
	id := Identity{User: user, ConnID: v.connID, ClientIP: v.ip, Host: v.host, Time: at}
	if v.claims != "" {
		b, err := base64.RawURLEncoding.DecodeString(v.claims)
		if err != nil {
			return Identity{}, fmt.Errorf("%w: claims encoding", ErrBadIdentity)
		}
		d := json.NewDecoder(strings.NewReader(string(b)))
		d.UseNumber()
		if err := d.Decode(&id.Claims); err != nil {
			return Identity{}, fmt.Errorf("%w: claims JSON", ErrBadIdentity)
		}
	}
	return id, nil
}

// singleValues reads the signed headers; each may appear at most once (a
// repeated header is how a value gets smuggled past a verifier that reads the
// first and a handler that reads the last).
func singleValues(h http.Header) (identityValues, error) {
	var v identityValues
	for _, f := range []struct {
		name string
		dst  *string
	}{{HeaderTimestamp, &v.ts}, {HeaderConnID, &v.connID}, {HeaderUser, &v.user}, {HeaderClientIP, &v.ip}, {HeaderClaims, &v.claims}, {HeaderForwardedHost, &v.host}} {
		vs := h.Values(f.name)
		if len(vs) > 1 {
			return v, fmt.Errorf("%w: %s repeated", ErrBadIdentity, f.name)
		}
		if len(vs) == 1 {
			*f.dst = vs[0]
		}
	}
	return v, nil
}

// EncodeUser makes a subject safe as a header value: every byte outside visible
// ASCII (0x21-0x7E) and "%" itself becomes %XX (uppercase hex). A plain ASCII
// id is sent unchanged.
func EncodeUser(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if userEscape(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	const hexd = "0123456789ABCDEF"
	b := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if userEscape(c) {
			b = append(b, '%', hexd[c>>4], hexd[c&15])
		} else {
			b = append(b, c)
		}
	}
	return string(b)
}

// DecodeUser reverses EncodeUser.
func DecodeUser(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b = append(b, s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("%w: user escape", ErrBadIdentity)
		}
		x, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", fmt.Errorf("%w: user escape", ErrBadIdentity)
		}
		b = append(b, byte(x))
		i += 2
	}
	return string(b), nil
}

func userEscape(c byte) bool { return c < 0x21 || c > 0x7e || c == '%' }

// headerSafe percent-encodes like EncodeUser; conn ids and IPs never need it, but
// a header value must never carry a control byte whatever the caller passes.
func headerSafe(s string) string { return EncodeUser(s) }

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
