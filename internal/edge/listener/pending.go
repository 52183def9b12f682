package listener

import (
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/wsgate/wsgate/internal/state/limit"
)

// Pending bounds connections that are open but have not finished their HTTP
// handshake (TCP accepted, upgrade not yet done or refused), per client IP and in
// total. Without it one address can hold thousands of silent sockets until the
// header timeout frees them, and exhaust the process's file descriptors before any
// WebSocket check runs. Over the bound, a new connection is closed at accept.
//
// Peers in Trusted (TLS-terminating proxies) are exempt from the per-IP bound:
// every client behind them shares their address.
//
// "Per IP" means per key of Key (limit.IPPrefixes.Key, as every other per-IP
// control): with the default, all addresses of one IPv6 /64 share one bound.
type Pending struct {
	PerIP   int // 0 = unlimited
	Total   int // 0 = unlimited
	Trusted []netip.Prefix
	// Key maps a peer address onto its per-IP key; nil: the default prefixes.
	Key func(netip.Addr) string
	Log *slog.Logger

	mu      sync.Mutex
	byIP    map[string]int
	open    map[string]string // remote address → counted key, released once
	total   int
	refused atomic.Uint64
}

// Refused counts connections closed at accept because of the bounds.
func (p *Pending) Refused() uint64 { return p.refused.Load() }

// Wrap returns a listener that applies the bounds; pair it with ConnState on the
// http.Server so that finished handshakes are released.
func (p *Pending) Wrap(ln net.Listener) net.Listener {
	p.mu.Lock()
	if p.byIP == nil {
		p.byIP = make(map[string]int)
		p.open = make(map[string]string)
	}
	p.mu.Unlock()
	return &pendingListener{Listener: ln, p: p}
}

type pendingListener struct {
	net.Listener
	p *Pending
}

func (l *pendingListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.p.admit(c.RemoteAddr().String()) {
			return c, nil
		}
		l.p.refused.Add(1)
		_ = c.Close()
	}
}

func (p *Pending) admit(remote string) bool {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return true
	}
	ip := ap.Addr().Unmap()
	key := limit.IPPrefixes{}.Key(ip)
	if p.Key != nil {
		key = p.Key(ip)
	}
	trusted := false
	for _, pr := range p.Trusted {
		if pr.Contains(ip) {
			trusted = true
			break
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.Total > 0 && p.total >= p.Total {
		return false
	}
	if !trusted && p.PerIP > 0 && p.byIP[key] >= p.PerIP {
		return false
	}
	p.total++
	p.byIP[key]++
	p.open[remote] = key
	return true
}

// ConnState is the http.Server hook: a connection stops being pending when it is
// hijacked (upgraded to a WebSocket) or closed.
func (p *Pending) ConnState(c net.Conn, st http.ConnState) {
	if st != http.StateHijacked && st != http.StateClosed {
		return
	}
	remote := c.RemoteAddr().String()
	p.mu.Lock()
	defer p.mu.Unlock()
	ip, ok := p.open[remote]
	if !ok {
		return
	}
	delete(p.open, remote)
	p.total--
	if n := p.byIP[ip] - 1; n > 0 {
		p.byIP[ip] = n
	} else {
		delete(p.byIP, ip)
	}
}

// InFlight returns the number of pending connections.
func (p *Pending) InFlight() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.total
}
