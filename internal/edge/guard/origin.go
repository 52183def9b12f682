package guard

import (
	"errors"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// OriginPolicy is the cross-site WebSocket hijacking (CSWSH) defence. Browsers always
// send Origin on a WebSocket handshake, so a page on another site can be refused here
// even though it could make the browser attach cookies.
type OriginPolicy struct {
	// Allowed are exact origins and "scheme://*.domain[:port]" patterns. Empty means
	// same-origin only: the Origin's scheme, host and port must be the request's
	// (its Host header, and TLS or a trusted proxy's X-Forwarded-Proto).
	Allowed []string
	// AllowMissing admits requests without Origin (non-browser clients).
	AllowMissing bool
}

var (
	errOriginMissing = errors.New("origin missing")
	errOriginDenied  = errors.New("origin not allowed")
)

// Check returns nil when the request's Origin is acceptable. The request's own
// scheme is taken from the connection (TLS or not); the Guard uses check with
// the scheme a trusted proxy reports instead.
func (p *OriginPolicy) Check(r *http.Request) error {
	return p.check(r, requestScheme(r, nil))
}

// check is Check with the scheme the client used to reach us (see requestScheme).
func (p *OriginPolicy) check(r *http.Request, scheme string) error {
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
	oscheme := strings.ToLower(u.Scheme)
	host := canonicalHost(oscheme, u.Host)
	if len(p.Allowed) == 0 {
		// Same origin in the browser's sense: scheme, host and port. Comparing
		// host names alone would let a page on any other port of this host
		// (another app, or an XSS in it) open an authenticated socket.
		own := httpScheme(scheme)
		if httpScheme(oscheme) == own && host == canonicalHost(own, r.Host) {
			return nil
		}
		return errOriginDenied
	}
	for _, a := range p.Allowed {
		if matchOrigin(a, oscheme, host) {
			return nil
		}
	}
	return errOriginDenied
}

// httpScheme maps the WebSocket schemes onto the page schemes browsers put in
// Origin.
func httpScheme(s string) string {
	switch s = strings.ToLower(s); s {
	case "wss":
		return "https"
	case "ws":
		return "http"
	}
	return s
}

// requestScheme is the scheme the client used: "https" over TLS, else "http";
// behind a trusted proxy (one that terminates TLS) its X-Forwarded-Proto or
// Forwarded proto= says, since wsgate itself then sees plain HTTP.
func requestScheme(r *http.Request, trusted []netip.Prefix) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if len(trusted) == 0 || !isTrusted(peerAddr(r.RemoteAddr), trusted) {
		return scheme
	}
	// The proxy closest to us wrote the last entry.
	if v := r.Header.Values("X-Forwarded-Proto"); len(v) > 0 {
		last := v[len(v)-1]
		if i := strings.LastIndexByte(last, ','); i >= 0 {
			last = last[i+1:]
		}
		return forwardedScheme(last, scheme)
	}
	if v := r.Header.Values("Forwarded"); len(v) > 0 {
		last := v[len(v)-1]
		if i := strings.LastIndexByte(last, ','); i >= 0 {
			last = last[i+1:]
		}
		for pair := range strings.SplitSeq(last, ";") {
			if k, val, ok := strings.Cut(strings.TrimSpace(pair), "="); ok && strings.EqualFold(k, "proto") {
				return forwardedScheme(strings.Trim(val, `"`), scheme)
			}
		}
	}
	return scheme
}

func forwardedScheme(v, fallback string) string {
	switch v = httpScheme(strings.TrimSpace(v)); v {
	case "http", "https":
		return v
	}
	return fallback
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
