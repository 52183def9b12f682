// Package certgen makes the certificates a first deployment needs without
// openssl: a local certificate authority, server and client certificates issued
// by it (`wsgate certs`), and the cached self-signed certificate of
// `wsgate serve --dev`. Keys are ECDSA P-256; private keys are written 0600.
//
// A local CA is for development, staging and private networks; a public
// endpoint wants a certificate from a public CA (ACME).
package certgen

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Authority is a certificate authority that can issue certificates.
type Authority struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	PEM  []byte // the CA certificate, for clients and for tls.client_ca_file
}

// Pair is a certificate and its private key, PEM encoded.
type Pair struct {
	CertPEM, KeyPEM []byte
}

// NewCA creates a self-signed certificate authority named name.
func NewCA(name string, validity time.Duration) (*Authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certgen: ca key: %w", err)
	}
	tmpl, err := template(name, validity)
	if err != nil {
		return nil, err
	}
	tmpl.IsCA = true
	tmpl.BasicConstraintsValid = true
	tmpl.MaxPathLenZero = true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("certgen: ca: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("certgen: ca: %w", err)
	}
	return &Authority{Cert: cert, Key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// Issue signs a certificate for name. hosts (DNS names or IP addresses) become
// the subject alternative names; client selects client authentication instead of
// server authentication.
func (a *Authority) Issue(name string, hosts []string, client bool, validity time.Duration) (Pair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Pair{}, fmt.Errorf("certgen: key: %w", err)
	}
	tmpl, err := template(name, validity)
	if err != nil {
		return Pair{}, err
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	if client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	addHosts(tmpl, hosts)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.Cert, &key.PublicKey, a.Key)
	if err != nil {
		return Pair{}, fmt.Errorf("certgen: %s: %w", name, err)
	}
	return pair(der, key)
}

// KeyPEM encodes the authority's private key.
func (a *Authority) KeyPEM() ([]byte, error) {
	b, err := x509.MarshalPKCS8PrivateKey(a.Key)
	if err != nil {
		return nil, fmt.Errorf("certgen: ca key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: b}), nil
}

// DevHosts are the names the development certificate is valid for.
var DevHosts = []string{"localhost", "127.0.0.1", "::1"}

// DevCertificate returns the development certificate kept in dir/dev.pem (the
// certificate followed by its key, mode 0600), creating or replacing it when it is
// missing, unreadable, or expires within a day. The certificate is self-signed and
// acts as its own root, so clients trust it with --cacert dir/dev.pem (the key
// block is ignored there). Reusing one file across starts means a browser
// exception or a client's trust setting survives a restart. Two servers starting
// at once both end up serving what the file holds after the last atomic rename.
func DevCertificate(dir string) (*tls.Certificate, string, error) {
	file := filepath.Join(dir, "dev.pem")
	if c, err := loadDev(file); err == nil {
		return c, file, nil
	}
	p, err := SelfSigned(90 * 24 * time.Hour)
	if err != nil {
		return nil, "", err
	}
	if err := writeFile(file, append(p.CertPEM, p.KeyPEM...), 0o600); err != nil {
		return nil, "", err
	}
	c, err := loadDev(file)
	if err != nil {
		return nil, "", fmt.Errorf("certgen: dev certificate: %w", err)
	}
	return c, file, nil
}

// SelfSigned makes a development certificate for DevHosts, valid for
// validity: one self-signed certificate that is both the root and the
// server's leaf, so clients trust it with its PEM. DevCertificate caches one;
// test servers make their own.
func SelfSigned(validity time.Duration) (Pair, error) {
	ca, err := NewCA("wsgate dev (localhost)", validity)
	if err != nil {
		return Pair{}, err
	}
	tmpl := *ca.Cert
	tmpl.MaxPathLenZero = false
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	tmpl.Subject.Organization = []string{"wsgate development only"}
	addHosts(&tmpl, DevHosts)
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, &tmpl, &ca.Key.PublicKey, ca.Key)
	if err != nil {
		return Pair{}, fmt.Errorf("certgen: dev certificate: %w", err)
	}
	return pair(der, ca.Key)
}

// TLS parses the pair for a tls.Config.
func (p Pair) TLS() (*tls.Certificate, error) {
	c, err := tls.X509KeyPair(p.CertPEM, p.KeyPEM)
	if err != nil {
		return nil, fmt.Errorf("certgen: %w", err)
	}
	return &c, nil
}

// LoadPool reads a PEM file of CA certificates (a --cacert, a ca_file) into a
// pool. A file holding no certificate is an error: trusting nothing is never
// what was meant.
func LoadPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s: no PEM certificate found", file)
	}
	return pool, nil
}

func loadDev(file string) (*tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(file, file)
	if err != nil {
		return nil, err
	}
	if c.Leaf == nil || time.Until(c.Leaf.NotAfter) < 24*time.Hour || c.Leaf.VerifyHostname("127.0.0.1") != nil {
		return nil, errors.New("expiring or not for 127.0.0.1")
	}
	return &c, nil
}

// Write stores the pair: the certificate 0644, the key 0600, creating the
// directory 0700 when needed. Files are replaced atomically.
func (p Pair) Write(certFile, keyFile string) error {
	if err := writeFile(certFile, p.CertPEM, 0o644); err != nil {
		return err
	}
	return writeFile(keyFile, p.KeyPEM, 0o600)
}

// WriteFile writes data to path atomically with mode, creating the directory
// 0700 when needed.
func WriteFile(path string, data []byte, mode os.FileMode) error { return writeFile(path, data, mode) }

func writeFile(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("certgen: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("certgen: %w", err)
	}
	_, werr := f.Write(data)
	cerr := f.Close()
	if err := errors.Join(werr, cerr, os.Chmod(f.Name(), mode)); err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("certgen: write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("certgen: write %s: %w", path, err)
	}
	return nil
}

func template(name string, validity time.Duration) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, fmt.Errorf("certgen: serial: %w", err)
	}
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(validity),
	}, nil
}

func addHosts(t *x509.Certificate, hosts []string) {
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			t.IPAddresses = append(t.IPAddresses, ip)
		} else {
			t.DNSNames = append(t.DNSNames, h)
		}
	}
}

func pair(der []byte, key *ecdsa.PrivateKey) (Pair, error) {
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return Pair{}, fmt.Errorf("certgen: key: %w", err)
	}
	return Pair{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}),
	}, nil
}
