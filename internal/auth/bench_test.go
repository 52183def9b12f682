package auth

import (
	"context"
	"testing"
	"time"
)

func BenchmarkVerify(b *testing.B) {
	k := keys(b)
	cases := []struct {
		alg  string
		sign any
		key  Key
	}{
		{"HS256", k.secret, Key{ID: "k", Secret: string(k.secret)}},
		{"RS256", k.rsa, Key{ID: "k", PublicKeyPEM: pubPEM(b, &k.rsa.PublicKey)}},
		{"ES256", k.ec256, Key{ID: "k", PublicKeyPEM: pubPEM(b, &k.ec256.PublicKey)}},
		{"EdDSA", k.ed, Key{ID: "k", PublicKeyPEM: pubPEM(b, k.ed.Public())}},
	}
	for _, c := range cases {
		b.Run(c.alg, func(b *testing.B) {
			v := newTestVerifier(b, Options{Keys: []Key{c.key}})
			tok := mint(b, mustSigner(b, c.alg, c.sign, "k", nil), "alice", time.Hour, map[string]any{"tier": "pro"})
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(context.Background(), tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
