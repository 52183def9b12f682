package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/url"
	"testing"
	"time"
)

func makeCert(t *testing.T, tmpl x509.Certificate) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = big.NewInt(1)
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = time.Now().Add(time.Hour)
	}
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, &tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestIdentityFromCert(t *testing.T) {
	spiffe, _ := url.Parse("spiffe://example.org/svc/chat")
	full := makeCert(t, x509.Certificate{Subject: pkix.Name{CommonName: "cn-name"}, URIs: []*url.URL{spiffe}, DNSNames: []string{"svc.example"}, EmailAddresses: []string{"a@example"}})
	dns := makeCert(t, x509.Certificate{DNSNames: []string{"svc.example"}, EmailAddresses: []string{"a@example"}})
	email := makeCert(t, x509.Certificate{EmailAddresses: []string{"a@example"}})
	empty := makeCert(t, x509.Certificate{})
	cases := []struct {
		c          *x509.Certificate
		from, want string
	}{
		{full, "san", "spiffe://example.org/svc/chat"}, {dns, "san", "svc.example"}, {email, "san", "a@example"},
		{full, "cn", "cn-name"}, {empty, "san", ""}, {empty, "cn", ""}, {full, "serial", ""}, {nil, "san", ""},
	}
	for _, tc := range cases {
		got, err := IdentityFromCert(tc.c, tc.from)
		if got != tc.want || (tc.want == "") != (err != nil) {
			t.Fatalf("from %s: got %q err %v, want %q", tc.from, got, err, tc.want)
		}
	}
	id, err := CertIdentity(full, "san")
	if err != nil || id.Source != "mtls" || id.CertSubject != "CN=cn-name" || !id.ExpiresAt.Equal(full.NotAfter) {
		t.Fatalf("CertIdentity = %+v, %v", id, err)
	}
}

func TestBindCert(t *testing.T) {
	c := makeCert(t, x509.Certificate{Subject: pkix.Name{CommonName: "x"}, NotAfter: time.Now().Add(time.Minute)})
	other := makeCert(t, x509.Certificate{Subject: pkix.Name{CommonName: "y"}})
	jwtID := Identity{Subject: "alice", Source: "jwt", ExpiresAt: time.Now().Add(time.Hour)}
	got, err := BindCert(jwtID, c)
	if err != nil || got.Source != "jwt+mtls" || got.CertSubject != "CN=x" || got.Subject != "alice" || !got.ExpiresAt.Equal(c.NotAfter) {
		t.Fatalf("BindCert = %+v, %v", got, err)
	}
	bound := jwtID
	bound.Claims = map[string]any{"cnf": map[string]any{"x5t#S256": CertThumbprint(c)}}
	if _, err := BindCert(bound, c); err != nil {
		t.Fatal(err)
	}
	if _, err := BindCert(bound, other); err == nil {
		t.Fatal("token bound to another certificate accepted")
	}
	if _, err := BindCert(jwtID, nil); err == nil {
		t.Fatal("nil cert accepted")
	}
}
