package check

import (
	"context"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// tlsAddr is host:port of a wss:// target.
func (e *env) tlsAddr() string {
	p := e.target.Port()
	if p == "" {
		p = "443"
	}
	return net.JoinHostPort(e.target.Hostname(), p)
}

// tlsHandshake connects and runs only the TLS handshake with cfg.
func (e *env) tlsHandshake(ctx context.Context, cfg *tls.Config) (tls.ConnectionState, error) {
	ctx, cancel := context.WithTimeout(ctx, e.o.Timeout)
	defer cancel()
	d := tls.Dialer{NetDialer: e.netDialer(e.source()), Config: cfg}
	c, err := d.DialContext(ctx, "tcp", e.tlsAddr())
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer c.Close()
	tc, ok := c.(*tls.Conn)
	if !ok {
		return tls.ConnectionState{}, errors.New("not a TLS connection")
	}
	return tc.ConnectionState(), nil
}

func checkTLSVersion(ctx context.Context, e *env) Result {
	if e.target.Scheme != "wss" {
		return Result{Status: Skip, Got: "the target is ws:// (see the plaintext check)"}
	}
	res := Result{Status: Pass, Sent: "TLS handshakes limited to TLS 1.0, then TLS 1.1, then the client default (1.2+)"}
	var gots []string
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		cfg := &tls.Config{MinVersion: v, MaxVersion: v, InsecureSkipVerify: true, ServerName: e.target.Hostname()} //nolint:gosec // probing versions, not trusting
		_, err := e.tlsHandshake(ctx, cfg)
		if err == nil {
			res.Status = Fail
			gots = append(gots, tls.VersionName(v)+": accepted")
		} else {
			gots = append(gots, tls.VersionName(v)+": refused ("+clip(err.Error(), 100)+")")
		}
	}
	cs, err := e.tlsHandshake(ctx, &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true, ServerName: e.target.Hostname()}) //nolint:gosec // version only
	if err != nil {
		res.Status = Error
		gots = append(gots, "default handshake failed: "+err.Error())
	} else {
		gots = append(gots, fmt.Sprintf("default: %s, %s", tls.VersionName(cs.Version), tls.CipherSuiteName(cs.CipherSuite)))
	}
	res.Got = strings.Join(gots, "\n")
	return res
}

func checkTLSCert(ctx context.Context, e *env) Result {
	if e.target.Scheme != "wss" {
		return Result{Status: Skip, Got: "the target is ws:// (see the plaintext check)"}
	}
	res := Result{Status: Pass, Sent: "a TLS handshake to read the certificate chain, verified against " + rootsName(e)}
	cs, err := e.tlsHandshake(ctx, &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true, ServerName: e.target.Hostname()}) //nolint:gosec // verified below
	if err != nil {
		res.Status, res.Got = Error, "TLS handshake failed: "+err.Error()
		if !e.o.Insecure {
			e.sh.setBroken("TLS handshake failed: " + clip(err.Error(), 100))
		}
		return res
	}
	if len(cs.PeerCertificates) == 0 {
		res.Status, res.Got = Fail, "the server sent no certificate"
		return res
	}
	leaf := cs.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	now := time.Now()
	var notes []string
	notes = append(notes, fmt.Sprintf("subject %q, issuer %q, valid until %s", leaf.Subject.CommonName, leaf.Issuer.CommonName, leaf.NotAfter.UTC().Format(time.RFC3339)))
	_, verr := leaf.Verify(x509.VerifyOptions{Roots: e.tls.RootCAs, Intermediates: inter, DNSName: e.target.Hostname(), CurrentTime: now})
	var unknown x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	switch {
	case verr == nil:
		notes = append(notes, "chain and host name verify")
	case errors.As(verr, &invalid) && invalid.Reason == x509.Expired:
		res.Status = Fail
		notes = append(notes, "EXPIRED or not yet valid: "+verr.Error())
	case errors.As(verr, &hostErr):
		res.Status = Fail
		notes = append(notes, "host name mismatch: "+verr.Error())
	case errors.As(verr, &unknown):
		if len(e.o.CACertPEM) > 0 {
			res.Status = Fail
			notes = append(notes, "not signed by the --cacert CA: "+verr.Error())
		} else {
			res.Status = Warn
			notes = append(notes, "self-signed or unknown CA: "+verr.Error())
			res.Why = "browsers and clients refuse a certificate they cannot chain to a trusted root; clients told to skip verification can be intercepted"
			res.Fix = "use a certificate from a public CA (e.g. ACME), or pass --cacert with your private CA to audit a test deployment"
		}
	default:
		res.Status = Fail
		notes = append(notes, "does not verify: "+verr.Error())
	}
	if verr != nil && !e.o.Insecure {
		e.sh.setBroken("the certificate does not verify (see tls-cert)")
	}
	if left := leaf.NotAfter.Sub(now); left > 0 && left < e.o.CertExpiryWarn {
		res.Status = worst(res.Status, Warn)
		notes = append(notes, fmt.Sprintf("expires in %s (warning threshold %s)", left.Round(time.Hour), e.o.CertExpiryWarn))
		if res.Fix == "" {
			res.Fix = "renew the certificate (automate renewal, e.g. ACME) before it expires"
		}
	}
	if k, ok := leaf.PublicKey.(*rsa.PublicKey); ok && k.N.BitLen() < 2048 {
		res.Status = worst(res.Status, Warn)
		notes = append(notes, fmt.Sprintf("RSA key of %d bits (< 2048)", k.N.BitLen()))
	}
	res.Got = strings.Join(notes, "\n")
	return res
}

func rootsName(e *env) string {
	if len(e.o.CACertPEM) > 0 {
		return "the --cacert CA"
	}
	return "the system roots"
}
