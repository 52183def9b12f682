package auth

import (
	"context"
	"testing"
	"time"
)

func BenchmarkVerify(b *testing.B) {
	for _, c := range algCases(b) {
		b.Run(c.alg, func(b *testing.B) {
			v := newTestVerifier(b, Options{Keys: []Key{c.key}})
			tok := mint(b, mustSigner(b, c.alg, c.sign, c.key.ID, nil), "alice", time.Hour, map[string]any{"tier": "pro"})
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(context.Background(), tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
