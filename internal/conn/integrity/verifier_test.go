package integrity_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/client"
	"github.com/wsgate/wsgate/internal/conn/integrity"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/fakeclock"
)

type fixture struct {
	t     *testing.T
	clk   *fakeclock.Clock
	ring  *integrity.KeyRing
	cache *integrity.MemoryReplayCache
	ver   *integrity.Verifier
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, clk: fakeclock.New(time.UnixMilli(vecTS))}
	var err error
	f.ring, err = integrity.NewKeyRing(integrity.MasterKey{ID: "k2", Secret: []byte(strings.Repeat("B", 32))},
		integrity.MasterKey{ID: "k1", Secret: []byte(strings.Repeat("A", 32))})
	if err != nil {
		t.Fatal(err)
	}
	f.cache = integrity.NewMemoryReplayCache(10000)
	f.ver, err = integrity.NewVerifier(integrity.Options{Keys: f.ring, Replay: f.cache, Now: f.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) hmacSigner(subject string) *client.Signer {
	f.t.Helper()
	ck, err := f.ring.Issue(subject)
	if err != nil {
		f.t.Fatal(err)
	}
	key, _ := integrity.UnB64(ck.Key)
	s, err := client.NewHMACSigner(ck.Kid, key, subject, &client.Options{Now: f.clk.Now})
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

// hmacConn is a signer for subject bound to connID and the verifier's state
// for that connection.
func (f *fixture) hmacConn(subject, connID string) (*client.Signer, *integrity.ConnIntegrity) {
	f.t.Helper()
	s := f.hmacSigner(subject)
	s.Bind(connID)
	st, err := f.ver.NewHMACConn(subject, connID)
	if err != nil {
		f.t.Fatal(err)
	}
	return s, st
}

func (f *fixture) seal(s *client.Signer, msg string) []byte {
	f.t.Helper()
	b, err := s.Seal([]byte(msg))
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

func wantCode(t *testing.T, err error, c integrity.Code) {
	t.Helper()
	if integrity.CodeOf(err) != c {
		t.Fatalf("got %v, want code %q", err, c)
	}
}

const msgA = `{"type":"chat.send","text":"a"}`

func TestHMACRoundTripAndReplay(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	s, st := f.hmacConn("alice", "c1")
	m1 := f.seal(s, msgA)
	body, typ, err := f.ver.Open(ctx, st, m1)
	if err != nil || string(body) != msgA || typ != "chat.send" {
		t.Fatalf("Open = %q %q %v", body, typ, err)
	}
	// Same connection.
	_, _, err = f.ver.Open(ctx, st, m1)
	wantCode(t, err, integrity.CodeReplay)
	if !errors.Is(err, integrity.ErrReplay) {
		t.Fatal("errors.Is(ErrReplay) false")
	}
	// Another connection of the same subject with the same conn id binding
	// (shared cache catches it even if the binding matched).
	st2, _ := f.ver.NewHMACConn("alice", "c1")
	_, _, err = f.ver.Open(ctx, st2, m1)
	wantCode(t, err, integrity.CodeReplay)
	// Another connection id: binding breaks the signature.
	st3, _ := f.ver.NewHMACConn("alice", "c2")
	_, _, err = f.ver.Open(ctx, st3, m1)
	wantCode(t, err, integrity.CodeBadSignature)
	// After reconnect the signer rebinds; fresh messages pass, the old one does not.
	s.Bind("c2")
	if _, _, err := f.ver.Open(ctx, st3, f.seal(s, msgA)); err != nil {
		t.Fatal(err)
	}
	_, _, err = f.ver.Open(ctx, st3, m1)
	wantCode(t, err, integrity.CodeBadSignature)
	// Another user's connection.
	st4, _ := f.ver.NewHMACConn("bob", "c1")
	_, _, err = f.ver.Open(ctx, st4, m1)
	wantCode(t, err, integrity.CodeBadSignature)
}

func TestReplayAcrossVerifiersSharingCache(t *testing.T) {
	f := newFixture(t)
	// A second "node" with its own Verifier but the same cache.
	ver2, _ := integrity.NewVerifier(integrity.Options{Keys: f.ring, Replay: f.cache, Now: f.clk.Now})
	s := f.hmacSigner("alice")
	s.Bind("c1")
	m := f.seal(s, msgA)
	a, _ := f.ver.NewHMACConn("alice", "c1")
	b, _ := ver2.NewHMACConn("alice", "c1")
	if _, _, err := f.ver.Open(context.Background(), a, m); err != nil {
		t.Fatal(err)
	}
	_, _, err := ver2.Open(context.Background(), b, m)
	wantCode(t, err, integrity.CodeReplay)
}

func TestSeqOrderAndTS(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	s, st := f.hmacConn("alice", "c1")
	m1, m2, m3 := f.seal(s, msgA), f.seal(s, msgA), f.seal(s, msgA)
	if _, _, err := f.ver.Open(ctx, st, m2); err != nil {
		t.Fatal(err)
	}
	_, _, err := f.ver.Open(ctx, st, m1) // reordered
	wantCode(t, err, integrity.CodeBadSeq)
	if _, _, err := f.ver.Open(ctx, st, m3); err != nil {
		t.Fatal(err)
	}
	if st.LastSeq() != 3 {
		t.Fatalf("LastSeq = %d", st.LastSeq())
	}

	// Stale: signed now, delivered 31 s later.
	old := f.seal(s, msgA)
	f.clk.Advance(31 * time.Second)
	_, _, err = f.ver.Open(ctx, st, old)
	wantCode(t, err, integrity.CodeStale)
	// Future: signer clock 31 s ahead.
	s2, _ := client.NewHMACSigner(f.ring.CurrentID(), mustKey(f.ring, "alice"), "alice",
		&client.Options{Now: func() time.Time { return f.clk.Now().Add(31 * time.Second) }})
	s2.Bind("c1")
	fut, _ := s2.Seal([]byte(msgA))
	_, _, err = f.ver.Open(ctx, st, fut)
	wantCode(t, err, integrity.CodeStale)
	// Within the window is fine.
	s3, _ := client.NewHMACSigner(f.ring.CurrentID(), mustKey(f.ring, "alice"), "alice",
		&client.Options{Now: func() time.Time { return f.clk.Now().Add(29 * time.Second) }})
	s3.Bind("c1")
	for range 10 { // seq restarts at 1 in s3: skip past the connection's last seq
		_, _ = s3.Seal([]byte(msgA))
	}
	ok, _ := s3.Seal([]byte(msgA))
	if _, _, err := f.ver.Open(ctx, st, ok); err != nil {
		t.Fatal(err)
	}
}

func mustKey(r *integrity.KeyRing, subject string) []byte {
	ck, _ := r.Issue(subject)
	k, _ := integrity.UnB64(ck.Key)
	return k
}

// reseal rebuilds an envelope with one field changed but the original mac.
func tamper(t *testing.T, raw []byte, mut func(e *integrity.Envelope)) []byte {
	t.Helper()
	e, err := integrity.ParseEnvelope(raw)
	if err != nil {
		t.Fatal(err)
	}
	mut(e)
	return e.Marshal()
}

func TestTamper(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	s := f.hmacSigner("alice")
	s.Bind("c1")
	cases := map[string]func(e *integrity.Envelope){
		"payload": func(e *integrity.Envelope) { e.Body = []byte(`{"type":"chat.send","text":"b"}`) },
		"type": func(e *integrity.Envelope) {
			e.Type = "chat.kick"
			e.Body = []byte(`{"type":"chat.kick","text":"a"}`)
		},
		"seq":   func(e *integrity.Envelope) { e.Seq += 5 },
		"ts":    func(e *integrity.Envelope) { e.TS-- },
		"nonce": func(e *integrity.Envelope) { e.Nonce[0] ^= 1 },
		"kid":   func(e *integrity.Envelope) { e.Kid = "k1" },
		"mac":   func(e *integrity.Envelope) { e.MAC[3] ^= 1 },
	}
	for name, mut := range cases {
		t.Run(name, func(t *testing.T) {
			st, _ := f.ver.NewHMACConn("alice", "c1")
			_, _, err := f.ver.Open(ctx, st, tamper(t, f.seal(s, msgA), mut))
			wantCode(t, err, integrity.CodeBadSignature)
		})
	}
	st, _ := f.ver.NewHMACConn("alice", "c1")
	_, _, err := f.ver.Open(ctx, st, tamper(t, f.seal(s, msgA), func(e *integrity.Envelope) { e.Type = "chat.kick" }))
	wantCode(t, err, integrity.CodeTypeMismatch)
	_, _, err = f.ver.Open(ctx, st, []byte(msgA))
	wantCode(t, err, integrity.CodeUnsigned)
	_, _, err = f.ver.Open(ctx, st, []byte(`{"type":"x","sig":"nope"}`))
	wantCode(t, err, integrity.CodeBadEnvelope)
	_, _, err = f.ver.Open(ctx, st, []byte("\xff{}"))
	wantCode(t, err, integrity.CodeBadEnvelope)
	// An hmac envelope on a pop connection and vice versa.
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	pk, _ := integrity.PublicKeyFromEd25519(priv.Public().(ed25519.PublicKey))
	pst, _ := f.ver.NewPopConn("alice", "c1", pk)
	_, _, err = f.ver.Open(ctx, pst, f.seal(s, msgA))
	wantCode(t, err, integrity.CodeBadSignature)
}

func TestKeyRotation(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	// Client got a key under k1 before the rotation.
	oldRing, _ := integrity.NewKeyRing(integrity.MasterKey{ID: "k1", Secret: []byte(strings.Repeat("A", 32))})
	s, _ := client.NewHMACSigner("k1", mustKey(oldRing, "alice"), "alice", &client.Options{Now: f.clk.Now})
	s.Bind("c1")
	st, _ := f.ver.NewHMACConn("alice", "c1")
	if _, _, err := f.ver.Open(ctx, st, f.seal(s, msgA)); err != nil {
		t.Fatalf("old-generation key rejected: %v", err)
	}
	// k1 retired: the same connection's next message fails.
	newRing, _ := integrity.NewKeyRing(integrity.MasterKey{ID: "k2", Secret: []byte(strings.Repeat("B", 32))})
	f.ver.SetKeyRing(newRing)
	_, _, err := f.ver.Open(ctx, st, f.seal(s, msgA))
	wantCode(t, err, integrity.CodeBadSignature)
}

func popSigner(t *testing.T, priv crypto.Signer, clk *fakeclock.Clock) *client.Signer {
	t.Helper()
	s, err := client.NewPopSigner(priv, "alice", &client.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPop(t *testing.T) {
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for name, priv := range map[string]crypto.Signer{"ed25519": ed, "p256": ec} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			ctx := context.Background()
			s := popSigner(t, priv, f.clk)
			jkt := s.Thumbprint() // what the token's cnf.jkt carries

			q, err := s.HandshakeParams("WS.example.com", "/ws")
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest("GET", "http://ws.example.com/ws?"+q.Encode(), nil)
			p, err := integrity.PopParamsFromRequest(r)
			if err != nil {
				t.Fatal(err)
			}
			pk, err := f.ver.VerifyPopHandshake(ctx, p, jkt, r.Host, r.URL.EscapedPath())
			if err != nil {
				t.Fatal(err)
			}
			// The same proof cannot be used twice.
			_, err = f.ver.VerifyPopHandshake(ctx, p, jkt, r.Host, r.URL.EscapedPath())
			wantCode(t, err, integrity.CodeReplay)
			// Nor for another path.
			q2, _ := s.HandshakeParams("ws.example.com", "/ws")
			p2, _ := integrity.PopParamsFromRequest(httptest.NewRequest("GET", "http://ws.example.com/admin?"+q2.Encode(), nil))
			_, err = f.ver.VerifyPopHandshake(ctx, p2, jkt, "ws.example.com", "/admin")
			wantCode(t, err, integrity.CodeBadSignature)

			st, _ := f.ver.NewPopConn("alice", "c9", pk)
			s.Bind("c9")
			m := f.seal(s, msgA)
			if _, _, err := f.ver.Open(ctx, st, m); err != nil {
				t.Fatal(err)
			}
			_, _, err = f.ver.Open(ctx, st, m)
			wantCode(t, err, integrity.CodeReplay)
			_, _, err = f.ver.Open(ctx, st, tamper(t, f.seal(s, msgA), func(e *integrity.Envelope) { e.Seq++ }))
			wantCode(t, err, integrity.CodeBadSignature)

			// Stolen token (jkt) used with the attacker's own key: refused at the handshake.
			_, other, _ := ed25519.GenerateKey(rand.Reader)
			as := popSigner(t, other, f.clk)
			aq, _ := as.HandshakeParams("ws.example.com", "/ws")
			ap, _ := integrity.PopParamsFromRequest(httptest.NewRequest("GET", "http://ws.example.com/ws?"+aq.Encode(), nil))
			_, err = f.ver.VerifyPopHandshake(ctx, ap, jkt, "ws.example.com", "/ws")
			wantCode(t, err, integrity.CodeBadSignature)
			// Stolen token + the victim's public key but a proof by another key.
			ap.Key = q.Get(integrity.ParamPopKey)
			_, err = f.ver.VerifyPopHandshake(ctx, ap, jkt, "ws.example.com", "/ws")
			wantCode(t, err, integrity.CodeBadSignature)
			// And its messages fail on the victim's connection.
			as.Bind("c9")
			_, _, err = f.ver.Open(ctx, st, f.seal(as, msgA))
			wantCode(t, err, integrity.CodeBadSignature)
			// Stale handshake.
			f.clk.Advance(time.Minute)
			q3, _ := s.HandshakeParams("ws.example.com", "/ws")
			f.clk.Advance(time.Minute)
			p3, _ := integrity.PopParamsFromRequest(httptest.NewRequest("GET", "http://ws.example.com/ws?"+q3.Encode(), nil))
			_, err = f.ver.VerifyPopHandshake(ctx, p3, jkt, "ws.example.com", "/ws")
			wantCode(t, err, integrity.CodeStale)
		})
	}
}

func TestPopParamsFromRequest(t *testing.T) {
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	s, _ := client.NewPopSigner(ed, "alice", nil)
	q, _ := s.HandshakeParams("h", "/ws")
	// Header form.
	r := httptest.NewRequest("GET", "http://h/ws", nil)
	r.Header.Set("Wsgate-Pop-Key", q.Get("pop_key"))
	r.Header.Set("Wsgate-Pop-Ts", q.Get("pop_ts"))
	r.Header.Set("Wsgate-Pop-Nonce", q.Get("pop_nonce"))
	r.Header.Set("Wsgate-Pop-Proof", q.Get("pop_proof"))
	if _, err := integrity.PopParamsFromRequest(r); err != nil {
		t.Fatal(err)
	}
	// Disagreeing query and header.
	r2 := httptest.NewRequest("GET", "http://h/ws?"+q.Encode(), nil)
	r2.Header.Set("Wsgate-Pop-Ts", "1")
	_, err := integrity.PopParamsFromRequest(r2)
	wantCode(t, err, integrity.CodeBadEnvelope)
	// Missing.
	_, err = integrity.PopParamsFromRequest(httptest.NewRequest("GET", "http://h/ws", nil))
	wantCode(t, err, integrity.CodeBadEnvelope)
}

func TestCheckHandshakeKey(t *testing.T) {
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	pk, _ := integrity.PublicKeyFromEd25519(ed.Public().(ed25519.PublicKey))
	if _, err := integrity.CheckHandshakeKey(integrity.B64(pk.JWK()), pk.Thumbprint()); err != nil {
		t.Fatal(err)
	}
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	opk, _ := integrity.PublicKeyFromEd25519(other.Public().(ed25519.PublicKey))
	_, err := integrity.CheckHandshakeKey(integrity.B64(opk.JWK()), pk.Thumbprint())
	wantCode(t, err, integrity.CodeBadSignature)
	// WebCrypto-style export with extra members is fine.
	extra := strings.Replace(string(pk.JWK()), `{`, `{"ext":true,"key_ops":["verify"],"alg":"Ed25519",`, 1)
	if _, err := integrity.CheckHandshakeKey(integrity.B64([]byte(extra)), pk.Thumbprint()); err != nil {
		t.Fatal(err)
	}
	for name, j := range map[string]string{
		"private":  strings.Replace(string(pk.JWK()), `{`, `{"d":"AAAA",`, 1),
		"dup":      strings.Replace(string(pk.JWK()), `{`, `{"x":"AAAA",`, 1),
		"rsa":      `{"kty":"RSA","n":"AQAB","e":"AQAB"}`,
		"offcurve": `{"kty":"EC","crv":"P-256","x":"` + integrity.B64(make([]byte, 32)) + `","y":"` + integrity.B64(make([]byte, 32)) + `"}`,
	} {
		_, err := integrity.CheckHandshakeKey(integrity.B64([]byte(j)), pk.Thumbprint())
		if integrity.CodeOf(err) != integrity.CodeBadEnvelope {
			t.Errorf("%s: %v", name, err)
		}
	}
	_, err = integrity.CheckHandshakeKey("!!", pk.Thumbprint())
	wantCode(t, err, integrity.CodeBadEnvelope)
}

type failingCache struct{}

func (failingCache) Seen(context.Context, string, time.Duration) (bool, error) {
	return false, errors.New("redis down")
}

func TestReplayCacheFailsClosed(t *testing.T) {
	f := newFixture(t)
	ver, _ := integrity.NewVerifier(integrity.Options{Keys: f.ring, Replay: failingCache{}, Now: f.clk.Now})
	s := f.hmacSigner("alice")
	s.Bind("c1")
	st, _ := ver.NewHMACConn("alice", "c1")
	_, _, err := ver.Open(context.Background(), st, f.seal(s, msgA))
	wantCode(t, err, integrity.CodeInternal)
	if st.LastSeq() != 0 {
		t.Fatal("seq advanced on a rejected message")
	}
	// Full cache.
	small := integrity.NewMemoryReplayCache(1)
	ver2, _ := integrity.NewVerifier(integrity.Options{Keys: f.ring, Replay: small, Now: f.clk.Now})
	st2, _ := ver2.NewHMACConn("alice", "c1")
	var full bool
	for range 100 {
		_, _, err := ver2.Open(context.Background(), st2, f.seal(s, msgA))
		if integrity.CodeOf(err) == integrity.CodeInternal {
			full = true
			break
		}
	}
	if !full {
		t.Fatal("a full cache never refused")
	}
}

func TestMemoryReplayCache(t *testing.T) {
	ctx := context.Background()
	c := integrity.NewMemoryReplayCache(64) // 2 per shard
	dup, err := c.Seen(ctx, "a", time.Second)
	if dup || err != nil {
		t.Fatal(dup, err)
	}
	dup, err = c.Seen(ctx, "a", time.Second)
	if !dup || err != nil {
		t.Fatal(dup, err)
	}
	// Flood: never more than capacity, refusals are errors, never silent accepts.
	var refused int
	for i := range 10000 {
		dup, err := c.Seen(ctx, "k"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+time.Duration(i).String(), time.Hour)
		if err != nil {
			if !dup || !errors.Is(err, integrity.ErrReplayCacheFull) {
				t.Fatal("refusal without dup=true")
			}
			refused++
		}
	}
	if refused == 0 || c.Len() > 64 {
		t.Fatalf("refused=%d len=%d", refused, c.Len())
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if dup, err := c.Seen(cctx, "zz", time.Second); err == nil || !dup {
		t.Fatal("cancelled context accepted")
	}
}

func TestServerSigner(t *testing.T) {
	cur, _ := integrity.GenerateSigningKey("s2")
	old, _ := integrity.GenerateSigningKey("s1")
	ss, err := integrity.NewServerSigner(cur, old)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"type":"chat.msg","text":"hi"}`)
	env := ss.Sign(body)
	got, err := client.VerifyServer(ss.JWKS(), env)
	if err != nil || string(got) != string(body) {
		t.Fatalf("VerifyServer = %q %v", got, err)
	}
	if _, err := client.VerifyServerAt(ss.JWKS(), env, time.Now().Add(time.Hour), 30*time.Second); client.CodeOf(err) != "stale" {
		t.Fatalf("VerifyServerAt stale: %v", err)
	}
	// Signed before rotation by s1, still verifies with the published JWKS.
	oldSigner, _ := integrity.NewServerSigner(old)
	if _, err := client.VerifyServer(ss.JWKS(), oldSigner.Sign(body)); err != nil {
		t.Fatal(err)
	}
	// Tampered body.
	e, _ := integrity.ParseServerEnvelope(env)
	e.Body = []byte(`{"type":"chat.msg","text":"ho"}`)
	if _, err := client.VerifyServer(ss.JWKS(), e.Marshal()); client.CodeOf(err) != "bad_signature" {
		t.Fatalf("tampered: %v", err)
	}
	// Unknown key.
	stranger, _ := integrity.GenerateSigningKey("s1")
	st, _ := integrity.NewServerSigner(stranger)
	if _, err := client.VerifyServer(ss.JWKS(), st.Sign(body)); client.CodeOf(err) != "bad_signature" {
		t.Fatalf("stranger: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	if _, err := integrity.NewKeyRing(integrity.MasterKey{ID: "k", Secret: []byte("short")}); err == nil {
		t.Error("short master key accepted")
	}
	if _, err := integrity.NewKeyRing(integrity.MasterKey{ID: "k", Secret: make([]byte, 32)}, integrity.MasterKey{ID: "k", Secret: make([]byte, 32)}); err == nil {
		t.Error("duplicate kid accepted")
	}
	if _, err := integrity.NewVerifier(integrity.Options{}); err == nil {
		t.Error("verifier without replay cache accepted")
	}
	if m, err := integrity.ParseMode(""); err != nil || m != integrity.ModeOff {
		t.Error("ParseMode empty")
	}
	if _, err := integrity.ParseMode("sha1"); err == nil {
		t.Error("ParseMode accepted junk")
	}
}
