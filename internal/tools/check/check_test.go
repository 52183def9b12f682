package check

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/internal/conn/transport"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/leak"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/wsserve"
)

const testSecret = "unit-test-secret-unit-test-secret-0123"

func TestValidate(t *testing.T) {
	bad := []Options{
		{},
		{URL: "http://127.0.0.1/"},
		{URL: "ws:///x"},
		{URL: "ws://127.0.0.1/", Secret: testSecret, KeyPEM: []byte("x")},
		{URL: "ws://127.0.0.1/", TokenVia: "carrier-pigeon"},
		{URL: "ws://127.0.0.1/", TokenVia: "subprotocol"},
		{URL: "ws://127.0.0.1/", FloodConns: maxFloodConns + 1},
		{URL: "ws://127.0.0.1/", FloodMessages: -1},
		{URL: "ws://127.0.0.1/", Only: []string{"no-such-check"}},
		{URL: "ws://127.0.0.1/", PlainPorts: []int{1, 2, 3, 4, 5}},
		{URL: "ws://127.0.0.1/", Timeout: -time.Second},
	}
	for i, o := range bad {
		if err := o.Validate(); err == nil {
			t.Errorf("case %d: %+v accepted", i, o)
		}
	}
	good := Options{URL: "wss://localhost:8443/ws", TokenVia: "cookie:session", Only: []string{"oversize"}}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestRemoteTargetRefused(t *testing.T) {
	for _, u := range []string{"ws://192.0.2.1/ws", "wss://[2001:db8::1]:443/"} {
		_, err := Run(context.Background(), &Options{URL: u})
		if !errors.Is(err, ErrRemoteTarget) || !strings.Contains(err.Error(), "--allow-remote") {
			t.Fatalf("%s: %v", u, err)
		}
	}
	if err := checkLoopback(context.Background(), "::1"); err != nil {
		t.Fatal(err)
	}
}

func TestForgedTokens(t *testing.T) {
	c, err := newCreds(&Options{Secret: testSecret, Subject: "alice", Claims: map[string]any{"aud": "app"}})
	if err != nil {
		t.Fatal(err)
	}
	parse := func(tok string) error {
		_, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return []byte(testSecret), nil }, jwt.WithValidMethods([]string{"HS256"}))
		return err
	}
	if err := parse(c.valid); err != nil {
		t.Fatalf("valid token: %v", err)
	}
	if subjectOf(c.valid) != "alice" {
		t.Fatal("subject")
	}
	exp, _ := c.expired()
	if err := parse(exp); !errors.Is(err, jwt.ErrTokenExpired) {
		t.Fatalf("expired token: %v", err)
	}
	flipped, err := flipSignature(c.valid)
	if err != nil {
		t.Fatal(err)
	}
	if err := parse(flipped); !errors.Is(err, jwt.ErrTokenSignatureInvalid) {
		t.Fatalf("flipped: %v", err)
	}
	none, err := withAlg(c.valid, "none")
	if err != nil {
		t.Fatal(err)
	}
	h, parts, err := jwtParts(none + "x") // an empty signature is still three parts
	if err != nil || h["alg"] != "none" || parts[1] != strings.Split(c.valid, ".")[1] {
		t.Fatalf("alg none: %v %v", h, err)
	}
	// Without any credential, a synthetic token still gives forgeries.
	c2, _ := newCreds(&Options{Subject: "x"})
	if _, err := flipSignature(c2.forgeBase()); err != nil {
		t.Fatal(err)
	}
	if _, err := flipSignature("opaque"); err == nil {
		t.Fatal("opaque token accepted as JWT")
	}
}

func TestClassify(t *testing.T) {
	sent := []byte(`{"type":"wsgate-check.unknown-type"}`)
	cases := []struct {
		msg  string
		want replyKind
	}{
		{string(sent), replyEcho},
		{`{"type":"error","code":"unknown_type"}`, replyError},
		{`{"type":"error","code":"rate_limited","retry_after_ms":100}`, replyRateLimited},
		{`{"error":"Rate limit exceeded"}`, replyRateLimited},
		{`{"type":"pong"}`, replyOther},
		{`Invalid message format`, replyError},
		{`hello`, replyOther},
	}
	for _, c := range cases {
		if got := classify([]byte(c.msg), sent); got != c.want {
			t.Errorf("%s: %d, want %d", c.msg, got, c.want)
		}
	}
}

func TestLeakPatterns(t *testing.T) {
	leaks := []string{
		"panic: runtime error\ngoroutine 1 [running]:",
		"at Object.<anonymous> (/app/server.js:12:5)",
		"Traceback (most recent call last):\n  File \"/app/x.py\", line 3",
		"error in /srv/app/handler.go:42",
	}
	for _, l := range leaks {
		o := &observer{}
		o.see("m", []byte(l))
		if f, _ := o.result(); len(f) != 1 {
			t.Errorf("not found: %q", l)
		}
	}
	o := &observer{}
	for range 20 {
		o.see("m", []byte(`{"type":"error","code":"invalid_json","message":"invalid JSON at offset 35"}`))
		o.see("m", []byte("panic: x"))
	}
	if f, n := o.result(); len(f) != maxLeakFindings || n != 40 {
		t.Fatalf("%d findings, %d scanned", len(f), n)
	}
}

// echoServer is a plaintext naive server: no auth, echoes everything.
func echoServer(t *testing.T) string {
	t.Helper()
	return wsserve.Start(t, wsserve.Echo{}, wsserve.Options{Transport: &transport.Options{MaxMessageBytes: 4 << 20}}).URL + "/ws"
}

func TestRunAgainstEchoServer(t *testing.T) {
	// Every probe connection and its read loop end (checked once the echo
	// server has closed too).
	leak.Check(t)
	u := echoServer(t)
	var progress strings.Builder
	rep, err := Run(context.Background(), &Options{
		URL: u, Secret: testSecret, FloodMessages: 200, FloodConns: 5, ReplyWait: 500 * time.Millisecond,
		Only:     []string{"tls-cert", "no-credential", "bad-signature", "plaintext", "invalid-json", "oversize", "conn-flood", "message-flood"},
		Progress: &progress,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Status{
		"tls-cert": Skip, "no-credential": Fail, "bad-signature": Fail, "plaintext": Warn,
		"invalid-json": Fail, "oversize": Fail, "conn-flood": Warn, "message-flood": Fail,
	}
	for n, st := range want {
		if r := rep.Result(n); r == nil || r.Status != st {
			t.Errorf("%s: %+v, want %s", n, r, st)
		}
	}
	if rep.ExitCode != ExitFail || rep.Summary.Fail != 5 {
		t.Errorf("summary %+v exit %d", rep.Summary, rep.ExitCode)
	}
	if strings.Count(progress.String(), "\n") != len(want) {
		t.Errorf("progress: %q", progress.String())
	}
	var b strings.Builder
	if err := rep.WriteText(&b); err != nil || !strings.Contains(b.String(), rep.SummaryLine()) {
		t.Fatal("text report")
	}
	var j strings.Builder
	if err := rep.WriteJSON(&j); err != nil || !json.Valid([]byte(j.String())) {
		t.Fatal("json report")
	}
}

func TestUnreachableTargetIsError(t *testing.T) {
	l := httptest.NewServer(http.NotFoundHandler())
	u := "ws" + strings.TrimPrefix(l.URL, "http")
	l.Close()
	rep, err := Run(context.Background(), &Options{URL: u, Only: []string{"no-credential"}, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Results[0].Status != Error || rep.ExitCode != ExitIncomplete {
		t.Fatalf("%+v", rep.Results[0])
	}
}

func b64json(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}
