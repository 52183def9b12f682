package upstream

import (
	"net/http"
	"net/url"
	"strings"
)

// credentialParams are query parameters that carry wsgate credentials; they
// stay at wsgate.
var credentialParams = []string{"token", "ticket", "access_token"}

// forwardHeader builds the upgrade request header for the upstream from the
// client's request: only the allow-listed headers, then wsgate's own
// X-Forwarded-* (replacing whatever the client claimed). Identity headers are
// added by the caller.
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
		if r.Host != "" && !strings.ContainsAny(r.Host, "\r\n") {
			h.Set("X-Forwarded-Host", r.Host)
		}
	}
	return h
}

// targetURL is the upstream URL with the client's query appended, minus the
// credential parameters. The client's path is not used: a route maps to one
// upstream URL.
func targetURL(base *url.URL, r *http.Request) string {
	u := *base
	if r == nil || r.URL == nil || r.URL.RawQuery == "" {
		return u.String()
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return u.String() // the guard refused malformed queries already; be safe
	}
	for _, p := range credentialParams {
		q.Del(p)
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
