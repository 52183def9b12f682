package listener

import (
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/state/limit"
)

func TestPendingBoundsSilentConnectionsPerIP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Pending{PerIP: 5}
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }),
		ReadHeaderTimeout: 10 * time.Second,
		ConnState:         p.ConnState,
	}
	go func() { _ = srv.Serve(p.Wrap(ln)) }()
	defer srv.Close()
	var silent []net.Conn
	for i := 0; i < 8; i++ {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		silent = append(silent, c)
	}
	// The three over the bound are closed by the server at once.
	closed := 0
	for _, c := range silent {
		_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err != nil && !isTimeout(err) {
			closed++
		}
	}
	if closed != 3 || p.Refused() != 3 {
		t.Fatalf("closed %d, refused %d; want 3", closed, p.Refused())
	}
	// Once the silent ones go away, a real client gets through again.
	for _, c := range silent {
		c.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for p.InFlight() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	resp, err := http.Get("http://" + ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if p.InFlight() > 1 {
		t.Fatalf("in flight %d after the client finished", p.InFlight())
	}
}

func TestPendingTrustedProxyExempt(t *testing.T) {
	p := &Pending{PerIP: 1, Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
	p.Wrap(nil)
	for i := 0; i < 5; i++ {
		if !p.admit("127.0.0.1:" + string(rune('1'+i)) + "000") {
			t.Fatal("trusted proxy limited per IP")
		}
	}
	q := &Pending{PerIP: 1}
	q.Wrap(nil)
	if !q.admit("10.0.0.1:1000") || q.admit("10.0.0.1:1001") {
		t.Fatal("per-IP bound not applied")
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// Issue 13.3: the pending bound counts an IPv6 client by its /64 (the same key
// as every other per-IP control), so rotating addresses inside it buys nothing.
func TestPendingKeysIPv6ByPrefix(t *testing.T) {
	p := &Pending{PerIP: 3}
	p.Wrap(nil)
	admitted := 0
	for i := 1; i <= 60; i++ {
		if p.admit(netip.AddrPortFrom(netip.MustParseAddr("2001:db8:1:2::"+strconv.Itoa(i)), 1000).String()) {
			admitted++
		}
	}
	if admitted != 3 {
		t.Fatalf("60 silent sockets from one /64: %d admitted, want 3", admitted)
	}
	if !p.admit("[2001:db8:1:3::1]:1000") {
		t.Fatal("another /64 refused")
	}
	// A configured key function is used as given.
	q := &Pending{PerIP: 1, Key: limit.IPPrefixes{V6: 128}.Key}
	q.Wrap(nil)
	if !q.admit("[2001:db8::1]:1") || !q.admit("[2001:db8::2]:1") || q.admit("[2001:db8::2]:2") {
		t.Fatal("ipv6 prefix 128 not applied")
	}
}
