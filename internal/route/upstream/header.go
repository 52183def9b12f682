package upstream

import (
	"net/http"
	"net/url"
	"strings"
)

// CredentialParams are the query parameters that carry wsgate credentials or
// handshake proofs; they stay at wsgate. Names are compared case-insensitively
// (a client may spell "?Token="), like every extra name a route lists.
var CredentialParams = []string{"token", "ticket", "access_token", "pop_key", "pop_ts", "pop_nonce", "pop_proof"}

// forwardHeader builds the upgrade request header for the upstream from the
// client's request: only the allow-listed headers, then wsgate's own
// X-Forwarded-For and -Proto (replacing whatever the client claimed).
// X-Forwarded-Host is set by SignIdentity, from the route's configured host and
// signed: never the client's Host header, which is unverified (any client can
// send any Host to an IP address). Identity headers are added by the caller.
func forwardHeader(r *http.Request, allow []string, clientIP string) http.Header {
	h := make(http.Header, len(allow)+8)
	if r != nil {
		for _, name := range allow {
			if vs := r.Header.Values(name); len(vs) > 0 {
				h[http.CanonicalHeaderKey(name)] = append([]string(nil), vs...)
			}
		}
	}
	if clientIP != "" {
		// One address, not a chain: the client's own X-Forwarded-For is not
		// believed (unless the guard's trusted proxies vouched for it, in which
		// case clientIP already is the address it named).
		h.Set("X-Forwarded-For", clientIP)
	}
	if r != nil {
		proto := "http"
		if r.TLS != nil {
			proto = "https"
		}
		h.Set("X-Forwarded-Proto", proto)
	}
	return h
}

// targetURL is the upstream URL with the client's query appended, minus the
// credential parameters (CredentialParams and the route's strip list, any case).
// The client's path is not used: a route maps to one upstream URL.
func targetURL(base *url.URL, r *http.Request, strip []string) string {
	u := *base
	if r == nil || r.URL == nil || r.URL.RawQuery == "" {
		return u.String()
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return u.String() // the guard refused malformed queries already; be safe
	}
	for name := range q {
		if stripped(name, strip) {
			delete(q, name)
		}
	}
	if len(q) == 0 {
		return u.String()
	}
	extra := q.Encode()
	if u.RawQuery == "" {
		u.RawQuery = extra
	} else {
		u.RawQuery += "&" + extra
	}
	return u.String()
}

// stripped reports whether the query parameter name must not reach the upstream.
func stripped(name string, extra []string) bool {
	for _, p := range CredentialParams {
		if strings.EqualFold(name, p) {
			return true
		}
	}
	for _, p := range extra {
		if strings.EqualFold(name, p) {
			return true
		}
	}
	return false
}
