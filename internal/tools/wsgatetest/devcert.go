package wsgatetest

import (
	"crypto/tls"
	"time"

	"github.com/wsgate/wsgate/internal/tools/certgen"
)

// devCertificate is a fresh self-signed certificate for a test server, valid
// for 7 days, and its PEM for clients to trust.
func devCertificate() (*tls.Certificate, []byte, error) {
	p, err := certgen.SelfSigned(7 * 24 * time.Hour)
	if err != nil {
		return nil, nil, err
	}
	c, err := p.TLS()
	return c, p.CertPEM, err
}
