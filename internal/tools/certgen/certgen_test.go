package certgen

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"
	"time"
)

// The dev certificate is created once and reused: a second start serves the same
// certificate from the same file, and a client trusting that file verifies it.
func TestDevCertificateReused(t *testing.T) {
	dir := t.TempDir()
	c1, f1, err := DevCertificate(dir)
	if err != nil {
		t.Fatal(err)
	}
	c2, f2, err := DevCertificate(dir)
	if err != nil {
		t.Fatal(err)
	}
	if f1 != f2 || !bytes.Equal(c1.Certificate[0], c2.Certificate[0]) {
		t.Fatal("second start made a new certificate")
	}
	if fi, err := os.Stat(f1); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("dev.pem holds the key: want mode 0600, got %v %v", fi.Mode(), err)
	}
	pem, _ := os.ReadFile(f1)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("no certificate in dev.pem")
	}
	for _, h := range DevHosts {
		if _, err := c1.Leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: h}); err != nil {
			t.Errorf("%s: %v", h, err)
		}
	}
}

// A CA issues a server certificate a client verifies and a client certificate the
// server's client CA pool verifies.
func TestIssue(t *testing.T) {
	ca, err := NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ca.Issue("srv", []string{"ws.internal", "10.0.0.5"}, false, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := ca.Issue("svc-a", []string{"svc-a"}, true, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.PEM)
	for _, c := range []struct {
		p    Pair
		host string
		eku  x509.ExtKeyUsage
	}{{srv, "10.0.0.5", x509.ExtKeyUsageServerAuth}, {srv, "ws.internal", x509.ExtKeyUsageServerAuth}, {cl, "", x509.ExtKeyUsageClientAuth}} {
		kp, err := tls.X509KeyPair(c.p.CertPEM, c.p.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kp.Leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: c.host, KeyUsages: []x509.ExtKeyUsage{c.eku}}); err != nil {
			t.Errorf("%s: %v", c.host, err)
		}
	}
}
