package redact_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/observe/redact"
)

const jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXZhbHVl"

func TestStringMasksRegisteredSecrets(t *testing.T) {
	r := redact.New(redact.Options{})
	r.Add("s3cr3t-ticket-0001")
	r.Add("short") // ignored: below MinSecretLen
	r.Add("12abcdefgh")
	r.Add("ijklabcdefgh") // same 8-byte suffix; the longer one wins
	cases := map[string]string{
		"ticket=s3cr3t-ticket-0001 ok":           "ticket=[REDACTED] ok",
		"x s3cr3t-ticket-0001s3cr3t-ticket-0001": "x [REDACTED][REDACTED]",
		"short stays":                            "short stays",
		"ijklabcdefgh!":                          "[REDACTED]!",
		"12abcdefgh!":                            "[REDACTED]!",
		"nothing here":                           "nothing here",
		"":                                       "",
	}
	for in, want := range cases {
		if got := r.String(in); got != want {
			t.Errorf("String(%q) = %q, want %q", in, got, want)
		}
	}
	if r.Len() != 3 {
		t.Errorf("Len = %d, want 3", r.Len())
	}
}

func TestJWTAndURLQueriesMaskedWithoutRegistration(t *testing.T) {
	var r *redact.Redactor // nil still masks shapes
	cases := map[string]string{
		"Bearer " + jwt:                                     "Bearer [REDACTED]",
		"a " + jwt + " b " + jwt:                            "a [REDACTED] b [REDACTED]",
		"eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.":              "[REDACTED]", // alg=none, empty signature
		"eyJ is just text":                                  "eyJ is just text",
		`Get "https://h.example/p?token=abc&x=1": dial tcp`: `Get "https://h.example/p?REDACTED": dial tcp`,
		"wss://h/ws#frag":                                   "wss://h/ws#REDACTED",
		"/relative?x=y in free text":                        "/relative?x=y in free text",
	}
	for in, want := range cases {
		if got := r.String(in); got != want {
			t.Errorf("String(%q) = %q, want %q", in, got, want)
		}
	}
	if got := r.URL("/ws?token=abc"); got != "/ws?REDACTED" {
		t.Errorf("URL = %q", got)
	}
}

func TestEvictionIsBoundedAndFIFO(t *testing.T) {
	r := redact.New(redact.Options{MaxSecrets: 4})
	for i := range 10 {
		r.Add(fmt.Sprintf("secret-%04d", i))
	}
	if r.Len() != 4 {
		t.Fatalf("Len = %d, want 4", r.Len())
	}
	if got := r.String("secret-0000"); got != "secret-0000" {
		t.Errorf("oldest secret should be forgotten, got %q", got)
	}
	if got := r.String("secret-0009"); got != redact.Mask {
		t.Errorf("newest secret should be masked, got %q", got)
	}
	r.Remove("secret-0009")
	if got := r.String("secret-0009"); got != "secret-0009" {
		t.Errorf("removed secret still masked: %q", got)
	}
	// Re-adding after removal must not be evicted early by its stale slot.
	r.Add("secret-0009")
	for i := 10; i < 13; i++ {
		r.Add(fmt.Sprintf("secret-%04d", i))
	}
	if got := r.String("secret-0009"); got != redact.Mask {
		t.Errorf("re-added secret evicted early: %q", got)
	}
	if r.Len() != 4 {
		t.Fatalf("Len = %d, want 4", r.Len())
	}
}

func TestSensitiveKey(t *testing.T) {
	yes := []string{"token", "access_token", "X-Auth-Token", "refreshToken", "ticket", "Secret",
		"password", "Authorization", "cookie", "Set-Cookie", "key", "api_key", "apiKey", "X-API-Key",
		"private_key", "auth", "jwt", "sessionCookie"}
	no := []string{"user", "ip", "route", "monkey", "author", "conn_id", "reason", "keyboard_layout", ""}
	for _, k := range yes {
		if !redact.SensitiveKey(k) {
			t.Errorf("SensitiveKey(%q) = false", k)
		}
	}
	for _, k := range no {
		if redact.SensitiveKey(k) {
			t.Errorf("SensitiveKey(%q) = true", k)
		}
	}
}

type creds struct {
	User  string
	Token string
}

type lazy struct{ s string }

func (l lazy) LogValue() slog.Value { return slog.StringValue(l.s) }

func TestHandlerLeaksNothing(t *testing.T) {
	r := redact.New(redact.Options{})
	secrets := []string{"tkt_9f8e7d6c5b4a", "adm1n-t0ken-xyz", "cookie-val-123456", "k3y-material-abcdef"}
	for _, s := range secrets {
		r.Add(s)
	}
	unregistered := "plain-password-never-added"
	var buf bytes.Buffer
	for _, inner := range []slog.Handler{
		slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}),
		slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}),
	} {
		log := slog.New(redact.NewHandler(inner, r))
		log.Info("ticket "+secrets[0]+" redeemed", "ip", "10.0.0.1")
		log.Info("auth", "header", "Bearer "+jwt, "token", unregistered, "password", unregistered)
		log.Info("req", "url", "/ws?ticket="+unregistered, "request_uri", "/x?a=b")
		log.Warn("fail", "err", errors.New("bad admin token "+secrets[1]), "raw", []byte(secrets[2]))
		log.Info("grp", slog.Group("h", "Authorization", unregistered, "x", secrets[3]))
		log.Info("hdr", "headers", http.Header{"Cookie": {unregistered}, "Accept": {"x"}})
		log.Info("struct", "c", creds{User: "u", Token: unregistered}, "p", &creds{Token: secrets[0]})
		log.Info("lazy", "v", lazy{secrets[1]}, "s", fmt.Sprint(secrets[2]))
		log.With("bound", secrets[3], "api_key", unregistered).WithGroup("g").Info("with", "k", jwt)
		log.Info("url err", "e", fmt.Errorf("get: %w", errors.New(`Get "https://x/cb?code=`+unregistered+`"`)))
	}
	out := buf.String()
	for _, s := range append(secrets, unregistered, jwt, "ticket=", "code=") {
		if strings.Contains(out, s) {
			t.Errorf("output leaks %q:\n%s", s, out)
		}
	}
	for _, want := range []string{"10.0.0.1", "REDACTED", "/ws?REDACTED", `"User":"u"`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestValueTree(t *testing.T) {
	r := redact.New(redact.Options{})
	r.Add("registered-secret")
	got := r.Value(map[string]any{
		"token": "x",
		"note":  "has registered-secret inside",
		"list":  []any{"registered-secret", 3.0, map[string]any{"cookie": "c"}},
		"path":  "/a?b=c",
	})
	s := fmt.Sprint(got)
	for _, bad := range []string{"registered-secret", "b=c", " x", "cookie:c"} {
		if strings.Contains(s, bad) {
			t.Errorf("Value leaks %q: %s", bad, s)
		}
	}
}

func TestConcurrentAddAndLookup(t *testing.T) {
	r := redact.New(redact.Options{MaxSecrets: 64})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := range 500 {
				s := fmt.Sprintf("g%d-secret-%05d", g, i)
				r.Add(s)
				if i%3 == 0 {
					r.Remove(s)
				}
			}
		}()
		go func() {
			defer wg.Done()
			for i := range 500 {
				_ = r.String(fmt.Sprintf("line g%d-secret-%05d end", g, i))
			}
		}()
	}
	wg.Wait()
	if r.Len() > 64 {
		t.Fatalf("Len = %d exceeds bound", r.Len())
	}
	r.Add("final-secret-value")
	if r.String("final-secret-value") != redact.Mask {
		t.Fatal("secret added after churn not masked")
	}
}

func TestSharedSuffixIsBounded(t *testing.T) {
	r := redact.New(redact.Options{})
	for i := range 200 {
		r.Add(fmt.Sprintf("%04d-common-suffix", i))
	}
	if r.Len() > 64 {
		t.Fatalf("Len = %d; secrets sharing a suffix should be capped", r.Len())
	}
	if r.String("0199-common-suffix") != redact.Mask {
		t.Fatal("newest secret with shared suffix not masked")
	}
}

// TestPinnedSurvivesEviction: configured secrets are never evicted by the bound or
// by secrets sharing their suffix (issue 13 item 11).
func TestPinnedSurvivesEviction(t *testing.T) {
	r := redact.New(redact.Options{MaxSecrets: 16})
	r.Pin("admin-token-admin-token")
	r.Add("hmac-master-secret-01")
	r.Pin("hmac-master-secret-01") // pinning an added secret makes it permanent
	for i := range 1000 {
		r.Add(fmt.Sprintf("ticket-%08d", i))
		r.Add(fmt.Sprintf("x%04d-admin-token", i)) // same last 8 bytes as the admin token
	}
	r.Remove("admin-token-admin-token")
	for _, sec := range []string{"admin-token-admin-token", "hmac-master-secret-01"} {
		if got := r.String("k=" + sec); got != "k="+redact.Mask {
			t.Errorf("pinned %s forgotten: %q", sec, got)
		}
	}
	if r.Len() > 16+2 {
		t.Errorf("Len %d beyond the bound plus pinned", r.Len())
	}
}

// TestAddForExpires: a secret added with a lifetime leaves once it has passed (at
// the next registration) or when removed.
func TestAddForExpires(t *testing.T) {
	now := time.Unix(1000, 0)
	r := redact.New(redact.Options{Now: func() time.Time { return now }})
	r.AddFor("ticket-aaaaaaaa", 30*time.Second)
	r.AddFor("ticket-bbbbbbbb", 30*time.Second)
	r.Pin("configured-secret")
	r.Remove("ticket-bbbbbbbb") // redeemed
	if !r.Contains("ticket-aaaaaaaa") || r.Contains("ticket-bbbbbbbb") {
		t.Fatal("live ticket not masked, or redeemed ticket still registered")
	}
	now = now.Add(31 * time.Second)
	r.AddFor("ticket-cccccccc", 30*time.Second)
	if r.Contains("ticket-aaaaaaaa") || !r.Contains("ticket-cccccccc") || !r.Contains("configured-secret") {
		t.Fatalf("after expiry: a=%v c=%v pinned=%v", r.Contains("ticket-aaaaaaaa"), r.Contains("ticket-cccccccc"), r.Contains("configured-secret"))
	}
	if r.Len() != 2 {
		t.Fatalf("Len %d, want 2", r.Len())
	}
}

// TestDescriptorKeysKept: a key naming the kind of a credential keeps its value
// (issue 13 item 14); the credential-carrying keys stay masked.
func TestDescriptorKeysKept(t *testing.T) {
	for key, want := range map[string]bool{
		"credential_source": false, "credentialSource": false, "token_type": false, "tokenType": false,
		"ticket-kind": false, "credential": true, "token": true, "access_token": true, "sourceToken": true,
		"credentials": true, "x_auth_token": true, "type": false, "source": false,
	} {
		if got := redact.SensitiveKey(key); got != want {
			t.Errorf("SensitiveKey(%q) = %v, want %v", key, got, want)
		}
	}
	r := redact.New(redact.Options{})
	a := r.Attr(slog.String("credential_source", "bearer"))
	if a.Value.String() != "bearer" {
		t.Fatalf("credential_source masked: %v", a)
	}
	// The value still passes the JWT mask.
	if a := r.Attr(slog.String("credential_source", jwt)); a.Value.String() == jwt {
		t.Fatal("a JWT under a descriptor key was not masked")
	}
}
