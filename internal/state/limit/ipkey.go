package limit

import (
	"fmt"
	"net/netip"
)

// Default client prefixes for per-IP controls.
const (
	// DefaultIPv4Prefix keys IPv4 clients by their whole address.
	DefaultIPv4Prefix = 32
	// DefaultIPv6Prefix keys IPv6 clients by their /64: one customer (a home,
	// a VM) usually holds a whole /64 and can pick any address in it, so keying
	// on the full address would give an attacker 2^64 fresh buckets.
	DefaultIPv6Prefix = 64
)

// Bounds on configured prefixes: shorter ones would lump whole networks of
// unrelated clients into one bucket.
const (
	MinIPv4Prefix = 8
	MinIPv6Prefix = 16
)

// IPPrefixes says how much of a client address identifies one client for every
// per-IP control: handshake rate, connection and pending-connection caps, IP
// message and byte budgets, IP bans and per-IP alerts, in memory and in Redis
// alike. Key is the one function that turns an address into that identity.
//
// The zero value means the defaults (/32 and /64).
type IPPrefixes struct {
	V4 int // leading bits of an IPv4 address (default 32)
	V6 int // leading bits of an IPv6 address (default 64)
}

// Validate checks configured prefix lengths (0 means the default).
func (p IPPrefixes) Validate() error {
	if p.V4 != 0 && (p.V4 < MinIPv4Prefix || p.V4 > 32) {
		return fmt.Errorf("ipv4 prefix: must be between %d and 32, got %d", MinIPv4Prefix, p.V4)
	}
	if p.V6 != 0 && (p.V6 < MinIPv6Prefix || p.V6 > 128) {
		return fmt.Errorf("ipv6 prefix: must be between %d and 128, got %d", MinIPv6Prefix, p.V6)
	}
	return nil
}

// Bits returns the prefix length applied to a (IPv4-mapped IPv6 counts as IPv4).
func (p IPPrefixes) Bits(a netip.Addr) int {
	if a.Unmap().Is4() {
		if p.V4 <= 0 || p.V4 > 32 {
			return DefaultIPv4Prefix
		}
		return p.V4
	}
	if p.V6 <= 0 || p.V6 > 128 {
		return DefaultIPv6Prefix
	}
	return p.V6
}

// Key returns the per-IP key of a client address: the address itself when the
// prefix covers all of it ("203.0.113.7"), else the masked prefix in CIDR form
// ("2001:db8:1:2::/64"), which is also what bans and the admin API show.
// IPv4-mapped IPv6 is unmapped and zones are dropped, so one client has one key.
// An invalid address yields "" (callers skip per-IP controls they cannot key;
// the guard never admits such a peer without its other checks).
func (p IPPrefixes) Key(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	a = a.Unmap().WithZone("")
	bits := p.Bits(a)
	if bits == a.BitLen() {
		return a.String()
	}
	pr, err := a.Prefix(bits)
	if err != nil {
		return a.String()
	}
	return pr.String()
}
