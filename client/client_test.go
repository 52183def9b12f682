package client_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"sync"
	"testing"

	"github.com/wsgate/wsgate/client"
	"github.com/wsgate/wsgate/internal/conn/integrity"
)

func TestParseHMACKey(t *testing.T) {
	ring, _ := integrity.NewKeyRing(integrity.MasterKey{ID: "k1", Secret: make([]byte, 32)})
	ck, _ := ring.Issue("alice")
	b, _ := json.Marshal(ck)
	kid, key, err := client.ParseHMACKey(b)
	if err != nil || kid != "k1" || len(key) != 32 {
		t.Fatalf("ParseHMACKey = %q %d %v", kid, len(key), err)
	}
	for _, bad := range []string{`{"alg":"none","kid":"k","key":"AA"}`, `{"alg":"HS256","kid":"k","key":"AA"}`, `[`} {
		if _, _, err := client.ParseHMACKey([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

func TestSealRules(t *testing.T) {
	s, err := client.NewHMACSigner("k1", make([]byte, 32), "alice", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Seal([]byte(`{"type":"a"}`)); err == nil {
		t.Error("Seal before Bind accepted")
	}
	s.Bind("c1")
	for _, bad := range []string{`[]`, `{"text":"no type"}`, `{"type":"a","Type":"b"}`, `{"type":"a","type":"a"}`, `{"type":1}`, "{\"type\":\"\xff\"}"} {
		if _, err := s.Seal([]byte(bad)); err == nil {
			t.Errorf("Seal(%s) accepted", bad)
		}
	}
	if s.Thumbprint() != "" || s.PublicJWK() != nil {
		t.Error("hmac signer has a thumbprint")
	}
	if _, err := s.HandshakeParams("h", "/"); err == nil {
		t.Error("hmac handshake params")
	}
}

// TestConcurrentSeal: seq values are unique and the verifier accepts them
// when delivered in seq order.
func TestConcurrentSeal(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s, err := client.NewPopSigner(ec, "alice", nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Bind("c1")
	const n = 50
	frames := make([][]byte, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			frames[i], _ = s.Seal([]byte(`{"type":"a"}`))
		})
	}
	wg.Wait()
	bySeq := make([][]byte, n+1)
	for _, f := range frames {
		e, err := integrity.ParseEnvelope(f)
		if err != nil {
			t.Fatal(err)
		}
		if e.Seq < 1 || e.Seq > n || bySeq[e.Seq] != nil {
			t.Fatalf("seq %d duplicated or out of range", e.Seq)
		}
		bySeq[e.Seq] = f
	}
	pk, err := integrity.ParseJWK(s.PublicJWK())
	if err != nil || pk.Thumbprint() != s.Thumbprint() {
		t.Fatal(err)
	}
	ver, _ := integrity.NewVerifier(integrity.Options{Replay: integrity.NewMemoryReplayCache(1000)})
	st, _ := ver.NewPopConn("alice", "c1", pk)
	for _, f := range bySeq[1:] {
		if _, _, err := ver.Open(context.Background(), st, f); err != nil {
			t.Fatal(err)
		}
	}
}

func TestVerifyServerBadJWKS(t *testing.T) {
	if _, err := client.VerifyServer([]byte(`{"keys":[]}`), []byte(`{}`)); err == nil {
		t.Error("empty JWKS accepted")
	}
	if _, err := client.VerifyServer([]byte(`nope`), []byte(`{}`)); err == nil {
		t.Error("junk JWKS accepted")
	}
}
