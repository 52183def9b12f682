package transport

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
)

// NetDial replaces the TCP connect: the hook sees the address, may bind a
// source address, and its error is returned wrapped.
func TestDialNetDialHook(t *testing.T) {
	ts := startServer(t, &Options{}, true, "")
	var calls atomic.Int32
	var local atomic.Value
	hook := func(ctx context.Context, network, addr string) (net.Conn, error) {
		calls.Add(1)
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
		c, err := d.DialContext(ctx, network, addr)
		if err == nil {
			local.Store(c.LocalAddr().String())
		}
		return c, err
	}
	c, h, _ := dial(t, ts.wsURL(), &DialOptions{NetDial: hook})
	if err := c.WriteMessage(Text, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if got := h.next(t, "message"); string(got.data) != "hi" {
		t.Fatalf("echo %q", got.data)
	}
	if calls.Load() != 1 || !strings.HasPrefix(local.Load().(string), "127.0.0.2:") {
		t.Fatalf("hook calls %d local %v", calls.Load(), local.Load())
	}

	boom := errors.New("boom")
	_, _, err := Dial(context.Background(), ts.wsURL(), &DialOptions{NetDial: func(context.Context, string, string) (net.Conn, error) {
		return nil, boom
	}}, newRecorder(false))
	if !errors.Is(err, boom) {
		t.Fatalf("hook error not returned: %v", err)
	}
	_, _, err = Dial(context.Background(), ts.wsURL(), &DialOptions{NetDial: func(context.Context, string, string) (net.Conn, error) {
		return nil, nil
	}}, newRecorder(false))
	if err == nil {
		t.Fatal("nil conn from hook accepted")
	}
}
