package check

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"sync"
)

// srcAlloc hands out loopback source addresses (127.R.S.n, from a random
// /16 per run) so that each probe connection of a run against a loopback
// target comes from its own address: one probe's per-address refusal, rate
// limit or ban cannot poison the next probe, nor a user's browser on
// 127.0.0.1, nor the next run.
type srcAlloc struct {
	mu   sync.Mutex
	base [4]byte
	n    uint16
}

// newSrcAlloc returns an allocator when the target is an IPv4 loopback
// address (or a name resolving to one) and this host can bind 127/8
// addresses (Linux can; macOS only 127.0.0.1 unless configured).
func newSrcAlloc(ctx context.Context, host string) (*srcAlloc, error) {
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", host, err)
	}
	v4 := false
	for _, a := range addrs {
		v4 = v4 || a.Unmap().Is4()
	}
	if !v4 {
		return nil, fmt.Errorf("the target %s is not an IPv4 loopback address", host)
	}
	var r [2]byte
	_, _ = rand.Read(r[:])
	s := &srcAlloc{base: [4]byte{127, 16 + r[0]%224, r[1], 0}}
	probe := s.next()
	l, err := net.Listen("tcp4", netip.AddrPortFrom(probe, 0).String())
	if err != nil {
		return nil, fmt.Errorf("this host cannot bind %s as a source address: %w", probe, err)
	}
	_ = l.Close()
	return s, nil
}

// next returns a fresh address; after 65,000 it wraps (a run uses a few
// hundred).
func (s *srcAlloc) next() netip.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	if s.n >= 254*254 {
		s.n = 1
	}
	b := s.base
	b[2] += byte(s.n / 254)
	b[3] = byte(1 + s.n%254)
	return netip.AddrFrom4(b)
}

// source is the address of the next connection of this check: the pinned
// one, a fresh one when isolating, or the system's choice.
func (e *env) source() netip.Addr {
	if e.pin.IsValid() {
		return e.pin
	}
	if e.sh.srcs == nil {
		return netip.Addr{}
	}
	return e.sh.srcs.next()
}

// fresh returns a new address even when the check is pinned (the check
// compares a used address with an unused one); invalid without isolation.
func (e *env) fresh() netip.Addr {
	if e.sh.srcs == nil {
		return netip.Addr{}
	}
	return e.sh.srcs.next()
}

// pinned returns a copy of e whose connections all come from one address.
// ok is false without isolation (the system picks one address anyway, but
// the result cannot compare addresses).
func (e *env) pinned() (*env, bool) {
	pe := *e
	if e.sh.srcs == nil {
		return &pe, false
	}
	pe.pin = e.sh.srcs.next()
	return &pe, true
}

// netDialer opens TCP connections from src (any address when invalid).
func (e *env) netDialer(src netip.Addr) *net.Dialer {
	d := &net.Dialer{Timeout: e.o.Timeout}
	if src.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
	}
	return d
}
