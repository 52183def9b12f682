package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
)

// Where IdentityFromCert takes the identity from.
const (
	CertFromSAN = "san"
	CertFromCN  = "cn"
)

// IdentityFromCert returns the principal named by a verified client
// certificate. from is "san" (first URI SAN, else first DNS SAN, else first
// email SAN) or "cn" (Subject.CommonName). An empty result is an error: a
// certificate naming no one authenticates no one.
func IdentityFromCert(c *x509.Certificate, from string) (string, error) {
	if c == nil {
		return "", errors.New("auth: no client certificate")
	}
	var id string
	switch from {
	case CertFromSAN:
		switch {
		case len(c.URIs) > 0 && c.URIs[0] != nil:
			id = c.URIs[0].String()
		case len(c.DNSNames) > 0:
			id = c.DNSNames[0]
		case len(c.EmailAddresses) > 0:
			id = c.EmailAddresses[0]
		}
	case CertFromCN:
		id = c.Subject.CommonName
	default:
		return "", fmt.Errorf("auth: certificate identity source must be %q or %q, got %q", CertFromSAN, CertFromCN, from)
	}
	if id == "" {
		return "", fmt.Errorf("auth: client certificate has no %s identity", from)
	}
	if len(id) > maxSubjectBytes {
		return "", fmt.Errorf("auth: client certificate %s identity longer than %d bytes", from, maxSubjectBytes)
	}
	return id, nil
}

// CertIdentity is the Identity of an mTLS-only connection. The chain must
// already have been verified by the TLS stack; this only names it.
func CertIdentity(c *x509.Certificate, from string) (Identity, error) {
	sub, err := IdentityFromCert(c, from)
	if err != nil {
		return Identity{}, err
	}
	return Identity{
		Subject:     sub,
		ExpiresAt:   c.NotAfter,
		IssuedAt:    c.NotBefore,
		Source:      IdentitySourceMTLS,
		CertSubject: c.Subject.String(),
	}, nil
}

// CertThumbprint is the RFC 8705 "x5t#S256" of c: base64url (unpadded)
// SHA-256 of its DER encoding.
func CertThumbprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// BindCert combines a JWT identity with the client certificate the same
// connection presented: Source becomes "jwt+mtls" and CertSubject is set.
// When the token is certificate-bound (cnf."x5t#S256", RFC 8705) the
// certificate must be that one, so a stolen token is useless without the
// key; a mismatch is an error. The subject stays the token's.
func BindCert(id Identity, c *x509.Certificate) (Identity, error) {
	if c == nil {
		return Identity{}, errors.New("auth: no client certificate")
	}
	if want := cnfString(id.Claims, "x5t#S256"); want != "" {
		if subtle.ConstantTimeCompare([]byte(want), []byte(CertThumbprint(c))) != 1 {
			return Identity{}, errors.New("auth: token is bound to a different client certificate")
		}
	}
	id.Source = IdentitySourceJWTMTLS
	id.CertSubject = c.Subject.String()
	if c.NotAfter.Before(id.ExpiresAt) {
		id.ExpiresAt = c.NotAfter
	}
	return id, nil
}
