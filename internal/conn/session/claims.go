package session

import (
	"bytes"
	"encoding/json"
	"sync/atomic"
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
	packed string        // the claims as JSON, "" when id.Claims holds them
	cache  atomic.Pointer[weak.Pointer[claimsBox]]
}

// claimsBox is what the weak cache points at: a decoded map.
type claimsBox struct{ m map[string]any }

func newIdentity(id auth.Identity) *identity {
	if id.Claims != nil && packable(id.Claims, 0) {
		if b, err := json.Marshal(id.Claims); err == nil {
			return &identity{id: withoutClaims(id), packed: string(b)}
		}
	}
	return &identity{id: id}
}

func withoutClaims(id auth.Identity) auth.Identity {
	id.Claims = nil
	return id
}

// claims returns the decoded claims: the map the identity was built with when
// they are not packed, or a map decoded from the packed JSON, shared with every
// other caller until it is reclaimed. Callers must not modify it (the claims
// are read only everywhere).
func (x *identity) claims() map[string]any {
	if x.packed == "" {
		return x.id.Claims
	}
	if w := x.cache.Load(); w != nil {
		if b := w.Value(); b != nil {
			return b.m
		}
	}
	b := &claimsBox{m: unpack(x.packed)}
	w := weak.Make(b)
	x.cache.Store(&w)
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

// unpack decodes JSON that packable approved and json.Marshal wrote.
func unpack(s string) map[string]any {
	d := json.NewDecoder(bytes.NewReader([]byte(s)))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil || m == nil {
		// Impossible for what json.Marshal wrote from a packable map; an empty
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
// bytes would be replaced) and no empty number. Claims from a
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
		return v != "" // json.Marshal writes "" as 0, and refuses any other non-number
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
