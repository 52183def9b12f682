package upstream

import (
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

func TestIdentityRoundTrip(t *testing.T) {
	h := http.Header{"X-Wsgate-User": {"forged"}, "x-wsgate-extra": {"forged"}}
	id := Identity{User: "ålice %1 x", Claims: map[string]any{"role": "admin", "n": 3}, ConnID: "c1", ClientIP: "2001:db8::1"}
	if _, err := SignIdentity(h, testKey, id, 0); err != nil {
		t.Fatal(err)
	}
	if len(h.Values("X-Wsgate-User")) != 1 || h.Get("X-Wsgate-Extra") != "" {
		t.Fatalf("client X-Wsgate-* not stripped: %v", h)
	}
	if strings.ContainsAny(h.Get(HeaderUser), " å") {
		t.Fatalf("user not header-safe: %q", h.Get(HeaderUser))
	}
	got, err := VerifyIdentity(h, testKey, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if got.User != id.User || got.ConnID != "c1" || got.ClientIP != "2001:db8::1" || got.Claims["role"] != "admin" {
		t.Fatalf("got %+v", got)
	}
}

func TestIdentityRefusals(t *testing.T) {
	fresh := func() http.Header {
		h := http.Header{}
		if _, err := SignIdentity(h, testKey, Identity{User: "alice", ConnID: "c", ClientIP: "1.2.3.4", Claims: map[string]any{"a": 1}}, 0); err != nil {
			t.Fatal(err)
		}
		return h
	}
	cases := []struct {
		name string
		edit func(http.Header)
		key  []byte
		want error
	}{
		{"tampered user", func(h http.Header) { h.Set(HeaderUser, "admin") }, testKey, ErrBadSignature},
		{"tampered claims", func(h http.Header) { h.Set(HeaderClaims, "e30") }, testKey, ErrBadSignature},
		{"claims removed", func(h http.Header) { h.Del(HeaderClaims) }, testKey, ErrBadSignature},
		{"wrong key", func(http.Header) {}, []byte("another key another key another!"), ErrBadSignature},
		{"no key", func(http.Header) {}, nil, ErrBadSignature},
		{"repeated user", func(h http.Header) { h.Add(HeaderUser, "admin") }, testKey, ErrBadIdentity},
		{"no signature", func(h http.Header) { h.Del(HeaderSignature) }, testKey, ErrNoIdentity},
		{"bad format", func(h http.Header) { h.Set(HeaderSignature, "v2=00") }, testKey, ErrBadIdentity},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := fresh()
			tc.edit(h)
			if _, err := VerifyIdentity(h, tc.key, time.Minute); !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
	h := http.Header{}
	if _, err := SignIdentity(h, testKey, Identity{User: "u", Time: time.Now().Add(-2 * time.Minute)}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyIdentity(h, testKey, time.Minute); !errors.Is(err, ErrStale) {
		t.Fatalf("stale: %v", err)
	}
}

func TestIdentityClaimsBound(t *testing.T) {
	h := http.Header{}
	dropped, err := SignIdentity(h, testKey, Identity{User: "u", Claims: map[string]any{"big": strings.Repeat("x", 5000)}}, 0)
	if err != nil || !dropped || h.Get(HeaderClaims) != "" {
		t.Fatalf("dropped %v err %v claims %d bytes", dropped, err, len(h.Get(HeaderClaims)))
	}
	if id, err := VerifyIdentity(h, testKey, 0); err != nil || id.Claims != nil {
		t.Fatalf("verify without claims: %+v %v", id, err)
	}
}

// TestCanonicalVector pins the algorithm documented in docs/gateway.md.
func TestCanonicalVector(t *testing.T) {
	v := identityValues{ts: "1700000000", connID: "abc", user: "alice", ip: "127.0.0.1", claims: "eyJyb2xlIjoiYWRtaW4ifQ", host: "chat.example.com"}
	want := "wsgate-identity-v2\n1700000000\nabc\nalice\n127.0.0.1\neyJyb2xlIjoiYWRtaW4ifQ\nchat.example.com\n"
	if got := CanonicalIdentity(v.ts, v.connID, v.user, v.ip, v.claims, v.host); got != want {
		t.Fatalf("canonical %q", got)
	}
	// Computed independently (Python hmac), as in docs/gateway.md.
	const sig = "f9c2cf6066cf5e156a27e58b02e5e2625b1f343629febae3fedee94a61520fc7"
	if got := hex.EncodeToString(sign(testKey, v)); got != sig {
		t.Fatalf("signature %s", got)
	}
	// v1 (older wsgate nodes) has no host.
	const sigV1 = "c74190eef7caec5eb9c4a2d5da07ee35264e59f0f20a5b0a3490830ab1988b58"
	if got := hex.EncodeToString(mac(testKey, canonicalV1(v))); got != sigV1 {
		t.Fatalf("v1 signature %s", got)
	}
}

// TestIdentityHostSigned: X-Forwarded-Host is the configured host and covered by
// the signature; a v1 signature still verifies but asserts no host.
func TestIdentityHostSigned(t *testing.T) {
	h := http.Header{HeaderForwardedHost: {"evil.example"}}
	if _, err := SignIdentity(h, testKey, Identity{User: "u", ConnID: "c", ClientIP: "1.2.3.4", Host: "chat.example.com"}, 0); err != nil {
		t.Fatal(err)
	}
	if h.Values(HeaderForwardedHost)[0] != "chat.example.com" || len(h.Values(HeaderForwardedHost)) != 1 {
		t.Fatalf("X-Forwarded-Host %v", h.Values(HeaderForwardedHost))
	}
	id, err := VerifyIdentity(h, testKey, time.Minute)
	if err != nil || id.Host != "chat.example.com" {
		t.Fatalf("verify: %+v %v", id, err)
	}
	h.Set(HeaderForwardedHost, "evil.example")
	if _, err := VerifyIdentity(h, testKey, time.Minute); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("changed host verified: %v", err)
	}
	h.Del(HeaderForwardedHost)
	if _, err := VerifyIdentity(h, testKey, time.Minute); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("removed host verified: %v", err)
	}
	// A v1 signature (older node): valid, Host not asserted.
	h.Set(HeaderForwardedHost, "anything")
	v, _ := singleValues(h)
	h.Set(HeaderSignature, "v1="+hex.EncodeToString(mac(testKey, canonicalV1(v))))
	if id, err := VerifyIdentity(h, testKey, time.Minute); err != nil || id.Host != "" {
		t.Fatalf("v1: %+v %v", id, err)
	}
}

func TestUserEncoding(t *testing.T) {
	for _, s := range []string{"", "alice", "a b", "%", "%41", "日本", "x\r\ny", "\x00\xff"} {
		enc := EncodeUser(s)
		for i := 0; i < len(enc); i++ {
			if enc[i] < 0x21 || enc[i] > 0x7e {
				t.Fatalf("%q encodes to %q with byte %#x", s, enc, enc[i])
			}
		}
		dec, err := DecodeUser(enc)
		if err != nil || dec != s {
			t.Fatalf("%q → %q → %q, %v", s, enc, dec, err)
		}
	}
	for _, bad := range []string{"%", "%4", "%zz", "%+1"} {
		if _, err := DecodeUser(bad); err == nil {
			t.Fatalf("%q decoded", bad)
		}
	}
}
