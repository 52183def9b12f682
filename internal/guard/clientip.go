package guard

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ClientIP returns the address a request really comes from. The socket peer is the
// answer unless that peer is a trusted proxy; only then are X-Forwarded-For and
// Forwarded read, right to left, skipping further trusted proxies. The first
// untrusted hop is the client. Anyone else's headers are ignored, so a client
// cannot spoof its way past per-IP limits and bans.
func ClientIP(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer := peerAddr(r.RemoteAddr)
	if !peer.IsValid() || !isTrusted(peer, trusted) {
		return peer
	}
	hops := forwardedHops(r.Header)
	for i := len(hops) - 1; i >= 0; i-- {
		a := hops[i]
		if !a.IsValid() {
			// An unparsable hop from a trusted proxy: stop at the last good address
			// rather than believe anything further left.
			return peer
		}
		if !isTrusted(a, trusted) {
			return a
		}
		peer = a
	}
	return peer
}

func peerAddr(remote string) netip.Addr {
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		return ap.Addr().Unmap()
	}
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, _ := netip.ParseAddr(host)
	return a.Unmap()
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// maxHops bounds the work a hostile header can cause.
const maxHops = 32

// forwardedHops lists the addresses in X-Forwarded-For, or else in Forwarded (RFC 7239),
// in header order (client first). Invalid entries are kept as invalid Addrs so the
// caller can stop at them.
func forwardedHops(h http.Header) []netip.Addr {
	var out []netip.Addr
	if xff := h.Values("X-Forwarded-For"); len(xff) > 0 {
		for _, line := range xff {
			for _, part := range strings.Split(line, ",") {
				if len(out) >= maxHops {
					return out
				}
				out = append(out, parseHop(strings.TrimSpace(part)))
			}
		}
		return out
	}
	for _, line := range h.Values("Forwarded") {
		for _, elem := range strings.Split(line, ",") {
			for _, pair := range strings.Split(elem, ";") {
				k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
				if !ok || !strings.EqualFold(k, "for") {
					continue
				}
				if len(out) >= maxHops {
					return out
				}
				v = strings.Trim(v, `"`)
				out = append(out, parseHop(v))
			}
		}
	}
	return out
}

func parseHop(s string) netip.Addr {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap()
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap()
	}
	// Forwarded quotes IPv6 as "[2001:db8::1]" with an optional port.
	s = strings.TrimPrefix(s, "[")
	if i := strings.Index(s, "]"); i >= 0 {
		s = s[:i]
	}
	a, _ := netip.ParseAddr(s)
	return a.Unmap()
}
