package guard

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

// FuzzClientIP: hostile forwarding headers never panic and never yield an address
// when the peer is not a trusted proxy other than the peer itself.
func FuzzClientIP(f *testing.F) {
	f.Add("1.2.3.4", `for=192.0.2.60;proto=http`)
	f.Add("1.1.1.1, 2.2.2.2, 10.0.0.3", `for="[2001:db8::1]:4711"`)
	f.Add("[::1]:80", `for=unknown, for=_hidden`)
	f.Add("", "")
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	f.Fuzz(func(t *testing.T, xff, fwd string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("X-Forwarded-For", xff)
		r.Header.Set("Forwarded", fwd)
		r.RemoteAddr = "203.0.113.9:5555"
		if got := ClientIP(r, trusted); got.String() != "203.0.113.9" {
			t.Fatalf("untrusted peer's headers were believed: %s", got)
		}
		r.RemoteAddr = "10.1.2.3:5555"
		_ = ClientIP(r, trusted)
		// Whatever the client sent, the entry our proxy appended decides.
		r.Header.Set("X-Forwarded-For", xff+", 198.51.100.7")
		if got := ClientIP(r, trusted); got.String() != "198.51.100.7" {
			t.Fatalf("client-sent X-Forwarded-For %q overrode the proxy's entry: %s", xff, got)
		}
		r.Header.Set("Origin", xff)
		_ = (&OriginPolicy{Allowed: []string{"https://*.example.com"}}).Check(r)
		// The scheme a trusted proxy reports is only ever http or https.
		r.Header.Set("X-Forwarded-Proto", fwd)
		if sch := requestScheme(r, trusted); sch != "http" && sch != "https" {
			t.Fatalf("X-Forwarded-Proto %q gave scheme %q", fwd, sch)
		}
		_ = (&OriginPolicy{}).check(r, requestScheme(r, trusted))
	})
}
