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
// caller can stop at them. Only the rightmost maxHops entries are kept: those are the
// ones our trusted proxies appended, while everything to their left is whatever the
// client sent, so cutting from the left could hand the client's own (forged) entries
// to the caller as if a proxy had written them.
func forwardedHops(h http.Header) []netip.Addr {
	var parts []string
	if xff := h.Values("X-Forwarded-For"); len(xff) > 0 {
		for i := len(xff) - 1; i >= 0 && len(parts) < maxHops; i-- {
			parts = appendRight(parts, xff[i], func(s string) (string, bool) { return s, true })
		}
	} else {
		fv := h.Values("Forwarded")
		for i := len(fv) - 1; i >= 0 && len(parts) < maxHops; i-- {
			parts = appendRight(parts, fv[i], forwardedFor)
		}
	}
	out := make([]netip.Addr, len(parts))
	for i, p := range parts {
		out[len(parts)-1-i] = parseHop(strings.TrimSpace(p))
	}
	return out
}

// appendRight appends the comma-separated elements of line to parts, rightmost
// first, until parts holds maxHops; pick turns an element into a hop (false: the
// element names no hop).
func appendRight(parts []string, line string, pick func(string) (string, bool)) []string {
	for len(parts) < maxHops {
		i := strings.LastIndexByte(line, ',')
		if hop, ok := pick(line[i+1:]); ok {
			parts = append(parts, hop)
		}
		if i < 0 {
			break
		}
		line = line[:i]
	}
	return parts
}

// forwardedFor returns the for= value of one Forwarded element.
func forwardedFor(elem string) (string, bool) {
	for pair := range strings.SplitSeq(elem, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if ok && strings.EqualFold(k, "for") {
			return strings.Trim(v, `"`), true
		}
	}
	return "", false
}

// parseHop parses one forwarded address. A zone ("fe80::1%eth0") is refused: it
// would make one address into many distinct per-IP keys.
func parseHop(s string) netip.Addr {
	if a, err := netip.ParseAddr(s); err == nil {
		return noZone(a)
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return noZone(ap.Addr())
	}
	// Forwarded quotes IPv6 as "[2001:db8::1]" with an optional port.
	s = strings.TrimPrefix(s, "[")
	if i := strings.Index(s, "]"); i >= 0 {
		s = s[:i]
	}
	a, _ := netip.ParseAddr(s)
	return noZone(a)
}

func noZone(a netip.Addr) netip.Addr {
	if a.Zone() != "" {
		return netip.Addr{}
	}
	return a.Unmap()
}
