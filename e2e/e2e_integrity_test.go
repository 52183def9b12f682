package e2e

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/client"
	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/conn/integrity"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest"
)

func integrityServer(t *testing.T, mode string) *wsgatetest.Server {
	cfg := wsgatetest.Config()
	cfg.Integrity.Mode = mode
	cfg.Integrity.MasterKeys = []config.IntegrityKey{{ID: "k1", Secret: strings.Repeat("m", 40)}}
	cfg.Abuse.MaxStrikes = 100
	return wsgatetest.Start(t, cfg)
}

// hmacClient gets a ticket (which carries the per-user signing key), connects with
// it and binds a signer to the connection id from the welcome.
func hmacClient(t *testing.T, s *wsgatetest.Server, sub string) (*wsgatetest.Client, *client.Signer) {
	t.Helper()
	return signedClientWith(t, s, sub, nil)
}

// signedClientWith is hmacClient for a token with claims.
func signedClientWith(t *testing.T, s *wsgatetest.Server, sub string, claims map[string]any) (*wsgatetest.Client, *client.Signer) {
	t.Helper()
	ticket, ikey := ticketFor(t, s, sub, claims)
	kid, key, err := client.ParseHMACKey(ikey)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := client.NewHMACSigner(kid, key, sub, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := s.Dial(t, wsgatetest.DialOptions{URL: s.URL + "?ticket=" + ticket})
	if err != nil {
		t.Fatal(err)
	}
	w := c.Expect(t, "welcome", 5*time.Second)
	signer.Bind(w["conn_id"].(string))
	return c, signer
}

func seal(t *testing.T, s *client.Signer, msg string) string {
	t.Helper()
	b, err := s.Seal([]byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestIntegrityHMAC(t *testing.T) {
	s := integrityServer(t, "hmac")
	c, signer := hmacClient(t, s, "signer")

	// A signed message is accepted.
	env := seal(t, signer, `{"type":"ping","id":1}`)
	c.Send(t, env)
	if p := c.Expect(t, "pong", 5*time.Second); p["ref"] != float64(1) {
		t.Fatalf("pong %v", p)
	}
	// Replayed on the same connection.
	c.Send(t, env)
	expectError(t, c, "integrity_replay")
	// Unsigned.
	c.Send(t, `{"type":"chat","text":"hi"}`)
	expectError(t, c, "integrity_unsigned")
	// Tampered body.
	var e map[string]any
	_ = json.Unmarshal([]byte(seal(t, signer, `{"type":"ping","id":2}`)), &e)
	sig := e["sig"].(map[string]any)
	body, err := integrity.UnB64(sig["body"].(string))
	if err != nil {
		t.Fatal(err)
	}
	sig["body"] = integrity.B64([]byte(strings.Replace(string(body), `"id":2`, `"id":9`, 1)))
	tampered, _ := json.Marshal(e)
	c.Send(t, string(tampered))
	expectError(t, c, "integrity_bad_signature")
	// Tampered seq.
	_ = json.Unmarshal([]byte(seal(t, signer, `{"type":"ping","id":3}`)), &e)
	e["sig"].(map[string]any)["seq"] = 999
	b, _ := json.Marshal(e)
	c.Send(t, string(b))
	expectError(t, c, "integrity_bad_signature")
	// Reordered: seal two, send the later first.
	first, second := seal(t, signer, `{"type":"ping","id":4}`), seal(t, signer, `{"type":"ping","id":5}`)
	c.Send(t, second)
	c.Expect(t, "pong", 5*time.Second)
	c.Send(t, first)
	expectError(t, c, "integrity_bad_seq")
	// Replay on another connection of the same user, and after reconnect.
	c2, _ := hmacClient(t, s, "signer")
	c2.Send(t, env)
	expectError(t, c2, "integrity_bad_signature") // bound to the first connection's id
}

func ticketKey(t *testing.T, s *wsgatetest.Server, sub string) (string, []byte) {
	t.Helper()
	_, ikey := ticketFor(t, s, sub, nil)
	kid, key, err := client.ParseHMACKey(ikey)
	if err != nil {
		t.Fatal(err)
	}
	return kid, key
}

func TestIntegrityStaleTimestamps(t *testing.T) {
	s := integrityServer(t, "hmac")
	c, _ := hmacClient(t, s, "clock")
	kid, key := ticketKey(t, s, "clock")
	for _, skew := range []time.Duration{-2 * time.Minute, 2 * time.Minute} {
		sk := skew
		signer, err := client.NewHMACSigner(kid, key, "clock", &client.Options{Now: func() time.Time { return time.Now().Add(sk) }})
		if err != nil {
			t.Fatal(err)
		}
		signer.Bind(connIDOf(t, s, c))
		c.Send(t, seal(t, signer, `{"type":"ping"}`))
		expectError(t, c, "integrity_stale")
	}
}

// connIDOf finds the connection id of the test's only "clock" session.
func connIDOf(t *testing.T, s *wsgatetest.Server, _ *wsgatetest.Client) string {
	t.Helper()
	id := ""
	s.Server.RangeSessions(func(connID, user string) {
		if user == "clock" {
			id = connID
		}
	})
	if id == "" {
		t.Fatal("session not found")
	}
	return id
}

func TestIntegrityPopHandshake(t *testing.T) {
	s := integrityServer(t, "pop")
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := client.NewPopSigner(priv, "popper", nil)
	if err != nil {
		t.Fatal(err)
	}
	thief, _ := client.NewPopSigner(other, "popper", nil)
	tok := s.Token(t, "popper", map[string]any{"cnf": map[string]any{"jkt": signer.Thumbprint()}})
	u, _ := url.Parse(s.URL)
	dialWith := func(sg *client.Signer) (*wsgatetest.Client, *http.Response, error) {
		q, err := sg.HandshakeParams(u.Host, u.EscapedPath())
		if err != nil {
			t.Fatal(err)
		}
		return s.Dial(t, wsgatetest.DialOptions{URL: s.URL + "?" + q.Encode(), Header: bearer(tok)})
	}
	// The stolen token with another key fails at the handshake.
	if _, resp, err := dialWith(thief); err == nil || resp == nil || resp.StatusCode != 401 {
		t.Fatalf("token used with a different key: err=%v", err)
	}
	// Without any proof.
	expectRefused(t, s, wsgatetest.DialOptions{Header: bearer(tok)}, 401, "")
	// The holder connects and signs messages.
	c, _, err := dialWith(signer)
	if err != nil {
		t.Fatalf("pop handshake: %v", err)
	}
	w := c.Expect(t, "welcome", 5*time.Second)
	signer.Bind(w["conn_id"].(string))
	c.Send(t, seal(t, signer, `{"type":"ping","id":"p"}`))
	c.Expect(t, "pong", 5*time.Second)
	// A message signed by the thief's key on the holder's connection is refused.
	thief.Bind(w["conn_id"].(string))
	c.Send(t, seal(t, thief, `{"type":"ping","id":"x"}`))
	expectError(t, c, "integrity_bad_signature")
}

func TestServerKeysAndClientModule(t *testing.T) {
	s := wsgatetest.Start(t, nil)
	hc := s.HTTPClient()
	for path, ctype := range map[string]string{"/.well-known/wsgate-keys.json": "json", "/client/wsgate.js": "javascript"} {
		resp, b := httpDo(t, hc, "GET", s.HTTPURL+path, "", "")
		if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), ctype) || len(b) == 0 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
}

// Per-namespace integrity: the endpoint accepts unsigned messages, but publications
// into a namespace that requires hmac must be signed, and its output is signed by
// the server (verifiable with the JWKS at /.well-known/wsgate-keys.json).
func TestNamespaceIntegrityAndSignedOutput(t *testing.T) {
	cfg := wsgatetest.Config()
	cfg.Integrity.MasterKeys = []config.IntegrityKey{{ID: "k1", Secret: strings.Repeat("m", 40)}}
	cfg.Channels.Namespaces["secure"] = config.Namespace{ClientPublish: true, HistorySize: 10, HistoryTTL: time.Minute, Integrity: "hmac", SignOutput: true}
	s := wsgatetest.Start(t, cfg)
	perms := map[string]any{"channels": map[string]any{"sub": []string{"secure:*"}, "pub": []string{"secure:*"}}}
	// Reading the namespace needs a signed subscribe too (issue 13 item 2).
	sub := s.Connect(t, "reader", perms)
	sub.SendJSON(t, map[string]any{"type": "subscribe", "id": "u", "channel": "secure:vault"})
	expectError(t, sub, "integrity_unsigned")
	sub, readerSigner := signedClientWith(t, s, "reader", perms)
	sub.Send(t, seal(t, readerSigner, `{"type":"subscribe","id":"s","channel":"secure:vault"}`))
	if a := sub.Expect(t, "ack", 5*time.Second); a["ref"] != "s" {
		t.Fatalf("signed subscribe: %v", a)
	}

	w, signer := signedClientWith(t, s, "writer", perms)

	w.SendJSON(t, map[string]any{"type": "publish", "id": 1, "channel": "secure:vault", "payload": map[string]any{"v": 1}})
	expectError(t, w, "integrity_unsigned")
	w.Send(t, seal(t, signer, `{"type":"publish","id":2,"channel":"secure:vault","payload":{"v":2}}`))
	if a := w.Expect(t, "ack", 5*time.Second); a["ref"] != float64(2) {
		t.Fatalf("ack %v", a)
	}
	// The subscriber gets a server-signed envelope around the message.
	var raw []byte
	select {
	case raw = <-sub.Msgs:
	case <-time.After(5 * time.Second):
		t.Fatal("no push")
	}
	hc := s.HTTPClient()
	kr, err := hc.Get(s.HTTPURL + "/.well-known/wsgate-keys.json")
	if err != nil {
		t.Fatal(err)
	}
	jwks, _ := io.ReadAll(kr.Body)
	kr.Body.Close()
	body, err := client.VerifyServer(jwks, raw)
	if err != nil {
		t.Fatalf("server signature: %v (%s)", err, raw)
	}
	if !strings.Contains(string(body), `"type":"message"`) || !strings.Contains(string(body), `"v":2`) {
		t.Fatalf("signed body %s", body)
	}
	// Tampering with the signed push is detected.
	bad := []byte(strings.Replace(string(raw), `"mac":"`, `"mac":"AA`, 1))
	if _, err := client.VerifyServer(jwks, bad); err == nil {
		t.Fatal("tampered server message verified")
	}
	// The chat namespace is unaffected: unsigned publications still work there.
	plain := s.Connect(t, "plain", chatPerms)
	plain.SendJSON(t, map[string]any{"type": "publish", "id": 3, "channel": "chat:open", "payload": 1})
	plain.Expect(t, "ack", 5*time.Second)
}
