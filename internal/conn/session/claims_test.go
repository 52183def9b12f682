package session

import (
	"bytes"
	"encoding/json"
	"reflect"
	"runtime"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/edge/auth"
)

func decodeClaims(t *testing.T, s string) map[string]any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader([]byte(s)))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

// Claims as a verified token has them are kept packed and read back equal,
// before and after the cached map is reclaimed.
func TestIdentityPacksTokenClaims(t *testing.T) {
	claims := decodeClaims(t, `{"sub":"alice","exp":1893456000,"iat":1.5e9,"big":12345678901234567890,
		"channels":{"sub":["chat:*","<&>"],"pub":[]},"roles":"admin","ok":true,"none":null,"empty":{},"é":"ü",
		"esc\"aped":"q\" b\\ nl\n tab\t nul\u0000 del\u007f ls\u2028 😀","neg":-0.5e-3,"deep":[[{"a":[null,false]}]]}`)
	id := auth.Identity{Subject: "alice", Claims: claims, ExpiresAt: time.Unix(1893456000, 0), Source: auth.IdentitySourceJWT}
	x := newIdentity(id)
	if x.packed == "" || x.id.Claims != nil {
		t.Fatalf("token claims not packed: %+v", x)
	}
	checkFastUnpack(t, x, claims)
	for i := range 2 {
		if got := x.claims(); !reflect.DeepEqual(got, claims) {
			t.Fatalf("round %d: claims %#v, want %#v", i, got, claims)
		}
		if got := x.full(); !reflect.DeepEqual(got, id) {
			t.Fatalf("round %d: identity %#v, want %#v", i, got, id)
		}
		runtime.GC()
	}
}

// Claims that would not come back equal from JSON stay as they are: the very
// map, not a copy.
func TestIdentityKeepsOtherClaims(t *testing.T) {
	for name, claims := range map[string]map[string]any{
		"string list":   {"channels": map[string]any{"sub": []string{"a"}}},
		"float":         {"n": 1.5},
		"int":           {"n": 1},
		"nil list":      {"l": []any(nil)},
		"nil map":       {"m": map[string]any(nil)},
		"bad utf-8":     {"s": "\xff"},
		"bad utf-8 key": {"\xff": "s"},
		"empty number":  {"n": json.Number("")},
		"bad number":    {"n": json.Number("1x")},
		"spaced number": {"n": json.Number("1 ")},
		"not a number":  {"n": json.Number("true")},
	} {
		x := newIdentity(auth.Identity{Subject: "alice", Claims: claims})
		if x.packed != "" || reflect.ValueOf(x.claims()).UnsafePointer() != reflect.ValueOf(claims).UnsafePointer() {
			t.Errorf("%s: claims not kept as they were (packed %q)", name, x.packed)
		}
	}
	if x := newIdentity(auth.Identity{Subject: "alice"}); x.claims() != nil || x.full().Claims != nil {
		t.Error("no claims became some")
	}
}

// Whatever JSON object a token carries, the claims read back are the ones
// decoded at the handshake.
func FuzzIdentityPack(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":"\u0001\"\\"}`, `{"n":-1.5E+3,"l":[1,[2,{}],null,true]}`, `{"k\u00e9":"\ud83d\ude00"}`, `{"a":"\xff"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d := json.NewDecoder(bytes.NewReader([]byte(s)))
		d.UseNumber()
		var claims map[string]any
		if d.Decode(&claims) != nil || claims == nil {
			return
		}
		x := newIdentity(auth.Identity{Subject: "alice", Claims: claims})
		if got := x.claims(); !reflect.DeepEqual(got, claims) {
			t.Fatalf("%q: claims %#v, want %#v", s, got, claims)
		}
		if x.packed != "" {
			checkFastUnpack(t, x, claims)
		}
	})
}

// checkFastUnpack checks that unpack's own parser, not its encoding/json
// fallback, reads x's packed claims back as want (with those left out put
// back).
func checkFastUnpack(t *testing.T, x *identity, want map[string]any) {
	t.Helper()
	packed := x.packed[1:]
	p := unpacker{s: packed}
	v, ok := p.value(0)
	if !ok || p.i != len(packed) {
		t.Fatalf("%q: unpacker stopped at %d (ok %v)", packed, p.i, ok)
	}
	m, _ := v.(map[string]any)
	if m == nil {
		t.Fatalf("%q: unpacker read %#v, not an object", packed, v)
	}
	x.restore(m)
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("%q: unpacker read %#v, want %#v", packed, m, want)
	}
}

// The registered claims a token has as the identity has them are left out of
// the packed JSON and put back exactly; the same names with other values
// (another subject, a fractional or differently written date) stay in it.
func TestIdentityLeavesOutRegisteredClaims(t *testing.T) {
	exp, iat := time.Unix(1893456000, 0), time.Unix(1893452400, 0)
	id := auth.Identity{Subject: "alice", ExpiresAt: exp, IssuedAt: iat, Source: auth.IdentitySourceJWT,
		Claims: decodeClaims(t, `{"sub":"alice","exp":1893456000,"iat":1893452400,"nbf":1893452400,"room":"r1"}`)}
	x := newIdentity(id)
	if want := "\x0f" + `{"room":"r1"}`; x.packed != want {
		t.Fatalf("packed = %q, want %q", x.packed, want)
	}
	if got := x.full(); !reflect.DeepEqual(got, id) {
		t.Fatalf("identity %#v, want %#v", got, id)
	}
	for name, js := range map[string]string{
		"other subject":  `{"sub":"bob","exp":1893456000}`,
		"written as e9":  `{"sub":"alice","exp":1.893456e9}`,
		"fraction":       `{"exp":1893456000.5}`,
		"nbf after iat":  `{"iat":1893452400,"nbf":1893452401}`,
		"string date":    `{"exp":"1893456000"}`,
		"other sub type": `{"sub":1}`,
	} {
		claims := decodeClaims(t, js)
		id := auth.Identity{Subject: "alice", ExpiresAt: exp, IssuedAt: iat, Claims: claims}
		x := newIdentity(id)
		if x.packed == "" {
			t.Fatalf("%s: not packed", name)
		}
		checkFastUnpack(t, x, claims)
		if got := x.full(); !reflect.DeepEqual(got, id) {
			t.Fatalf("%s: identity %#v, want %#v", name, got, id)
		}
	}
	// Without the identity's times (a ticket, a hand-built identity) the
	// dates stay in the JSON.
	claims := decodeClaims(t, `{"sub":"alice","exp":1893456000,"iat":1893452400}`)
	x = newIdentity(auth.Identity{Subject: "alice", Claims: claims})
	if x.packed[0] != elidedSub {
		t.Fatalf("flags = %#x, want sub only", x.packed[0])
	}
	checkFastUnpack(t, x, claims)
}

// The first decode is not cached (most connections read their claims once);
// from the second on the decoded map is shared while anything holds it.
func TestIdentityCachesFromSecondDecode(t *testing.T) {
	claims := decodeClaims(t, `{"sub":"alice","channels":{"sub":["chat:*"]}}`)
	x := newIdentity(auth.Identity{Subject: "alice", Claims: claims})
	first := x.claims()
	if !reflect.DeepEqual(first, claims) {
		t.Fatalf("claims %#v, want %#v", first, claims)
	}
	if x.cache.Load() != decodedOnce {
		t.Fatal("the first decode was cached")
	}
	second := x.claims()
	third := x.claims()
	if !reflect.DeepEqual(second, claims) {
		t.Fatalf("claims %#v, want %#v", second, claims)
	}
	if reflect.ValueOf(second).UnsafePointer() != reflect.ValueOf(third).UnsafePointer() {
		t.Fatal("the third read decoded again while the second's map was held")
	}
	runtime.KeepAlive(second)
}
