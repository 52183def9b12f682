package session

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"
	"weak"

	"github.com/wsgate/wsgate/internal/edge/auth"
)

// identity is the session's identity as it keeps it. Decoded claims are the
// largest part of an idle connection's memory (a map per JSON object, a slice
// per array, a string per key and value: about 0.9 KiB for a token with a few
// channel patterns), and most connections read them only at a subscribe or a
// publish. So the claims are kept packed, as their JSON, whenever that decodes
// back to exactly the same map (see packable), and decoded when asked for. The
// decoded map is cached through a weak pointer: a connection that is publishing
// decodes once and reuses the map for as long as anything still holds it, and
// once the garbage collector has reclaimed it an idle connection is back to the
// JSON alone.
type identity struct {
	id     auth.Identity // Claims is nil when packed is set
	packed string        // the claims as pack wrote them (flags, JSON), "" when id.Claims holds them
	cache  atomic.Pointer[weak.Pointer[claimsBox]]
}

// claimsBox is what the weak cache points at: a decoded map.
type claimsBox struct{ m map[string]any }

func newIdentity(id auth.Identity) *identity {
	if id.Claims != nil && packable(id.Claims, 0) {
		return &identity{id: withoutClaims(id), packed: pack(id)}
	}
	return &identity{id: id}
}

func withoutClaims(id auth.Identity) auth.Identity {
	id.Claims = nil
	return id
}

// The registered claims that the identity holds anyway are left out of the
// packed JSON when they can be made again exactly from it (most tokens: they
// are a third to a half of a small token's claims). Bit i of the packed
// string's first byte says which were left out; the JSON object follows it.
const (
	elidedSub = 1 << iota // "sub": the Subject
	elidedExp             // "exp": ExpiresAt, as whole seconds
	elidedIat             // "iat": IssuedAt
	elidedNbf             // "nbf": IssuedAt too (tokens commonly have nbf = iat)
)

// pack returns the flags byte and the JSON of id's claims less those it
// can restore.
func pack(id auth.Identity) string {
	b := append(make([]byte, 0, 256), 0, '{')
	var elided byte
	first := true
	for k, v := range id.Claims {
		if bit := restorable(id, k, v); bit != 0 {
			elided |= bit
			continue
		}
		b = appendMember(b, first, k, v)
		first = false
	}
	b = append(b, '}')
	b[0] = elided
	return string(b)
}

// restorable returns the bit for claim k of value v when restore would make
// exactly v again from id, 0 otherwise.
func restorable(id auth.Identity, k string, v any) byte {
	switch k {
	case "sub":
		if s, ok := v.(string); ok && s == id.Subject {
			return elidedSub
		}
	case "exp":
		if isNumericDate(v, id.ExpiresAt) {
			return elidedExp
		}
	case "iat":
		if isNumericDate(v, id.IssuedAt) {
			return elidedIat
		}
	case "nbf":
		if isNumericDate(v, id.IssuedAt) {
			return elidedNbf
		}
	}
	return 0
}

// isNumericDate reports whether v is the JSON number of t's Unix seconds,
// exactly as numericDate writes it.
func isNumericDate(v any, t time.Time) bool {
	n, ok := v.(json.Number)
	if !ok || t.IsZero() || t.Nanosecond() != 0 {
		return false
	}
	var buf [24]byte
	return string(n) == string(strconv.AppendInt(buf[:0], t.Unix(), 10))
}

func numericDate(t time.Time) json.Number { return json.Number(strconv.FormatInt(t.Unix(), 10)) }

// unpacked decodes the packed claims and puts back those left out.
func (x *identity) unpacked() map[string]any {
	m := unpack(x.packed[1:])
	x.restore(m)
	return m
}

// restore adds to m the claims the packed flags say were left out.
func (x *identity) restore(m map[string]any) {
	elided := x.packed[0]
	if elided&elidedSub != 0 {
		m["sub"] = x.id.Subject
	}
	if elided&elidedExp != 0 {
		m["exp"] = numericDate(x.id.ExpiresAt)
	}
	if elided&elidedIat != 0 {
		m["iat"] = numericDate(x.id.IssuedAt)
	}
	if elided&elidedNbf != 0 {
		m["nbf"] = numericDate(x.id.IssuedAt)
	}
}

// decodedOnce is the cache's mark for claims decoded once and not cached.
// Most connections read their claims once (the permission check of their
// subscribe) and a weak pointer costs ≈ 24 B of heap and a runtime record
// for as long as the connection lives; a connection that reads them again
// (publishing) caches from its second read on. Its zero weak pointer's Value
// is nil.
var decodedOnce = new(weak.Pointer[claimsBox])

// claims returns the decoded claims: the map the identity was built with when
// they are not packed, or a map decoded from the packed JSON, shared with every
// other caller until it is reclaimed (from the second decode on: see
// decodedOnce). Callers must not modify it (the claims are read only
// everywhere).
func (x *identity) claims() map[string]any {
	if x.packed == "" {
		return x.id.Claims
	}
	w := x.cache.Load()
	if w != nil {
		if b := w.Value(); b != nil {
			return b.m
		}
	}
	m := x.unpacked()
	if w == nil && x.cache.CompareAndSwap(nil, decodedOnce) {
		return m
	}
	b := &claimsBox{m: m}
	wp := weak.Make(b)
	x.cache.Store(&wp)
	return b.m
}

// full returns the identity with its claims.
func (x *identity) full() auth.Identity {
	id := x.id
	if x.packed != "" {
		id.Claims = x.claims()
	}
	return id
}

// unpack decodes what appendJSON wrote from a packable map. It reads that
// output only (no spaces, the escapes appendString writes), with little
// stack: it runs on the connection's goroutine with the gws and event
// readers, whose stack encoding/json's recursion would grow (from 8 to 16
// or 32 KiB) at every subscribe. Anything else (impossible) goes to
// encoding/json.
func unpack(s string) map[string]any {
	p := unpacker{s: s}
	if v, ok := p.value(0); ok && p.i == len(s) {
		if m, ok := v.(map[string]any); ok {
			return m
		}
	}
	return unpackSlow(s)
}

// unpacker parses appendJSON's output. Strings without escapes and numbers
// are slices of s, which the identity keeps anyway.
type unpacker struct {
	s string
	i int
}

func (p *unpacker) value(depth int) (any, bool) {
	if p.i >= len(p.s) || depth > maxPackDepth+1 {
		return nil, false
	}
	switch c := p.s[p.i]; {
	case c == '{':
		p.i++
		m := map[string]any{}
		return m, p.items('}', func() bool {
			k, ok := p.str()
			if !ok || p.i >= len(p.s) || p.s[p.i] != ':' {
				return false
			}
			p.i++
			v, ok := p.value(depth + 1)
			m[k] = v
			return ok
		})
	case c == '[':
		p.i++
		l := []any{}
		ok := p.items(']', func() bool {
			v, ok := p.value(depth + 1)
			l = append(l, v)
			return ok
		})
		return l, ok
	case c == '"':
		return p.str()
	case c == 'n':
		return nil, p.word("null")
	case c == 't':
		return true, p.word("true")
	case c == 'f':
		return false, p.word("false")
	case c == '-' || isDigit(c):
		j := p.i
		for p.i < len(p.s) && (isDigit(p.s[p.i]) || strings.IndexByte("-+.eE", p.s[p.i]) >= 0) {
			p.i++
		}
		return json.Number(p.s[j:p.i]), true
	}
	return nil, false
}

// items reads the comma-separated members of an object or elements of an
// array, one per call of item, through the closing end.
func (p *unpacker) items(end byte, item func() bool) bool {
	if p.i < len(p.s) && p.s[p.i] == end {
		p.i++
		return true
	}
	for {
		if !item() || p.i >= len(p.s) {
			return false
		}
		switch p.s[p.i] {
		case ',':
			p.i++
		case end:
			p.i++
			return true
		default:
			return false
		}
	}
}

func (p *unpacker) word(w string) bool {
	if !strings.HasPrefix(p.s[p.i:], w) {
		return false
	}
	p.i += len(w)
	return true
}

// str reads a string as appendString wrote it.
func (p *unpacker) str() (string, bool) {
	if p.i >= len(p.s) || p.s[p.i] != '"' {
		return "", false
	}
	p.i++
	start := p.i
	for p.i < len(p.s) && p.s[p.i] != '"' && p.s[p.i] != '\\' {
		p.i++
	}
	if p.i < len(p.s) && p.s[p.i] == '"' {
		p.i++
		return p.s[start : p.i-1], true
	}
	b := []byte(p.s[start:p.i])
	for p.i < len(p.s) {
		switch c := p.s[p.i]; c {
		case '"':
			p.i++
			return string(b), true
		case '\\':
			if p.i+1 >= len(p.s) {
				return "", false
			}
			switch e := p.s[p.i+1]; e {
			case '"', '\\':
				b = append(b, e)
				p.i += 2
			case 'u':
				if p.i+6 > len(p.s) || p.s[p.i+2] != '0' || p.s[p.i+3] != '0' {
					return "", false
				}
				hi, lo := unhex(p.s[p.i+4]), unhex(p.s[p.i+5])
				if hi < 0 || lo < 0 {
					return "", false
				}
				b = append(b, byte(hi<<4|lo))
				p.i += 6
			default:
				return "", false
			}
		default:
			b = append(b, c)
			p.i++
		}
	}
	return "", false
}

func unhex(c byte) int {
	switch {
	case isDigit(c):
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	}
	return -1
}

// unpackSlow is unpack by encoding/json.
func unpackSlow(s string) map[string]any {
	d := json.NewDecoder(bytes.NewReader([]byte(s)))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil || m == nil {
		// Impossible for what appendJSON wrote from a packable map; an empty
		// map keeps readers on their "claim absent" path all the same.
		return map[string]any{}
	}
	return m
}

// maxPackDepth bounds packable's recursion; deeper claims stay decoded.
const maxPackDepth = 32

// packable reports whether v, marshalled to JSON and decoded with UseNumber
// into an any, comes back deeply equal: only the types such a decode yields
// (string, json.Number, bool, nil, []any, map[string]any), no nil slice or map
// below the top (they marshal to null), valid UTF-8 strings and keys (invalid
// bytes would be replaced) and numbers that are one JSON number token. Claims from a
// verified token always are; claims built by hand or rewritten by a connect
// hook may not be, and are then kept as they are.
func packable(v any, depth int) bool {
	if depth > maxPackDepth {
		return false
	}
	switch v := v.(type) {
	case nil, bool:
		return true
	case string:
		return utf8.ValidString(v)
	case json.Number:
		// One number token: it starts with '-' or a digit and ends with a
		// digit (so no space around it that the decoder would drop).
		return v != "" && (v[0] == '-' || isDigit(v[0])) && isDigit(v[len(v)-1]) && json.Valid([]byte(v))
	case []any:
		if v == nil {
			return false
		}
		for _, e := range v {
			if !packable(e, depth+1) {
				return false
			}
		}
		return true
	case map[string]any:
		if v == nil {
			return false
		}
		for k, e := range v {
			if !utf8.ValidString(k) || !packable(e, depth+1) {
				return false
			}
		}
		return true
	default:
		return false
	}
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// appendJSON appends v, a packable value, as JSON. It is what json.Marshal
// would write less its sorting of keys and its HTML escaping, which decoding
// does not need, and without reflection: a handshake pays a few hundred
// nanoseconds for it, not microseconds.
func appendJSON(b []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...)
	case bool:
		if v {
			return append(b, "true"...)
		}
		return append(b, "false"...)
	case string:
		return appendString(b, v)
	case json.Number:
		return append(b, v...)
	case []any:
		b = append(b, '[')
		for i, e := range v {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSON(b, e)
		}
		return append(b, ']')
	case map[string]any:
		b = append(b, '{')
		first := true
		for k, e := range v {
			b = appendMember(b, first, k, e)
			first = false
		}
		return append(b, '}')
	}
	return append(b, "null"...) // unreachable for a packable value
}

// appendMember appends one object member, k:v, after a comma unless first.
func appendMember(b []byte, first bool, k string, v any) []byte {
	if !first {
		b = append(b, ',')
	}
	b = appendString(b, k)
	b = append(b, ':')
	return appendJSON(b, v)
}

// appendString appends s (valid UTF-8) as a JSON string: quote, backslash and
// control bytes escaped, everything else as it is.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
