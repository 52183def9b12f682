package transport

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"
	"unsafe"
)

// TryResult is what Conn.TryWriteMessage did.
type TryResult uint8

const (
	// TryBlocked: nothing was written (the socket's send buffer is full,
	// another write is in progress, or the connection cannot be written
	// without gws: TLS, compression). Write the message the ordinary way.
	TryBlocked TryResult = iota
	// TryWritten: the whole frame was written.
	TryWritten
	// TryPartial: the frame was written in part; the connection keeps the
	// rest and writes it before any other frame. Call Flush (from a goroutine
	// that may block) unless another write follows anyway.
	TryPartial
)

// Direct writes: frames written on a plain TCP server socket without gws
// (wireConn.direct), serialized with every other write by wireConn.wmu. What
// a write needs while it runs comes from a pool (a directWrite for
// TryWriteMessage, a multiWrite for writes that may wait, batch.go), so that
// an idle connection holds no write state: only its socket's RawConn
// (wireConn.rc), which its reads use too.

// directWrite is one TryWriteMessage in progress (wmu held): the header, the
// data, rc.Write's callback and what it did. (A write that may wait is a
// multiWrite, batch.go.)
type directWrite struct {
	// ready is writeReady as a method value, made once per pooled value so
	// that a write allocates nothing.
	ready func(fd uintptr) bool
	hbuf  [10]byte
	hdr   []byte
	data  []byte
	n     int
	err   error
}

var directWrites = sync.Pool{New: func() any {
	d := &directWrite{}
	d.ready = d.writeReady
	return d
}}

// writeReady is rc.Write's callback: one writev, never a wait.
func (d *directWrite) writeReady(fd uintptr) bool {
	d.n, d.err = writev2(fd, d.hdr, d.data)
	return true
}

// DirectWrites reports whether TryWriteMessage can write this connection
// (server side, plain TCP, no compression).
func (c *Conn) DirectWrites() bool { return c.wire.direct }

// TryWriteMessage writes one unfragmented message without blocking, for a
// caller that must not wait for this connection (a fan-out loop). It never
// waits for the socket, for another writer, or for the write deadline: when
// the frame cannot go out at once it writes nothing and returns TryBlocked,
// and the caller queues the message for a writer that may block. Order with
// the connection's other writes is kept (they are serialized with it). An
// error means the socket failed; the caller treats it like a failed write.
func (c *Conn) TryWriteMessage(op Opcode, data []byte) (TryResult, error) {
	if !c.wire.direct || (op != Text && op != Binary) || len(data) > maxWriteBytes {
		return TryBlocked, nil
	}
	if op == Text && !utf8.Valid(data) {
		return TryBlocked, ErrInvalidUTF8
	}
	w := c.wire
	if !w.wmu.TryLock() {
		return TryBlocked, nil
	}
	defer w.wmu.Unlock()
	if w.tail != nil || w.closeSent || w.closing.Load() {
		return TryBlocked, nil
	}
	dw := directWrites.Get().(*directWrite)
	defer directWrites.Put(dw)
	hl := frameHeader(dw.hbuf[:], op, len(data))
	hdr := dw.hbuf[:hl]
	dw.hdr, dw.data, dw.n, dw.err = hdr, data, 0, nil
	rc := w.rc
	err := rc.Write(dw.ready)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// The deadline the last blocking write set has passed since. It
		// bounds that write only (every blocking write sets its own, under
		// wmu, which is held here): clear it rather than refuse.
		_ = w.raw.SetWriteDeadline(time.Time{})
		err = rc.Write(dw.ready)
	}
	n, werr := dw.n, dw.err
	dw.hdr, dw.data, dw.err = nil, nil, nil
	if err != nil {
		if errors.Is(err, net.ErrClosed) {
			return TryBlocked, ErrClosed
		}
		return TryBlocked, fmt.Errorf("transport: write: %w", err)
	}
	if werr == syscall.EAGAIN {
		return TryBlocked, nil
	}
	if werr != nil {
		return TryBlocked, fmt.Errorf("transport: write: %w", werr)
	}
	total := hl + len(data)
	switch {
	case n >= total:
		return TryWritten, nil
	case n <= 0:
		return TryBlocked, nil
	}
	tail := make([]byte, 0, total-n)
	if n < hl {
		tail = append(tail, hdr[n:hl]...)
		tail = append(tail, data...)
	} else {
		tail = append(tail, data[n-hl:]...)
	}
	w.tail = &tail
	return TryPartial, nil
}

// Flush writes what a TryPartial left, with the write deadline. It may block.
func (c *Conn) Flush() error {
	w := c.wire
	w.wmu.Lock()
	defer w.wmu.Unlock()
	return c.wrapWriteErr(w.flushTailLocked())
}

// flushTailLocked writes the rest of a partially written frame; wmu is held.
func (w *wireConn) flushTailLocked() error {
	if w.tail == nil {
		return nil
	}
	t := *w.tail
	w.tail = nil
	_, err := w.writeDeadlined(t)
	return err
}

// frameHeader puts the header of an unmasked, final frame of n payload bytes
// in b (at least 10 bytes) and returns its length.
func frameHeader(b []byte, op Opcode, n int) int {
	b[0] = 0x80 | byte(op)
	switch {
	case n < 126:
		b[1] = byte(n)
		return 2
	case n < 1<<16:
		b[1] = 126
		b[2], b[3] = byte(n>>8), byte(n)
		return 4
	default:
		b[1] = 127
		for i := 0; i < 8; i++ {
			b[9-i] = byte(uint64(n) >> (8 * i))
		}
		return 10
	}
}

// writev2 writes a and b with one non-blocking writev, retrying EINTR.
func writev2(fd uintptr, a, b []byte) (int, error) {
	var iov [2]syscall.Iovec
	cnt := 0
	for _, p := range [2][]byte{a, b} {
		if len(p) > 0 {
			iov[cnt].Base = &p[0]
			iov[cnt].SetLen(len(p))
			cnt++
		}
	}
	if cnt == 0 {
		return 0, nil
	}
	for {
		r, _, e := syscall.Syscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(cnt))
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(r), nil
	}
}
