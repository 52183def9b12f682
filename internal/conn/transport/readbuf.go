package transport

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
)

// gwsReadBufferSize is the size of the bufio.Reader handed to gws for a
// connection whose socket reads go through a pooled buffer (bufio's minimum):
// gws reads frame headers through it, payloads of 16 bytes and more bypass it.
const gwsReadBufferSize = 16

// readPool lends read buffers to server connections on plain TCP sockets. A
// connection takes one only when the socket has bytes ready (it waits for
// readability through syscall.RawConn without a buffer) and gives it back as
// soon as gws has taken every byte, so an idle connection holds no read
// buffer: 4 KiB less per connection, and no page of it resident.
type readPool struct {
	size int
	pool sync.Pool
}

func newReadPool(size int) *readPool {
	p := &readPool{size: size}
	p.pool.New = func() any {
		b := make([]byte, size)
		return &b
	}
	return p
}

// pooledReader is the read side of one connection on a pooled buffer. It is
// used only by the goroutine that reads the connection. What a read needs
// while it runs (rc.Read's callback and its results) is a readOp from a
// pool, so that an idle connection holds only the socket and the buffer
// lent to it, if any.
//
// Its socket is its wire's (w.raw, w.rc): the RawConn is kept once, in the
// wireConn, which the fan-out's direct writes touch anyway.
type pooledReader struct {
	pool *readPool
	w    *wireConn
	buf  *[]byte // lent by pool while bytes remain in buf[pos:end]
	pos  int
	end  int
}

// readOp is one read in progress on a pooledReader: rc.Read's callbacks
// (method values made once per pooled value, so that a read allocates
// nothing) and what they did.
type readOp struct {
	ready func(fd uintptr) bool // readReady: Read's
	try   func(fd uintptr) bool // tryReady: tryRead's
	pool  *readPool
	got   *[]byte // readReady's buffer, from pool
	dst   []byte  // tryReady's destination
	n     int
	rerr  error
}

var readOps = sync.Pool{New: func() any {
	o := &readOp{}
	o.ready, o.try = o.readReady, o.tryReady
	return o
}}

func getReadOp(pool *readPool) *readOp {
	o := readOps.Get().(*readOp)
	o.pool = pool
	return o
}

func (o *readOp) put() {
	o.pool, o.got, o.dst, o.n, o.rerr = nil, nil, nil, 0, nil
	readOps.Put(o)
}

// newPooledReader returns nil when w.raw is not a socket it can wait on
// without a buffer (TLS, test pipes): those read through their own buffers.
// Otherwise it sets w.rc, the socket's RawConn.
func newPooledReader(w *wireConn, pool *readPool) *pooledReader {
	if pool == nil {
		return nil
	}
	tc, ok := w.raw.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	w.rc = rc
	return &pooledReader{pool: pool, w: w}
}

// readReady is rc.Read's callback: it reads what the socket has into a
// pooled buffer, or gives the buffer back and asks to wait when there is
// nothing yet.
func (o *readOp) readReady(fd uintptr) bool {
	if o.got == nil {
		o.got = o.pool.pool.Get().(*[]byte)
	}
	for {
		o.n, o.rerr = syscall.Read(int(fd), *o.got)
		if o.rerr != syscall.EINTR {
			break
		}
	}
	if o.rerr == syscall.EAGAIN {
		// Nothing yet: give the buffer back while the goroutine waits.
		o.pool.pool.Put(o.got)
		o.got = nil
		return false
	}
	return true
}

// Read returns what the socket has, as net.Conn.Read would (io.EOF at the
// end, the socket's deadline honoured), holding a pooled buffer only between
// the moment bytes are ready and the moment they are all handed out.
func (r *pooledReader) Read(p []byte) (int, error) {
	if r.buf != nil {
		n := copy(p, (*r.buf)[r.pos:r.end])
		r.pos += n
		if r.pos == r.end {
			r.release()
		}
		return n, nil
	}
	if len(p) >= r.pool.size {
		// A large payload read goes straight into gws's message buffer.
		return r.w.raw.Read(p)
	}
	op := getReadOp(r.pool)
	err := r.w.rc.Read(op.ready)
	buf, n, rerr := op.got, op.n, op.rerr
	op.put()
	if err == nil && rerr != nil {
		err = &net.OpError{Op: "read", Net: "tcp", Source: r.w.raw.LocalAddr(), Addr: r.w.raw.RemoteAddr(), Err: os.NewSyscallError("read", rerr)}
	}
	if err == nil && n <= 0 {
		err = io.EOF
	}
	if err != nil {
		if buf != nil {
			r.pool.pool.Put(buf)
		}
		return 0, err
	}
	k := copy(p, (*buf)[:n])
	if k == n {
		r.pool.pool.Put(buf)
		return k, nil
	}
	r.buf, r.pos, r.end = buf, k, n
	return k, nil
}

// release gives the lent buffer back (the bytes still in it are dropped: only
// called when they are all consumed, or when the connection is finished).
func (r *pooledReader) release() {
	if r.buf != nil {
		r.pool.pool.Put(r.buf)
		r.buf = nil
	}
}

// tryRead reads what the socket has straight into p, or answers
// errWouldBlock without waiting when it has nothing (the parked reader).
// The socket's read deadline and closing are honoured as by Read.
func (r *pooledReader) tryRead(p []byte) (int, error) {
	if r.buf != nil {
		return r.Read(p)
	}
	op := getReadOp(r.pool)
	op.dst = p
	err := r.w.rc.Read(op.try)
	n, rerr := op.n, op.rerr
	op.put()
	switch {
	case err != nil:
		return 0, err
	case rerr == syscall.EAGAIN:
		return 0, errWouldBlock
	case rerr != nil:
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: r.w.raw.LocalAddr(), Addr: r.w.raw.RemoteAddr(), Err: os.NewSyscallError("read", rerr)}
	case n <= 0:
		return 0, io.EOF
	}
	return n, nil
}

// tryReady is tryRead's rc.Read callback: one read, never a wait.
func (o *readOp) tryReady(fd uintptr) bool {
	for {
		o.n, o.rerr = syscall.Read(int(fd), o.dst)
		if o.rerr != syscall.EINTR {
			return true
		}
	}
}
