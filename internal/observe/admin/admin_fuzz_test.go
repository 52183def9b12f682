package admin

import (
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzBanRequest: any body either fails to decode or parse, or yields a ban with a
// canonical, bounded subject and a sane expiry.
func FuzzBanRequest(f *testing.F) {
	for _, s := range []string{
		`{"ip":"1.2.3.4","ttl":"10m"}`, `{"user":"alice","permanent":true}`, `{"subject":"ip:::ffff:1.2.3.4"}`,
		`{"subject":"user:"}`, `{"ttl":"9999999h","user":"x"}`, `{"ip":"1.2.3.4"} {}`, `[]`, ``, `{"user":"\u0000"}`,
	} {
		f.Add([]byte(s))
	}
	now := time.Unix(1700000000, 0)
	f.Fuzz(func(t *testing.T, data []byte) {
		var req BanRequest
		if err := DecodeBody(data, &req, false); err != nil {
			return
		}
		b, err := ParseBanRequest(req, now, time.Hour)
		if err != nil {
			return
		}
		if b.Subject == "" || len(b.Subject) > 512 || !utf8.ValidString(b.Subject) {
			t.Fatalf("subject %q", b.Subject)
		}
		if !b.Permanent() && (!b.Until.After(now) || b.Until.Sub(now) > maxBanTTL) {
			t.Fatalf("until %v", b.Until)
		}
		if s, err := NormalizeSubject(b.Subject); err != nil || s != b.Subject {
			t.Fatalf("subject %q not canonical: %q %v", b.Subject, s, err)
		}
	})
}

// FuzzBearer: the Authorization parser never panics and never accepts a token
// that is not in the header.
func FuzzBearer(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer  x ", "Basic abc", "Bearer", "Bearer ", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		tok, ok := bearerToken(h)
		if ok && (tok == "" || len(tok) >= len(h)) {
			t.Fatalf("%q -> %q", h, tok)
		}
	})
}
