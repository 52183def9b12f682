package check

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
)

// ErrRemoteTarget is returned by Run for a target that is not on loopback
// when Options.AllowRemote is false.
var ErrRemoteTarget = errors.New("target is not on loopback")

// checkLoopback resolves host and refuses it unless every address is a
// loopback address: a name that resolves to one public address is remote.
func checkLoopback(ctx context.Context, host string) error {
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Unmap().IsLoopback() {
			return nil
		}
		return fmt.Errorf("%w: %s", ErrRemoteTarget, host)
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", host, err)
	}
	if len(addrs) == 0 {
		return fmt.Errorf("resolve %s: no address", host)
	}
	for _, a := range addrs {
		if !a.Unmap().IsLoopback() {
			return fmt.Errorf("%w: %s resolves to %s", ErrRemoteTarget, host, a)
		}
	}
	return nil
}

// tlsConfig is the client configuration of the probes.
func tlsConfig(o *Options) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: o.Insecure} //nolint:gosec // named opt-out
	if len(o.CACertPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(o.CACertPEM) {
			return nil, errors.New("--cacert: no PEM certificate found")
		}
		c.RootCAs = pool
	}
	return c, nil
}

// withQuery returns u with extra query parameters added.
func withQuery(u *url.URL, kv ...string) string {
	c := *u
	q := c.Query()
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	c.RawQuery = q.Encode()
	return c.String()
}
