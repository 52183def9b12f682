package integrity_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/conn/integrity"
)

func addVectorSeeds(f *testing.F) {
	b, err := os.ReadFile(vectorsPath)
	if err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if i := strings.Index(line, `"envelope": "`); i >= 0 {
				f.Add([]byte(line[i:]))
			}
		}
	}
	for _, s := range []string{
		`{"type":"a","sig":{"v":1,"alg":"HS256","kid":"k","seq":1,"ts":1,"nonce":"AAAAAAAAAAAAAAAAAAAAAA","body":"eyJ0eXBlIjoiYSJ9","mac":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}}`,
		`{"type":"a"}`, `{}`, `[]`, `null`, `{"sig":{}}`, `{"type":"a","sig":{"v":1e0}}`, `{"type":"a","sig":{"seq":"1"}}`,
		`{"type":"a","sig":{"v":1,"v":1}}`, `{"type":"a","sig":{"seq":9007199254740993}}`, "{\"type\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
}

// FuzzParseEnvelope: no panic, and anything accepted re-encodes to an
// envelope that parses to the same values (one meaning per message).
func FuzzParseEnvelope(f *testing.F) {
	addVectorSeeds(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		e, err := integrity.ParseEnvelope(raw)
		if err != nil {
			if integrity.CodeOf(err) == "" {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		e2, err := integrity.ParseEnvelope(e.Marshal())
		if err != nil {
			t.Fatalf("re-encoded envelope rejected: %v", err)
		}
		if string(integrity.SigningInput(e.Header, "s", "c", e.Body)) != string(integrity.SigningInput(e2.Header, "s", "c", e2.Body)) {
			t.Fatal("round trip changed the signed content")
		}
	})
}

// FuzzOpen runs raw input through a whole Verifier.
func FuzzOpen(f *testing.F) {
	addVectorSeeds(f)
	ring, _ := integrity.NewKeyRing(integrity.MasterKey{ID: "k2026-01", Secret: mustHex(vecMaster)})
	ver, _ := integrity.NewVerifier(integrity.Options{Keys: ring, Replay: integrity.NewMemoryReplayCache(1 << 12),
		Now: func() time.Time { return time.UnixMilli(vecTS) }})
	f.Fuzz(func(t *testing.T, raw []byte) {
		st, _ := ver.NewHMACConn(vecSubject, vecConn)
		_, _, err := ver.Open(context.Background(), st, raw)
		if err != nil && integrity.CodeOf(err) == "" {
			t.Fatalf("untyped error %v", err)
		}
	})
}

// FuzzCheckHandshakeKey covers the JWK parser (untrusted query parameter).
func FuzzCheckHandshakeKey(f *testing.F) {
	f.Add([]byte(`{"crv":"Ed25519","kty":"OKP","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}`))
	f.Add([]byte(`{"crv":"P-256","kty":"EC","x":"YP7UuiVanTHJYet0xjVtaMBJuJI7Yfps5mliLmDyn7Y","y":"Z1ga3K9-y1APHGOJkJJXw7NeX6pA2bH0ITpqGx6TkF8"}`))
	f.Add([]byte(`{"kty":"OKP","crv":"Ed25519","x":"","d":""}`))
	f.Fuzz(func(t *testing.T, j []byte) {
		k, err := integrity.ParseJWK(j)
		if err != nil {
			return
		}
		k2, err := integrity.CheckHandshakeKey(integrity.B64(k.JWK()), k.Thumbprint())
		if err != nil || k2.Thumbprint() != k.Thumbprint() {
			t.Fatalf("canonical JWK does not round-trip: %v", err)
		}
	})
}
