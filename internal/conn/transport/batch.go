package transport

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"
	"unsafe"
)

// MaxBatch is the most messages WriteMessages writes in one call.
const MaxBatch = 64

// WriteMessages writes msgs as consecutive frames of opcode op, as that many
// WriteMessage calls would, and reports how many went out whole. A
// connection that the transport writes on a plain socket (DirectWrites) gets
// them in one writev per wake-up of the socket, not one per message: this is
// how a queue that built up behind a slow reader drains. A text message that
// is not valid UTF-8 stops the batch before it (ErrInvalidUTF8), as
// WriteMessage refuses it.
func (c *Conn) WriteMessages(op Opcode, msgs [][]byte) (int, error) {
	if op != Text && op != Binary {
		return 0, fmt.Errorf("transport: write: invalid opcode %d", op)
	}
	if len(msgs) > MaxBatch {
		return 0, fmt.Errorf("transport: write: %d messages exceed the batch of %d", len(msgs), MaxBatch)
	}
	valid, bad := len(msgs), error(nil)
	for i, m := range msgs {
		if len(m) > maxWriteBytes {
			valid, bad = i, fmt.Errorf("transport: write: %d bytes exceeds %d", len(m), maxWriteBytes)
			break
		}
		if op == Text && !utf8.Valid(m) {
			valid, bad = i, ErrInvalidUTF8
			break
		}
	}
	if !c.wire.direct || valid < 2 {
		for i := range valid {
			if err := c.wrapWriteErr(c.writeFrame(op, msgs[i])); err != nil {
				return i, err
			}
		}
		return valid, bad
	}
	if err := c.wrapWriteErr(c.wire.writeOwnFrames(op, msgs[:valid])); err != nil {
		return 0, err
	}
	return valid, bad
}

// multiWrite is one write of frames in progress (wmu held): the frames'
// headers, the iovecs of headers and payloads, and rc.Write's callback. A
// write to a full socket holds its multiWrite while it waits, so a
// single frame's is small (singleWrites) and only a batch takes room for
// MaxBatch (batchWrites).
type multiWrite struct {
	all  func(fd uintptr) bool // writeAll as a method value, made once per pooled value
	hdrs [][10]byte
	iov  []syscall.Iovec
	idx  int // first iovec not yet written
	cnt  int
	wait bool // writeAll waits for room (rc.Write's wait) instead of returning
	err  error
}

func newMultiWrite(frames int) *multiWrite {
	m := &multiWrite{hdrs: make([][10]byte, frames), iov: make([]syscall.Iovec, 2*frames)}
	m.all = m.writeAll
	return m
}

var (
	singleWrites = sync.Pool{New: func() any { return newMultiWrite(1) }}
	batchWrites  = sync.Pool{New: func() any { return newMultiWrite(MaxBatch) }}
)

// writeFramesLocked writes the frames whole on a direct connection, wmu held: first without a deadline (a socket
// with room takes them at once, and only a write that must wait pays for
// setting one: a clock read and a timer), then, for what is left, waiting
// for room up to the write deadline, which is cleared after.
func (w *wireConn) writeFramesLocked(op Opcode, msgs [][]byte) error {
	pool := &batchWrites
	if len(msgs) == 1 {
		pool = &singleWrites
	}
	m := pool.Get().(*multiWrite)
	m.load(op, msgs)
	rc := w.rc
	err := rc.Write(m.all)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// A deadline an earlier write left has passed: it bounded that write.
		_ = w.raw.SetWriteDeadline(time.Time{})
		err = rc.Write(m.all)
	}
	if err == nil && m.err == nil && m.idx < m.cnt {
		m.wait = true
		if w.writeTimeout > 0 {
			_ = w.raw.SetWriteDeadline(time.Now().Add(w.writeTimeout))
		}
		err = rc.Write(m.all)
		if w.writeTimeout > 0 && err == nil {
			_ = w.raw.SetWriteDeadline(time.Time{})
		}
	}
	if err == nil {
		err = m.err
	}
	clear(m.iov[:m.cnt]) // the payloads are not ours to keep alive
	pool.Put(m)
	if err != nil {
		return fmt.Errorf("transport: write: %w", err)
	}
	return nil
}

// load sets m up to write msgs as frames of op: each frame's header and
// payload as iovecs (a payload is not copied).
func (m *multiWrite) load(op Opcode, msgs [][]byte) {
	m.idx, m.cnt, m.wait, m.err = 0, 0, false, nil
	for i, p := range msgs {
		hl := frameHeader(m.hdrs[i][:], op, len(p))
		m.iov[m.cnt].Base = &m.hdrs[i][0]
		m.iov[m.cnt].SetLen(hl)
		m.cnt++
		if len(p) > 0 {
			m.iov[m.cnt].Base = &p[0]
			m.iov[m.cnt].SetLen(len(p))
			m.cnt++
		}
	}
}

// writeAll is rc.Write's callback: writev until every iovec is out. When the
// socket is full it returns false (rc.Write waits for room, up to the
// deadline) if wait is set, else true with the rest left from idx.
func (m *multiWrite) writeAll(fd uintptr) bool {
	for m.idx < m.cnt {
		r, _, e := syscall.Syscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&m.iov[m.idx])), uintptr(m.cnt-m.idx))
		switch {
		case e == syscall.EINTR:
			continue
		case e == syscall.EAGAIN:
			return !m.wait
		case e != 0:
			m.err = e
			return true
		case r == 0: // no progress without an error: do not spin
			m.err = syscall.EIO
			return true
		}
		m.advance(int(r))
	}
	return true
}

// advance drops n written bytes from the front of the iovecs.
func (m *multiWrite) advance(n int) {
	for n > 0 && m.idx < m.cnt {
		v := &m.iov[m.idx]
		if l := int(v.Len); n >= l {
			n -= l
			m.idx++
			continue
		}
		v.Base = (*byte)(unsafe.Add(unsafe.Pointer(v.Base), n))
		v.SetLen(int(v.Len) - n)
		n = 0
	}
}
