//go:build linux

package transport

import (
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// fdConn is a parked server connection's TCP socket once the upgrade is done:
// the bare file descriptor, outside Go's netpoller. A *net.TCPConn costs an
// idle connection ≈ 0.3 KiB of heap (the netFD, both addresses and their
// sockaddrs) and ≈ 0.6 KiB outside it (the runtime's poll descriptor with its
// two deadline timers, the finalizer record); an fdConn is 80 bytes. It can
// be this small because nothing waits on it in the common case: the parked
// reader waits in the transport's own epoll set and reads without blocking,
// and writes are tried without waiting first.
//
// What must wait — a write to a full socket, the closing handshake's reads,
// a read with a deadline — hands the descriptor to an *os.File, once, which
// registers it in Go's netpoller: from then on the waits, and their
// deadlines, are the runtime's, as they were with the *net.TCPConn.
//
// The descriptor's lifetime is guarded as internal/poll guards a netFD's
// (that package is not importable): every use holds a reference, Close marks
// the conn closed so that no new use starts, and the descriptor is closed by
// whoever drops the last reference. A descriptor number is reused by the
// next accept as soon as it is closed, so a write that started after its
// close would go to another client: no use of fd may happen without a
// reference.
type fdConn struct {
	// state counts the references: fdOpenRef (held from creation until
	// Close) plus one per use in progress; fdClosed is set by Close.
	state atomic.Int64
	// Deadlines in Unix nanoseconds, 0 for none; mu orders their changes
	// with the handover to file.
	rdl, wdl atomic.Int64
	// file owns the descriptor once a use had to wait (see waitFile).
	file atomic.Pointer[os.File]
	mu   sync.Mutex
	fd   int
	// raddr is the peer's address, for errors and logs (the local one is
	// asked of the socket when wanted).
	raddr netip.AddrPort
}

const (
	fdOpenRef = 1
	fdClosed  = 1 << 62
)

// detachTCP takes tc's socket out of Go's netpoller: the descriptor is
// duplicated and tc closed (which closes only its own descriptor: the socket
// stays open through the duplicate, nothing is sent). On failure (no
// descriptor left for the duplicate) tc is returned untouched, with the
// error.
func detachTCP(tc *net.TCPConn) (*fdConn, error) {
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil, err
	}
	nfd := -1
	var derr error
	if err := rc.Control(func(fd uintptr) {
		r, _, e := syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_DUPFD_CLOEXEC, 0)
		if e != 0 {
			derr = os.NewSyscallError("fcntl", e)
			return
		}
		nfd = int(r)
	}); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, derr
	}
	c := &fdConn{fd: nfd}
	if a, ok := tc.RemoteAddr().(*net.TCPAddr); ok {
		c.raddr = a.AddrPort()
	}
	c.state.Store(fdOpenRef)
	_ = tc.Close()
	return c, nil
}

// incref takes a reference for one use of fd; false once the conn is closed.
func (c *fdConn) incref() bool {
	for {
		s := c.state.Load()
		if s&fdClosed != 0 {
			return false
		}
		if c.state.CompareAndSwap(s, s+1) {
			return true
		}
	}
}

// decref drops a reference; the last one after Close closes the descriptor.
func (c *fdConn) decref() {
	if c.state.Add(-1) == fdClosed {
		c.destroy()
	}
}

// destroy closes the descriptor: exactly once, when the conn is closed and
// no use is in progress. Closing it also takes it out of every epoll set.
func (c *fdConn) destroy() {
	if f := c.file.Load(); f != nil {
		_ = f.Close() // wakes its waiters; closes fd once they are out
		return
	}
	_ = syscall.Close(c.fd)
}

// Close marks the conn closed; the descriptor is closed now, or by the use
// in progress that ends last. A use waiting in the netpoller (file) is woken
// by the descriptor's close.
func (c *fdConn) Close() error {
	for {
		s := c.state.Load()
		if s&fdClosed != 0 {
			return c.opError("close", net.ErrClosed)
		}
		if c.state.CompareAndSwap(s, s|fdClosed) {
			break
		}
	}
	c.decref() // the open reference
	return nil
}

func (c *fdConn) closed() bool { return c.state.Load()&fdClosed != 0 }

// rawOp is the syscall.RawConn Read and Write of an fdConn: f is tried on the
// descriptor; when it asks to wait (false), the wait is the netpoller's, on
// the file that owns the descriptor from then on.
func (c *fdConn) rawOp(write bool, f func(fd uintptr) bool) error {
	op, dl := "raw-read", &c.rdl
	if write {
		op, dl = "raw-write", &c.wdl
	}
	if !c.incref() {
		return c.opError(op, net.ErrClosed)
	}
	if d := dl.Load(); d != 0 && time.Now().UnixNano() >= d {
		c.decref()
		return c.opError(op, os.ErrDeadlineExceeded)
	}
	if f(uintptr(c.fd)) {
		c.decref()
		return nil
	}
	file, err := c.waitFile()
	c.decref()
	if err != nil {
		return c.opError(op, err)
	}
	rc, err := file.SyscallConn()
	if err == nil {
		if write {
			err = rc.Write(f)
		} else {
			err = rc.Read(f)
		}
	}
	if err != nil {
		if c.closed() {
			// The file was closed by destroy: the conn's Close.
			return c.opError(op, net.ErrClosed)
		}
		return c.opError(op, err)
	}
	return nil
}

// waitFile returns the *os.File that owns the descriptor, making it on first
// use; the caller holds a reference (so destroy cannot run meanwhile).
// os.NewFile registers a non-blocking descriptor in the netpoller.
func (c *fdConn) waitFile() (*os.File, error) {
	if f := c.file.Load(); f != nil {
		return f, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if f := c.file.Load(); f != nil {
		return f, nil
	}
	f := os.NewFile(uintptr(c.fd), "tcp")
	if f == nil {
		return nil, syscall.EBADF
	}
	// f owns the descriptor from here on, whatever follows: destroy
	// closes it through f (and f's finalizer would).
	c.file.Store(f)
	if err := applyDeadline(f.SetReadDeadline, c.rdl.Load()); err != nil {
		return nil, err // not in the netpoller after all: it cannot wait
	}
	if err := applyDeadline(f.SetWriteDeadline, c.wdl.Load()); err != nil {
		return nil, err
	}
	return f, nil
}

func applyDeadline(set func(time.Time) error, ns int64) error {
	if ns == 0 {
		return set(time.Time{})
	}
	return set(time.Unix(0, ns))
}

// raw is the conn as a syscall.RawConn (no allocation).
func (c *fdConn) raw() *fdRaw { return (*fdRaw)(c) }

// fdRaw is an fdConn's syscall.RawConn.
type fdRaw fdConn

func (r *fdRaw) Control(f func(fd uintptr)) error {
	c := (*fdConn)(r)
	if !c.incref() {
		return c.opError("raw-control", net.ErrClosed)
	}
	defer c.decref()
	f(uintptr(c.fd))
	return nil
}

func (r *fdRaw) Read(f func(fd uintptr) bool) error  { return (*fdConn)(r).rawOp(false, f) }
func (r *fdRaw) Write(f func(fd uintptr) bool) error { return (*fdConn)(r).rawOp(true, f) }

// SyscallConn is net.TCPConn's, for callers that look for it.
func (c *fdConn) SyscallConn() (syscall.RawConn, error) { return c.raw(), nil }

// Read reads into p, waiting for bytes up to the read deadline.
func (c *fdConn) Read(p []byte) (int, error) {
	var n int
	var rerr error
	err := c.raw().Read(func(fd uintptr) bool {
		for {
			n, rerr = syscall.Read(int(fd), p)
			if rerr != syscall.EINTR {
				return rerr != syscall.EAGAIN
			}
		}
	})
	switch {
	case err != nil:
		return 0, err
	case rerr != nil:
		return 0, c.opError("read", os.NewSyscallError("read", rerr))
	case n == 0 && len(p) > 0:
		return 0, io.EOF
	}
	return n, nil
}

// Write writes all of p, waiting for room up to the write deadline.
func (c *fdConn) Write(p []byte) (int, error) {
	var n int
	var werr error
	err := c.raw().Write(func(fd uintptr) bool {
		for n < len(p) {
			k, e := syscall.Write(int(fd), p[n:])
			switch {
			case e == syscall.EINTR:
				continue
			case e == syscall.EAGAIN:
				return false
			case e != nil:
				werr = e
				return true
			case k <= 0: // no progress without an error: do not spin
				werr = io.ErrUnexpectedEOF
				return true
			}
			n += k
		}
		return true
	})
	switch {
	case err != nil:
		return n, err
	case werr != nil:
		return n, c.opError("write", os.NewSyscallError("write", werr))
	}
	return n, nil
}

// CloseWrite shuts down the sending side (a FIN after what is queued).
func (c *fdConn) CloseWrite() error {
	var serr error
	if err := c.raw().Control(func(fd uintptr) { serr = syscall.Shutdown(int(fd), syscall.SHUT_WR) }); err != nil {
		return err
	}
	if serr != nil {
		return c.opError("close", os.NewSyscallError("shutdown", serr))
	}
	return nil
}

func (c *fdConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

func (c *fdConn) SetReadDeadline(t time.Time) error  { return c.setDeadline(&c.rdl, t, false) }
func (c *fdConn) SetWriteDeadline(t time.Time) error { return c.setDeadline(&c.wdl, t, true) }

// setDeadline records the deadline (a use that does not wait checks it
// before trying) and hands it to the file when there is one; mu orders it
// with waitFile, so the file ends with the last deadline set.
func (c *fdConn) setDeadline(dl *atomic.Int64, t time.Time, write bool) error {
	if c.closed() {
		return c.opError("set", net.ErrClosed)
	}
	ns := int64(0)
	if !t.IsZero() {
		ns = max(t.UnixNano(), 1)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	dl.Store(ns)
	f := c.file.Load()
	if f == nil {
		return nil
	}
	set := f.SetReadDeadline
	if write {
		set = f.SetWriteDeadline
	}
	if err := applyDeadline(set, ns); err != nil && !c.closed() {
		return c.opError("set", err)
	}
	return nil
}

// LocalAddr asks the socket (it is needed only for errors).
func (c *fdConn) LocalAddr() net.Addr {
	var sa syscall.Sockaddr
	_ = c.raw().Control(func(fd uintptr) { sa, _ = syscall.Getsockname(int(fd)) })
	switch a := sa.(type) {
	case *syscall.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]).To16(), Port: a.Port}
	case *syscall.SockaddrInet6:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}
	}
	return &net.TCPAddr{}
}

func (c *fdConn) RemoteAddr() net.Addr { return net.TCPAddrFromAddrPort(c.raddr) }

func (c *fdConn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Addr: c.RemoteAddr(), Err: err}
}

// detach moves a parked server connection's socket out of Go's netpoller
// (fdConn) once its handshake is written. A socket that cannot be moved (no
// descriptor left for the duplicate) stays a *net.TCPConn: it only costs
// more memory.
func (w *wireConn) detach() {
	tc, ok := w.raw.(*net.TCPConn)
	if !ok {
		return
	}
	c, err := detachTCP(tc)
	if err != nil {
		return
	}
	w.raw, w.rc = c, c.raw()
}
