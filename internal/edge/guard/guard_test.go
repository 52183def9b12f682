package guard

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

func TestClientIPIgnoresHeadersFromUntrustedPeers(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	cases := []struct {
		name, remote, xff, fwd, want string
	}{
		{"no proxy", "203.0.113.5:1234", "", "", "203.0.113.5"},
		{"spoofed from untrusted peer", "203.0.113.5:1234", "1.2.3.4", "", "203.0.113.5"},
		{"trusted proxy", "10.0.0.1:80", "198.51.100.7", "", "198.51.100.7"},
		{"chain, rightmost untrusted wins", "10.0.0.1:80", "1.1.1.1, 198.51.100.7, 10.0.0.2", "", "198.51.100.7"},
		{"client-supplied left part ignored", "10.0.0.1:80", "6.6.6.6, 198.51.100.7", "", "198.51.100.7"},
		{"garbage hop stops the walk", "10.0.0.1:80", "198.51.100.7, garbage", "", "10.0.0.1"},
		{"forwarded header", "10.0.0.1:80", "", `for=192.0.2.60;proto=http, for="[2001:db8::1]:4711"`, "2001:db8::1"},
		{"ipv6 peer", "[2001:db8::9]:443", "1.2.3.4", "", "2001:db8::9"},
		// More forged entries than maxHops must not push the proxy's own entry out.
		{"long forged chain", "10.0.0.1:80", strings.Repeat("6.6.6.6, ", 40) + "198.51.100.7", "", "198.51.100.7"},
		{"long forged chain, forwarded", "10.0.0.1:80", "", strings.Repeat("for=6.6.6.6, ", 40) + "for=198.51.100.7", "198.51.100.7"},
		{"zone refused", "10.0.0.1:80", "fe80::1%eth0", "", "10.0.0.1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/ws", nil)
			r.RemoteAddr = c.remote
			if c.xff != "" {
				r.Header.Set("X-Forwarded-For", c.xff)
			}
			if c.fwd != "" {
				r.Header.Set("Forwarded", c.fwd)
			}
			if got := ClientIP(r, trusted).String(); got != c.want {
				t.Fatalf("got %s, want %s", got, c.want)
			}
		})
	}
}

func TestOriginPolicy(t *testing.T) {
	p := OriginPolicy{Allowed: []string{"https://app.example.com", "https://*.example.org"}, AllowMissing: false}
	cases := []struct {
		origin string
		ok     bool
	}{
		{"https://app.example.com", true},
		{"https://app.example.com:443", true},
		{"http://app.example.com", false},
		{"https://evil.com", false},
		{"https://a.example.org", true},
		{"https://a.b.example.org", true},
		{"https://example.org", false},
		{"https://evilexample.org", false},
		{"null", false},
		{"", false},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "/ws", nil)
		if c.origin != "" {
			r.Header.Set("Origin", c.origin)
		}
		if err := p.Check(r); (err == nil) != c.ok {
			t.Errorf("%q: err=%v, want ok=%v", c.origin, err, c.ok)
		}
	}
	same := OriginPolicy{AllowMissing: true}
	r := httptest.NewRequest("GET", "https://gate.local:8443/ws", nil)
	r.Header.Set("Origin", "https://gate.local:8443")
	if err := same.Check(r); err != nil {
		t.Errorf("same origin refused: %v", err)
	}
	// Same host, another port or scheme: another origin.
	for _, o := range []string{"https://gate.local:8444", "http://gate.local:8443", "https://gate.local"} {
		r.Header.Set("Origin", o)
		if err := same.Check(r); err == nil {
			t.Errorf("%s accepted for https://gate.local:8443", o)
		}
	}
	r.Header.Set("Origin", "https://other.local")
	if err := same.Check(r); err == nil {
		t.Error("cross origin accepted with an empty allow-list")
	}
	r.Header.Del("Origin")
	if err := same.Check(r); err != nil {
		t.Errorf("missing origin refused with allow_missing: %v", err)
	}
}

func TestRejectionBodyNeverEchoes(t *testing.T) {
	w := httptest.NewRecorder()
	(&Rejection{Status: http.StatusTooManyRequests, Code: "rate_limited", Reason: "handshake_rate", RetryAfter: 1500e6}).Write(w)
	if w.Code != 429 || w.Header().Get("Retry-After") != "2" {
		t.Fatalf("status %d retry-after %q", w.Code, w.Header().Get("Retry-After"))
	}
	if got := w.Body.String(); got != "{\"error\":\"rate_limited\",\"retry_after_s\":2}\n" {
		t.Fatalf("body %q", got)
	}
}
