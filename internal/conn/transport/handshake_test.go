package transport

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestValidateUpgradeRequest(t *testing.T) {
	good := func() *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/ws", nil)
		r.Header.Set("Connection", "keep-alive, Upgrade")
		r.Header.Set("Upgrade", "WebSocket")
		r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		r.Header.Set("Sec-WebSocket-Version", "13")
		return r
	}
	if err := ValidateUpgradeRequest(good()); err != nil {
		t.Fatalf("valid request refused: %v", err)
	}
	cases := []struct {
		name   string
		mutate func(r *http.Request)
		status int
	}{
		{"POST", func(r *http.Request) { r.Method = http.MethodPost }, 400},
		{"HTTP/1.0", func(r *http.Request) { r.ProtoMinor = 0 }, 400},
		{"HTTP/2", func(r *http.Request) { r.ProtoMajor, r.ProtoMinor = 2, 0 }, 400},
		{"no Connection upgrade", func(r *http.Request) { r.Header.Set("Connection", "keep-alive") }, 400},
		{"Connection substring only", func(r *http.Request) { r.Header.Set("Connection", "upgrades") }, 400},
		{"no Upgrade", func(r *http.Request) { r.Header.Del("Upgrade") }, 400},
		{"Upgrade h2c", func(r *http.Request) { r.Header.Set("Upgrade", "h2c") }, 400},
		{"no key", func(r *http.Request) { r.Header.Del("Sec-WebSocket-Key") }, 400},
		{"short key", func(r *http.Request) { r.Header.Set("Sec-WebSocket-Key", "c2hvcnQ=") }, 400},
		{"key not base64", func(r *http.Request) { r.Header.Set("Sec-WebSocket-Key", "!!!!!!!!!!!!!!!!!!!!!!==") }, 400},
		{"two keys", func(r *http.Request) { r.Header.Add("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==") }, 400},
		{"version 8", func(r *http.Request) { r.Header.Set("Sec-WebSocket-Version", "8") }, 426},
		{"no version", func(r *http.Request) { r.Header.Del("Sec-WebSocket-Version") }, 426},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := good()
			tc.mutate(r)
			err := ValidateUpgradeRequest(r)
			if err == nil || err.Status != tc.status {
				t.Fatalf("got %v, want %d", err, tc.status)
			}
			if tc.status == 426 && err.Header.Get("Sec-WebSocket-Version") != "13" {
				t.Fatalf("426 without Sec-WebSocket-Version: %v", err.Header)
			}
			rec := httptest.NewRecorder()
			err.WriteResponse(rec)
			if rec.Code != tc.status {
				t.Fatalf("wrote %d", rec.Code)
			}
		})
	}
}

func TestValidToken(t *testing.T) {
	for _, s := range []string{"chat.v1", "graphql-ws", "a"} {
		if !validToken(s) {
			t.Errorf("%q refused", s)
		}
	}
	for _, s := range []string{"", "a b", "a\r\nX-Evil: 1", "a,b", "é"} {
		if validToken(s) {
			t.Errorf("%q accepted", s)
		}
	}
}

// FuzzValidateUpgradeRequest: arbitrary header values never panic and a
// request is accepted only with a 16-byte key and version 13.
func FuzzValidateUpgradeRequest(f *testing.F) {
	f.Add("Upgrade", "websocket", "dGhlIHNhbXBsZSBub25jZQ==", "13")
	f.Add("keep-alive,,upgrade", "websocket, h2c", "====", "13, 8")
	f.Fuzz(func(t *testing.T, conn, upgrade, key, version string) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header["Connection"] = []string{conn}
		r.Header["Upgrade"] = []string{upgrade}
		r.Header["Sec-Websocket-Key"] = []string{key}
		r.Header["Sec-Websocket-Version"] = []string{version}
		if err := ValidateUpgradeRequest(r); err == nil && !validKey(key) {
			t.Fatalf("accepted key %q", key)
		}
	})
}
