package auth

import (
	"context"
	"testing"
	"time"
)

func TestSignerErrors(t *testing.T) {
	k := keys(t)
	if _, err := NewHMACSigner([]byte("short"), "").Mint("a", time.Minute, nil); err == nil {
		t.Fatal("short secret minted")
	}
	bad := []struct {
		alg string
		key any
	}{
		{"none", k.secret}, {"HS256", k.rsa}, {"RS256", k.secret}, {"ES384", k.ec256}, {"EdDSA", k.rsa}, {"XX1", k.secret}, {"HS256", "string"},
	}
	for _, b := range bad {
		if _, err := NewSigner(b.alg, b.key, ""); err == nil {
			t.Fatalf("NewSigner(%s, %T) accepted", b.alg, b.key)
		}
	}
	if _, err := NewHMACSigner(k.secret, "").Mint("a", 0, nil); err == nil {
		t.Fatal("zero ttl minted")
	}
	var zero Signer
	if _, err := zero.Mint("a", time.Minute, nil); err == nil {
		t.Fatal("zero Signer minted")
	}
}

func TestHMACSignerRoundTrip(t *testing.T) {
	k := keys(t)
	v := newTestVerifier(t, Options{Keys: []Key{{ID: "dev", Secret: FormatSecret(k.secret)}}})
	tok, err := NewHMACSigner(k.secret, "dev").Mint("bob", time.Minute, map[string]any{"tier": "free"})
	if err != nil {
		t.Fatal(err)
	}
	id, err := v.Verify(context.Background(), tok)
	if err != nil || id.Subject != "bob" || id.Tier("tier") != "free" || id.Tier("missing") != "" {
		t.Fatalf("%+v %v", id, err)
	}
}
