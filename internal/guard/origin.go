package guard

import (
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// OriginPolicy is the cross-site WebSocket hijacking (CSWSH) defence. Browsers always
// send Origin on a WebSocket handshake, so a page on another site can be refused here
// even though it could make the browser attach cookies.
type OriginPolicy struct {
	// Allowed are exact origins and "scheme://*.domain[:port]" patterns. Empty means
	// same-origin only: the Origin's host must equal the request's Host.
	Allowed []string
	// AllowMissing admits requests without Origin (non-browser clients).
	AllowMissing bool
}

var (
	errOriginMissing = errors.New("origin missing")
	errOriginDenied  = errors.New("origin not allowed")
)

// Check returns nil when the request's Origin is acceptable.
func (p *OriginPolicy) Check(r *http.Request) error {
	origins := r.Header.Values("Origin")
	if len(origins) == 0 {
		if p.AllowMissing {
			return nil
		}
		return errOriginMissing
	}
	if len(origins) > 1 {
		return errOriginDenied
	}
	o := origins[0]
	u, err := url.Parse(o)
	if err != nil || u.Host == "" || o == "null" {
		return errOriginDenied
	}
	scheme := strings.ToLower(u.Scheme)
	host := canonicalHost(scheme, u.Host)
	if len(p.Allowed) == 0 {
		// Same host name; the port is not compared because behind a TLS-terminating
		// proxy the browser's scheme and port differ from what wsgate sees.
		if stripPort(host) == stripPort(strings.ToLower(r.Host)) {
			return nil
		}
		return errOriginDenied
	}
	for _, a := range p.Allowed {
		if matchOrigin(a, scheme, host) {
			return nil
		}
	}
	return errOriginDenied
}

func matchOrigin(pattern, scheme, host string) bool {
	pu, err := url.Parse(pattern)
	if err != nil || !strings.EqualFold(pu.Scheme, scheme) {
		return false
	}
	phost := canonicalHost(strings.ToLower(pu.Scheme), pu.Host)
	if rest, ok := strings.CutPrefix(phost, "*."); ok {
		// "*.example.com" matches any subdomain, not the apex and not "evil-example.com".
		return strings.HasSuffix(host, "."+rest) && len(host) > len(rest)+1 && !strings.HasPrefix(host, ".")
	}
	return phost == host
}

// canonicalHost lowercases and adds the scheme's default port so that
// "https://a.com" and "https://a.com:443" compare equal.
func canonicalHost(scheme, host string) string {
	host = strings.ToLower(host)
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	switch scheme {
	case "https", "wss":
		return host + ":443"
	default:
		return host + ":80"
	}
}

func stripPort(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		return host
	}
	return h
}
