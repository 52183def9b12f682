//go:build linux

package transport

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// fdPair returns a detached server socket and its client, over loopback TCP.
func fdPair(t *testing.T) (*fdConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c, err := detachTCP(sc.(*net.TCPConn))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	// The *net.TCPConn is closed; the socket lives on in c.
	if _, err := sc.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write on the detached TCPConn: %v, want net.ErrClosed", err)
	}
	return c, client.(*net.TCPConn)
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(ents)
}

// A detached socket reads, writes, shuts down its sending side and closes
// like the *net.TCPConn it was, with the same errors; its descriptor is
// closed exactly once.
func TestFdConnLikeTCPConn(t *testing.T) {
	if l, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
		_ = l.Close() // the netpoller's own descriptors, made on first use
	}
	before := openFDs(t)
	c, client := fdPair(t)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second)) // no read here waits unbounded
	if got, want := c.RemoteAddr().String(), client.LocalAddr().String(); got != want {
		t.Errorf("RemoteAddr %s, want %s", got, want)
	}
	if got, want := c.LocalAddr().String(), client.RemoteAddr().String(); got != want {
		t.Errorf("LocalAddr %s, want %s", got, want)
	}
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := io.ReadFull(client, buf[:5]); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("client read %q %v", buf[:n], err)
	}
	// A read that must wait (nothing sent yet) gets what comes.
	go func() {
		time.Sleep(20 * time.Millisecond)
		_, _ = client.Write([]byte("world"))
	}()
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "world" {
		t.Fatalf("read %q %v", buf[:n], err)
	}
	if c.file.Load() == nil {
		t.Fatal("a read that waited did not hand the descriptor to the netpoller")
	}
	// CloseWrite: the client reads EOF, and can still send.
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Read(buf); err != io.EOF {
		t.Fatalf("client read after CloseWrite: %v, want EOF", err)
	}
	_, _ = client.Write([]byte("late"))
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "late" {
		t.Fatalf("read after CloseWrite %q %v", buf[:n], err)
	}
	// The peer's end is io.EOF.
	_ = client.CloseWrite()
	if _, err := c.Read(buf); err != io.EOF {
		t.Fatalf("read at the peer's end: %v, want EOF", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"close":    c.Close(),
		"read":     func() error { _, err := c.Read(buf); return err }(),
		"write":    func() error { _, err := c.Write(buf); return err }(),
		"control":  c.raw().Control(func(uintptr) { t.Error("control ran after close") }),
		"deadline": c.SetReadDeadline(time.Now()),
	} {
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("%s after close: %v, want net.ErrClosed", name, err)
		}
	}
	_ = client.Close()
	if after := openFDs(t); after != before {
		t.Errorf("%d descriptors open, %d before", after, before)
	}
}

// Deadlines: a read or write that waits past its deadline fails with a
// timeout (os.ErrDeadlineExceeded, net.Error.Timeout), a deadline passed
// before the call fails it at once, and clearing it lets the next call wait.
func TestFdConnDeadlines(t *testing.T) {
	c, client := fdPair(t)
	buf := make([]byte, 16)
	_ = c.SetReadDeadline(time.Now().Add(-time.Second))
	if _, err := c.Read(buf); !isTimeout(err) {
		t.Fatalf("read past its deadline (never waited): %v", err)
	}
	if c.file.Load() != nil {
		t.Fatal("a read past its deadline waited")
	}
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
	if _, err := c.Read(buf); !isTimeout(err) {
		t.Fatalf("read that waited past its deadline: %v", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second)) // far, but bounded
	go func() {
		time.Sleep(20 * time.Millisecond)
		_, _ = client.Write([]byte("ok"))
	}()
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "ok" {
		t.Fatalf("read after clearing the deadline: %q %v", buf[:n], err)
	}

	// The client reads nothing: the socket fills, and the write times out
	// with what went out counted.
	big := bytes.Repeat([]byte("x"), 64<<20)
	_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	n, err := c.Write(big)
	if !isTimeout(err) || n <= 0 || n >= len(big) {
		t.Fatalf("write to a full socket: %d bytes, %v", n, err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) && errors.As(err, &ne) && ne.Timeout()
}

// Close wakes a read and a write waiting in the netpoller, with
// net.ErrClosed, and the peer sees the socket closed.
func TestFdConnCloseWakesWaiters(t *testing.T) {
	c, client := fdPair(t)
	errs := make(chan error, 2)
	go func() {
		_, err := c.Read(make([]byte, 16))
		errs <- err
	}()
	go func() {
		_, err := c.Write(bytes.Repeat([]byte("x"), 64<<20))
		errs <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for c.file.Load() == nil && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	_ = c.Close()
	for range 2 {
		select {
		case err := <-errs:
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("waiting use after Close: %v, want net.ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Close did not wake a waiting use")
		}
	}
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, client); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("client after the server's close: %v", err)
	}
}

// No use of the descriptor starts after Close, and none that started sees
// it closed or reused: while goroutines use the socket and others open and
// close sockets (taking any descriptor number freed), every use finds the
// descriptor still naming this connection.
func TestFdConnNoUseAfterClose(t *testing.T) {
	for round := range 20 {
		c, client := fdPair(t)
		want := client.LocalAddr().(*net.TCPAddr).Port
		var wrong atomic.Int32
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for range 4 {
			wg.Go(func() {
				for {
					err := c.raw().Control(func(fd uintptr) {
						sa, err := syscall.Getpeername(int(fd))
						if a, ok := sa.(*syscall.SockaddrInet4); err != nil || !ok || a.Port != want {
							wrong.Add(1)
						}
					})
					if err != nil {
						return
					}
				}
			})
		}
		wg.Go(func() { // takes freed descriptor numbers
			for {
				select {
				case <-stop:
					return
				default:
				}
				if l, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
					_ = l.Close()
				}
			}
		})
		time.Sleep(time.Duration(round%4) * time.Millisecond)
		_ = c.Close()
		time.Sleep(5 * time.Millisecond)
		close(stop)
		wg.Wait()
		if n := wrong.Load(); n > 0 {
			t.Fatalf("round %d: %d uses saw the descriptor closed or reused", round, n)
		}
		_ = client.Close()
	}
}

// An idle parked connection holds its fdConn for life (TestConnSizeClasses).
func TestFdConnSizeClass(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("64-bit layout")
	}
	if size := unsafe.Sizeof(fdConn{}); size > 80 {
		t.Errorf("fdConn is %d bytes, over its 80-byte size class", size)
	}
}

// A parked connection's socket is detached at the upgrade; other readers
// keep their *net.TCPConn.
func TestParkedSocketDetached(t *testing.T) {
	for _, r := range []string{ReaderParked, ReaderEvent} {
		ds := startDetached(t, &Options{Reader: r}, true, true)
		rc := dialRaw(t, ds.testServer)
		c := ds.conn(t)
		_, detached := c.NetConn().(*fdConn)
		if detached != (r == ReaderParked) {
			t.Errorf("reader %s: socket is %T", r, c.NetConn())
		}
		rc.write(frame(0x81, []byte("echo"), true))
		if _, p, err := rc.readFrame(); err != nil || string(p) != "echo" {
			t.Errorf("reader %s: echo %q %v", r, p, err)
		}
	}
}
