package wsgate_test

// Regression tests for issue 13 (outside security review), one per item, named
// TestSecNN… after the item's number. All run over real sockets.

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
	"github.com/wsgate/wsgate/internal/wsgatetest"
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
			c := s.Connect(t, "sigfan", chatPerms)
			subscribe(t, c, "chat:sig", nil)
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
	req, _ := http.NewRequest("POST", s.AdminURL+"/v1/publish", strings.NewReader(`{"channel":"vault:a","payload":{"secret":1}}`))
	req.Header.Set("Authorization", "Bearer "+pubKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
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
