package e2e

// Regression tests for issue 13 (outside security review), one per item, named
// TestSecNN… after the item's number. All run over real sockets.

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/client"
	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/observe/redact"
	"github.com/wsgate/wsgate/internal/route/upstream"
	"github.com/wsgate/wsgate/internal/server"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest"
)

// ackOrError reads until the ack or error answering ref and returns it.
func ackOrError(t *testing.T, c *wsgatetest.Client, ref any) map[string]any {
	t.Helper()
	for {
		m := c.Next(t, 5*time.Second)
		if (m["type"] == "ack" || m["type"] == "error") && m["ref"] == ref {
			return m
		}
	}
}

// Item 5: a message containing the JSON string "sig" (as text, or as a member
// nested in a payload) is not an envelope: it is accepted, not refused as
// unsigned; only a top-level "sig" member makes a message an envelope.
func TestSec05SigTextAccepted(t *testing.T) {
	for _, keys := range []bool{true, false} {
		name := "no master keys"
		if keys {
			name = "master keys"
		}
		t.Run(name, func(t *testing.T) {
			cfg := wsgatetest.Config()
			if keys {
				cfg.Integrity.MasterKeys = []config.IntegrityKey{{ID: "k1", Secret: strings.Repeat("m", 40)}}
			}
			s := wsgatetest.Start(t, cfg)
			c := subscriber(t, s, "sigfan", chatPerms, "chat:sig")
			c.Send(t, `{"type":"chat","id":1,"channel":"chat:sig","text":"sig"}`)
			if a := ackOrError(t, c, float64(1)); a["type"] != "ack" {
				t.Fatalf("chat with text \"sig\": %v", a)
			}
			c.Send(t, `{"type":"publish","id":2,"channel":"chat:sig","payload":{"sig":"not a signature"}}`)
			if a := ackOrError(t, c, float64(2)); a["type"] != "ack" {
				t.Fatalf("publish with payload.sig: %v", a)
			}
			c.Send(t, `{"type":"publish","id":3,"channel":"chat:sig","payload":[{"note":"\"sig\":"}]}`)
			if a := ackOrError(t, c, float64(3)); a["type"] != "ack" {
				t.Fatalf("publish with \"sig\" inside a string: %v", a)
			}
			// A top-level "sig" still makes it an envelope, which this one is not.
			c.Send(t, `{"type":"chat","id":4,"text":"x","sig":{"v":1}}`)
			if e := ackOrError(t, c, float64(4)); e["type"] != "error" || !strings.HasPrefix(e["code"].(string), "integrity_") {
				t.Fatalf("top-level sig: %v", e)
			}
		})
	}
}

// Item 2: with the endpoint's integrity off and a namespace set to pop, a token
// naming a key (cnf.jkt) whose holder proved nothing at the handshake can not
// subscribe, read history or presence in that namespace, and a server-side publish
// into it does not reach that connection; the key holder can.
func TestSec02PopNamespaceReadsProtected(t *testing.T) {
	const pubKey = "publish-key-publish-key-publish-key-0002"
	cfg := wsgatetest.Config()
	cfg.Channels.PublishAPIKeys = []string{pubKey}
	cfg.Channels.Namespaces["vault"] = config.Namespace{HistorySize: 10, HistoryTTL: time.Minute, Presence: true, Integrity: "pop"}
	s := wsgatetest.Start(t, cfg)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := client.NewPopSigner(priv, "owner", nil)
	if err != nil {
		t.Fatal(err)
	}
	claims := map[string]any{
		"cnf":      map[string]any{"jkt": signer.Thumbprint()},
		"channels": map[string]any{"sub": []string{"vault:*"}, "pub": []string{"vault:*"}},
	}
	tok := s.Token(t, "owner", claims)

	// The thief has the token only: it connects (the endpoint does not require pop)…
	thief, _, err := s.Dial(t, wsgatetest.DialOptions{Header: bearer(tok)})
	if err != nil {
		t.Fatalf("dial without proof: %v", err)
	}
	thief.Expect(t, "welcome", 5*time.Second)
	// …but reads nothing of the pop namespace.
	for i, m := range []string{
		`{"type":"subscribe","id":1,"channel":"vault:a"}`,
		`{"type":"history","id":2,"channel":"vault:a"}`,
		`{"type":"presence","id":3,"channel":"vault:a"}`,
	} {
		thief.Send(t, m)
		if e := ackOrError(t, thief, float64(i+1)); e["type"] != "error" || e["code"] != "integrity_unsigned" {
			t.Fatalf("%s: %v", m, e)
		}
	}

	// The key holder proves possession and subscribes with a signed request.
	u, _ := url.Parse(s.URL)
	q, err := signer.HandshakeParams(u.Host, u.EscapedPath())
	if err != nil {
		t.Fatal(err)
	}
	owner, _, err := s.Dial(t, wsgatetest.DialOptions{URL: s.URL + "?" + q.Encode(), Header: bearer(tok)})
	if err != nil {
		t.Fatalf("pop dial: %v", err)
	}
	w := owner.Expect(t, "welcome", 5*time.Second)
	signer.Bind(w["conn_id"].(string))
	owner.Send(t, seal(t, signer, `{"type":"subscribe","id":"s","channel":"vault:a"}`))
	if a := ackOrError(t, owner, "s"); a["type"] != "ack" {
		t.Fatalf("signed subscribe: %v", a)
	}
	owner.Send(t, seal(t, signer, `{"type":"presence","id":"p","channel":"vault:a"}`))
	owner.Expect(t, "presence", 5*time.Second)

	// A backend publish reaches the key holder and not the thief.
	if resp, b := httpDo(t, nil, "POST", s.AdminURL+"/v1/publish", "Bearer "+pubKey, `{"channel":"vault:a","payload":{"secret":1}}`); resp.StatusCode != 200 {
		t.Fatalf("publish API: %d %s", resp.StatusCode, b)
	}
	owner.Expect(t, "message", 5*time.Second)
	// The thief's next message is answered after anything queued before it, so a
	// pong proves no publication was pushed to it.
	thief.Send(t, `{"type":"ping","id":"last"}`)
	for {
		m := thief.Next(t, 5*time.Second)
		if m["type"] == "message" {
			t.Fatalf("publication reached the connection without proof: %v", m)
		}
		if m["type"] == "pong" {
			break
		}
	}
}

// Item 7: the public /readyz answers the status only; connection counts, Redis and
// upstream details (route names, errors) are on the admin listener.
func TestSec07ReadyzPublicStatusOnly(t *testing.T) {
	cfg := wsgatetest.Config()
	cfg.Routes = append(cfg.Routes, config.Route{Path: "/secret-route", Upstream: "ws://127.0.0.1:1/"})
	s := wsgatetest.Start(t, cfg)
	s.Connect(t, "counted", nil)
	get := func(c *http.Client, u string) (int, map[string]any) {
		t.Helper()
		resp, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		return resp.StatusCode, m
	}
	code, pub := get(s.HTTPClient(), s.HTTPURL+"/readyz")
	if code != 200 || len(pub) != 1 || pub["status"] == nil {
		t.Fatalf("public /readyz: %d %v, want the status only", code, pub)
	}
	_, adm := get(http.DefaultClient, s.AdminURL+"/readyz")
	if adm["status"] != pub["status"] || adm["connections"] == nil || adm["upstreams"] == nil {
		t.Fatalf("admin /readyz: %v, want status, connections and upstreams", adm)
	}
}

// recordingUpstream is an echo upstream that also records the query string each
// upgrade request carried.
type recordingUpstream struct {
	*echoUpstream
	URL     string
	mu      sync.Mutex
	queries []string
}

func newRecordingUpstream(t *testing.T) *recordingUpstream {
	t.Helper()
	r := &recordingUpstream{echoUpstream: newEchoUpstream(t)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.queries = append(r.queries, req.URL.RawQuery)
		r.mu.Unlock()
		r.echoUpstream.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	r.URL = "ws" + strings.TrimPrefix(srv.URL, "http") + "/upstream"
	return r
}

func (r *recordingUpstream) lastQuery() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.queries) == 0 {
		return "<none>"
	}
	return r.queries[len(r.queries)-1]
}

// Item 8: the upstream's X-Forwarded-Host is the route's configured host, signed
// with the identity; a route for any host sends none (never the client's Host).
func TestSec08ForwardedHostConfigured(t *testing.T) {
	up := newRecordingUpstream(t)
	cfg := wsgatetest.Config()
	cfg.Routes = []config.Route{
		{Path: "/any", Upstream: up.URL, IdentityKey: identityKey},
		{Path: "/named", Host: "localhost", Upstream: up.URL, IdentityKey: identityKey},
	}
	s := wsgatetest.Start(t, cfg)
	_, port, _ := net.SplitHostPort(s.Addr)
	tok := s.Token(t, "hosty", nil)
	dial := func(u string) http.Header {
		t.Helper()
		c, resp, err := s.Dial(t, wsgatetest.DialOptions{URL: u, Header: bearer(tok)})
		if err != nil {
			t.Fatalf("dial %s: %v (%v)", u, err, resp)
		}
		c.Send(t, `{"type":"ping","id":1}`)
		nextRaw(t, c, 5*time.Second)
		return up.lastHeader()
	}
	// Any host: the client's Host (here an IP and port it chose) is not passed on.
	hd := dial("wss://" + s.Addr + "/any")
	if v := hd.Values("X-Forwarded-Host"); len(v) != 0 {
		t.Fatalf("route without host sent X-Forwarded-Host %v", v)
	}
	// A configured host: sent as configured (no client port) and signed.
	hd = dial("wss://localhost:" + port + "/named")
	if hd.Get("X-Forwarded-Host") != "localhost" {
		t.Fatalf("X-Forwarded-Host %q, want the route's host", hd.Get("X-Forwarded-Host"))
	}
	id, err := upstream.VerifyIdentity(hd, []byte(identityKey), time.Minute)
	if err != nil || id.Host != "localhost" {
		t.Fatalf("identity %+v %v", id, err)
	}
	hd.Set("X-Forwarded-Host", "evil.example")
	if _, err := upstream.VerifyIdentity(hd, []byte(identityKey), time.Minute); !errors.Is(err, upstream.ErrBadSignature) {
		t.Fatalf("changed X-Forwarded-Host verified: %v", err)
	}
}

// Item 9: credential parameters are stripped from the upstream URL whatever their
// case, and a route's strip_params too.
func TestSec09StripCredentialCaseInsensitive(t *testing.T) {
	up := newRecordingUpstream(t)
	cfg := wsgatetest.Config()
	cfg.Routes = []config.Route{{Path: "/gw", Upstream: up.URL, IdentityKey: identityKey, StripParams: []string{"api_key"}}}
	s := wsgatetest.Start(t, cfg)
	tok := s.Token(t, "strip", nil)
	u := gwURL(s) + "?Token=" + url.QueryEscape(tok) + "&TICKET=t&Access_Token=a&API_KEY=k&api_key=k2&keep=1"
	c, resp, err := s.Dial(t, wsgatetest.DialOptions{URL: u, Header: bearer(tok)})
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	c.Send(t, `{"type":"ping","id":1}`)
	nextRaw(t, c, 5*time.Second)
	if q := up.lastQuery(); q != "keep=1" {
		t.Fatalf("upstream query %q, want only keep=1", q)
	}
}

// Item 11: issuing many tickets does not evict configured secrets from the log
// redactor (they are pinned), and a ticket leaves the set once redeemed.
func TestSec11RedactorPinsSecrets(t *testing.T) {
	red := redact.New(redact.Options{MaxSecrets: 64})
	cfg := wsgatetest.Config()
	cfg.Limits.HandshakeRate = config.RateLimit{Rate: 10000, Burst: 10000}
	cfg.Integrity.MasterKeys = []config.IntegrityKey{{ID: "k1", Secret: strings.Repeat("q", 40)}}
	cfg.Channels.PublishAPIKeys = []string{"publish-key-publish-key-publish-key-0003"}
	s := wsgatetest.Start(t, cfg, server.WithRedactor(red))
	configured := []string{cfg.Admin.Token, cfg.Integrity.MasterKeys[0].Secret, cfg.Channels.PublishAPIKeys[0], wsgatetest.Secret}
	var last string
	for range 200 { // each ticket also registers the user's hmac key: 400 secrets
		last, _ = ticketFor(t, s, "flood", nil)
	}
	for _, sec := range configured {
		if got := red.String("x " + sec); got != "x "+redact.Mask {
			t.Fatalf("configured secret %.6s… evicted by tickets: %q", sec, got)
		}
	}
	if !red.Contains(last) {
		t.Fatal("a live ticket is not masked")
	}
	c, _, err := s.Dial(t, wsgatetest.DialOptions{URL: s.URL + "?ticket=" + last})
	if err != nil {
		t.Fatalf("redeem: %v", err)
	}
	c.Expect(t, "welcome", 5*time.Second)
	if red.Contains(last) {
		t.Fatal("a redeemed ticket is still in the redactor's set")
	}
}

// Item 14: the log and audit attribute naming the credential's source (bearer,
// ticket, …) is kept; credential values stay redacted.
func TestSec14CredentialSourceLogged(t *testing.T) {
	cfg := wsgatetest.Config()
	auditPath := filepath.Join(t.TempDir(), "audit.jsonl")
	cfg.Audit.Path = auditPath
	s := wsgatetest.Start(t, cfg)
	tok := s.Token(t, "sourced", nil)
	c, _, err := s.Dial(t, wsgatetest.DialOptions{Header: bearer(tok)})
	if err != nil {
		t.Fatal(err)
	}
	c.Expect(t, "welcome", 5*time.Second)
	ticket, _ := ticketFor(t, s, "sourced", nil)
	c2, _, err := s.Dial(t, wsgatetest.DialOptions{URL: s.URL + "?ticket=" + ticket})
	if err != nil {
		t.Fatal(err)
	}
	c2.Expect(t, "welcome", 5*time.Second)
	for _, src := range []string{"bearer", "ticket"} {
		if !s.Logs.Contains(`"credential_source":"`+src+`"`, 5*time.Second) {
			t.Fatalf("process log lacks credential_source %s:\n%s", src, s.Logs.String())
		}
	}
	audit := stoppedAudit(t, s, auditPath)
	if !strings.Contains(audit, `"credential_source":"bearer"`) || !strings.Contains(audit, `"credential_source":"ticket"`) {
		t.Fatalf("audit lacks the credential sources:\n%s", audit)
	}
	for _, secret := range []string{tok, ticket} {
		if strings.Contains(s.Logs.String(), secret) || strings.Contains(audit, secret) {
			t.Fatal("a credential value reached the log or the audit file")
		}
	}
}

// Item 15: the ban API refuses subjects with control characters (400), on ban and
// unban, and the ban list stays free of them.
func TestSec15BanSubjectControlChars(t *testing.T) {
	s := wsgatetest.Start(t, adminTestConfig())
	tok := s.Cfg.Admin.Token
	for _, body := range []map[string]any{
		{"user": "alice\nuser:bob"},
		{"user": "nul\x00byte"},
		{"user": "c1\u0085next-line"},
		{"user": "sep\u2028arator"},
		{"subject": "user:esc\x1b[31mred"},
	} {
		if code, out := adminCall(t, s, "POST", "/api/v1/bans", tok, body); code != http.StatusBadRequest {
			t.Errorf("ban %q: %d %v, want 400", body, code, out)
		}
	}
	if code, out := adminCall(t, s, "DELETE", "/api/v1/bans/user:a%0Ab", tok, nil); code != http.StatusBadRequest {
		t.Errorf("unban with a newline: %d %v, want 400", code, out)
	}
	if code, out := adminCall(t, s, "POST", "/api/v1/bans", tok, map[string]any{"user": "plain-älice", "ttl": "1m"}); code/100 != 2 {
		t.Fatalf("ordinary ban: %d %v", code, out)
	}
	code, out := adminCall(t, s, "GET", "/api/v1/bans", tok, nil)
	if code != 200 {
		t.Fatalf("list: %d", code)
	}
	b, _ := json.Marshal(out)
	if strings.Contains(string(b), `\n`) || strings.Contains(string(b), `\u0000`) || !strings.Contains(string(b), "plain-älice") {
		t.Fatalf("ban list %s", b)
	}
}
