package upstream

import (
	"net/http"
	"testing"
	"time"
)

// FuzzVerifyIdentity feeds arbitrary header values: VerifyIdentity must never
// panic and must accept only what SignIdentity produced.
func FuzzVerifyIdentity(f *testing.F) {
	h := http.Header{}
	_, _ = SignIdentity(h, testKey, Identity{User: "alice", ConnID: "c", ClientIP: "1.2.3.4", Claims: map[string]any{"a": 1}}, 0)
	f.Add(h.Get(HeaderTimestamp), h.Get(HeaderConnID), h.Get(HeaderUser), h.Get(HeaderClientIP), h.Get(HeaderClaims), h.Get(HeaderSignature))
	f.Add("", "", "", "", "", "")
	f.Add("-1", "c", "%zz", "ip", "!!", "v1=zz")
	f.Add("99999999999999999999", "c", "u", "ip", "e30", "v1=")
	f.Fuzz(func(t *testing.T, ts, conn, user, ip, claims, sig string) {
		h := http.Header{}
		for k, v := range map[string]string{HeaderTimestamp: ts, HeaderConnID: conn, HeaderUser: user, HeaderClientIP: ip, HeaderClaims: claims, HeaderSignature: sig} {
			if v != "" {
				h.Set(k, v)
			}
		}
		id, err := VerifyIdentity(h, testKey, time.Hour)
		if err != nil {
			return
		}
		// Accepted: the signature must be the real one for these values.
		want := http.Header{}
		_, _ = SignIdentity(want, testKey, Identity{User: id.User, ConnID: id.ConnID, ClientIP: id.ClientIP, Time: id.Time, Claims: id.Claims}, 0)
		if user != EncodeUser(id.User) {
			t.Fatalf("accepted a user encoding that is not canonical: %q", user)
		}
	})
}

// FuzzDecodeUser: decoding never panics and re-encoding what decodes is stable.
func FuzzDecodeUser(f *testing.F) {
	for _, s := range []string{"alice", "%25", "%E6%97%A5", "%", "%%%", "a%2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := DecodeUser(s)
		if err != nil {
			return
		}
		if d2, err := DecodeUser(EncodeUser(d)); err != nil || d2 != d {
			t.Fatalf("%q: round trip %q %v", s, d2, err)
		}
	})
}
