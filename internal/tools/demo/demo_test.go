package demo

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The page is served with a CSP that lets it load the SDK from this server and
// nothing else, and it talks to wsgate only through the SDK: no WebSocket of its
// own, no credential in a URL.
func TestPageUsesSDKUnderCSP(t *testing.T) {
	h := Handler(func(string, time.Duration, map[string]any) (string, error) { return "t", nil }, "secret")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /: %d", rec.Code)
	}
	csp := rec.Header().Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'self'", "script-src 'self' 'unsafe-inline'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-eval") {
		t.Errorf("CSP allows eval: %q", csp)
	}
	body := rec.Body.String()
	if !regexp.MustCompile(`import \{[^}]*\bClient\b[^}]*\} from "/client/wsgate\.js"`).MatchString(body) {
		t.Error("page does not import Client from /client/wsgate.js")
	}
	for _, bad := range []string{"new WebSocket(", "token=", "?ticket", "Authorization"} {
		if strings.Contains(body, bad) {
			t.Errorf("page contains %q: the SDK owns the connection and the credential", bad)
		}
	}
	if !strings.Contains(body, `"`+SecretHeader+`"`) {
		t.Errorf("page does not send the dev secret in %s", SecretHeader)
	}
}
