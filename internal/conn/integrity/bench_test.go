package integrity_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/client"
	"github.com/wsgate/wsgate/internal/conn/integrity"
)

// benchOpen measures Verifier.Open per message (parse, verify, ts, nonce via
// the in-memory cache, seq) on a realistic ~200-byte message.
func benchOpen(b *testing.B, mode string) {
	ring, _ := integrity.NewKeyRing(integrity.MasterKey{ID: "k1", Secret: []byte(strings.Repeat("A", 32))})
	now := time.Now()
	ver, _ := integrity.NewVerifier(integrity.Options{Keys: ring, Replay: integrity.NewMemoryReplayCache(2*b.N + 4096),
		Now: func() time.Time { return now }})
	opts := &client.Options{Now: func() time.Time { return now }}
	var s *client.Signer
	var st *integrity.ConnIntegrity
	switch mode {
	case "hmac":
		ck, _ := ring.Issue("alice")
		key, _ := integrity.UnB64(ck.Key)
		s, _ = client.NewHMACSigner(ck.Kid, key, "alice", opts)
		st, _ = ver.NewHMACConn("alice", "c1")
	default:
		var priv crypto.Signer
		if mode == "pop-ed25519" {
			_, priv, _ = ed25519.GenerateKey(rand.Reader)
		} else {
			priv, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		}
		s, _ = client.NewPopSigner(priv, "alice", opts)
		pk, _ := integrity.ParseJWK(s.PublicJWK())
		st, _ = ver.NewPopConn("alice", "c1", pk)
	}
	s.Bind("c1")
	msg := []byte(`{"type":"chat.send","room":"lobby","text":"` + strings.Repeat("x", 160) + `"}`)
	frames := make([][]byte, b.N)
	for i := range frames {
		frames[i], _ = s.Seal(msg)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := ver.Open(ctx, st, frames[i]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	for _, m := range []string{"hmac", "pop-ed25519", "pop-p256"} {
		b.Run(m, func(b *testing.B) { benchOpen(b, m) })
	}
}

func BenchmarkParseEnvelope(b *testing.B) {
	v := integrity.Envelope{Header: integrity.Header{Alg: "HS256", Kid: "k1", Type: "chat.send", Seq: 1, TS: 1, Nonce: make([]byte, 16)},
		Body: []byte(`{"type":"chat.send","text":"` + strings.Repeat("x", 160) + `"}`), MAC: make([]byte, 32)}
	raw := v.Marshal()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := integrity.ParseEnvelope(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMemoryReplayCache(b *testing.B) {
	c := integrity.NewMemoryReplayCache(1 << 20)
	ctx := context.Background()
	keys := make([]string, 1<<16)
	for i := range keys {
		keys[i] = fmt.Sprintf("wsgate:n:%040d", i)
	}
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			_, _ = c.Seen(ctx, keys[i&(len(keys)-1)], time.Minute)
			i++
		}
	})
}

func BenchmarkServerSign(b *testing.B) {
	k, _ := integrity.GenerateSigningKey("s1")
	s, _ := integrity.NewServerSigner(k)
	msg := []byte(`{"type":"chat.msg","text":"` + strings.Repeat("x", 160) + `"}`)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = s.Sign(msg)
	}
}
