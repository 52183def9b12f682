package transport

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
)

// ReaderParked reads frames with the event reader and parks idle server
// connections on plain TCP (ADR 0002 step 3): when the socket has no bytes
// the connection waits in an epoll set of the transport's own and no
// goroutine waits for it; readiness hands it to a bounded pool of workers
// that run the reader until the socket would block again. TLS connections
// (crypto/tls has no non-blocking read) keep a goroutine, as with
// ReaderEvent.
const ReaderParked = "parked"

// States of a parked connection's reader (parking.state). Exactly one
// goroutine owns the reader while it is parkRunning or parkNotified; whoever
// moves it from parkParked to parkRunning (the poller on readiness, or wake)
// becomes that owner.
const (
	parkRunning  int32 = iota // a goroutine runs the reader
	parkParked                // in the epoll set; no goroutine
	parkDone                  // the connection ended
	parkNotified              // running, and bytes arrived since: read again before parking
)

// parking is the parked reader's per-connection state.
type parking struct {
	state atomic.Int32
	// blocking makes the reader keep a goroutine from now on and read with
	// blocking reads: a read deadline was set (only a blocked read honours
	// it), or the socket could not be registered.
	blocking atomic.Bool
	// hup: the poller saw the peer's end (EPOLLRDHUP, EPOLLHUP, EPOLLERR).
	// An edge reports it once, possibly before a read that still returns
	// bytes: from then on the reader reads on to EOF or the error and
	// never parks.
	hup  atomic.Bool
	reg  registration // the socket's place in a poller
	done func()       // ServeDetached's callback
}

// errWouldBlock is pooledReader.tryRead's answer when the socket has no bytes.
var errWouldBlock = errors.New("transport: read would block")

// ServeDetached runs the read loop like Serve but may return before the
// connection ends: with ReaderParked, on a server connection over plain TCP,
// it returns as soon as the socket has no bytes to read, and the connection
// is read from then on by the transport's workers whenever bytes arrive.
// done is called exactly once, after Handler.OnClose, on the goroutine that
// ended the connection (a worker, or the caller's if the connection ended
// before parking); it must not block for long (it runs on a worker). With
// other readers, or when the connection cannot be parked, ServeDetached is
// Serve followed by done. A second call (or a call after Serve) returns at
// once and never calls done.
func (c *Conn) ServeDetached(done func()) { c.serveDetached(done) }

// serveDetached is ServeDetached; it reports whether this call started the
// connection (false: it was served already and done will not be called).
func (c *Conn) serveDetached(done func()) bool {
	if c.serving.Swap(true) {
		return false
	}
	if c.pk == nil {
		c.serve()
		c.callDone(done)
		return true
	}
	c.pk.done = done
	if err := c.pk.reg.add(c); err != nil {
		if !errors.Is(err, net.ErrClosed) { // closed already: the reader ends at once
			c.log.Warn("transport: cannot park connection, it keeps a goroutine", "err", err)
		}
		c.pk.blocking.Store(true)
	}
	c.resume(true)
	return true
}

// callDone runs ServeDetached's callback; a panic in it is logged, as a
// handler's is, not allowed to kill a worker.
func (c *Conn) callDone(done func()) {
	if done == nil {
		return
	}
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("transport: panic after connection end", "panic", fmt.Sprint(r))
		}
	}()
	done()
}

// resume runs the reader of a parked connection, on a worker or (dedicated)
// on a goroutine that may keep it, until the socket would block: then it
// parks the connection and returns, unless the connection must keep a
// goroutine (closing, a read deadline), which dedicated runs in place and a
// worker hands to a new goroutine.
func (c *Conn) resume(dedicated bool) {
	pool := c.wire.pooled.pool
	bp := pool.pool.Get().(*[]byte)
	for {
		n, err := c.wire.read(*bp, true)
		if n > 0 {
			if ev, done := c.rd.feed((*bp)[:n]); done {
				pool.pool.Put(bp)
				c.endParked(ev, dedicated)
				return
			}
		}
		if err == nil && (n == len(*bp) || c.wire.pending != nil || c.pk.hup.Load()) {
			// More may be there, or the refusal is next, or the peer's
			// end is: its edge may have come before this read, which
			// returned the bytes before it.
			continue
		}
		if err != nil && err != errWouldBlock {
			pool.pool.Put(bp)
			c.endParked(c.rd.readFailed(midStream(err)), dedicated)
			return
		}
		// A short read drained the socket (bytes that came since raise an
		// edge: parkNotified, or a worker once parked), or it would block.
		if c.wire.closing.Load() || c.pk.blocking.Load() || c.pk.hup.Load() {
			if dedicated {
				c.readBlocking(bp)
				return
			}
			pool.pool.Put(bp)
			go c.readBlocking(nil)
			return
		}
		pool.pool.Put(bp)
		if c.park() {
			return
		}
		bp = pool.pool.Get().(*[]byte)
	}
}

// park gives up the reader: the socket stays in its poller's epoll set
// (edge-triggered), and bytes that arrive from now on hand the connection to
// a worker. It reports false when the caller still owns the reader: bytes
// arrived while it ran (parkNotified: read again), or the connection must
// keep a goroutine after all. After parkParked is stored the caller touches
// only atomics: another goroutine may own the reader already.
func (c *Conn) park() bool {
	pk := c.pk
	if !pk.state.CompareAndSwap(parkRunning, parkParked) {
		pk.state.Store(parkRunning) // parkNotified: the edge came while we ran
		return false
	}
	// wake stores what it wakes for before its CompareAndSwap: either it
	// sees parkParked, or this sees what it stored.
	if c.wire.closing.Load() || pk.blocking.Load() {
		return !pk.state.CompareAndSwap(parkParked, parkRunning)
	}
	return true
}

// wake takes a parked connection out of the epoll set's hands onto a
// goroutine of its own, for what a parked connection cannot wait for: the
// closing handshake's deadline, a read deadline, a closed socket. The
// caller stores the reason (wireConn.closing, parking.blocking) first.
func (c *Conn) wake() {
	if c.pk != nil && c.pk.state.CompareAndSwap(parkParked, parkRunning) {
		go c.resume(true)
	}
}

// ready is the poller's call when bytes arrived (an edge): a parked
// connection goes to a worker, a running one reads again before it parks.
func (c *Conn) ready() {
	for {
		switch c.pk.state.Load() {
		case parkParked:
			if c.pk.state.CompareAndSwap(parkParked, parkRunning) {
				workers.submit(c)
				return
			}
		case parkRunning:
			if c.pk.state.CompareAndSwap(parkRunning, parkNotified) {
				return
			}
		default: // notified already, or done
			return
		}
	}
}

// readBlocking reads with blocking reads (the connection keeps this
// goroutine) until the connection ends.
func (c *Conn) readBlocking(bp *[]byte) {
	pool := c.wire.pooled.pool
	if bp == nil {
		bp = pool.pool.Get().(*[]byte)
	}
	for {
		n, err := c.wire.Read(*bp)
		if n > 0 {
			if ev, done := c.rd.feed((*bp)[:n]); done {
				pool.pool.Put(bp)
				c.endParked(ev, true)
				return
			}
		}
		if err != nil {
			pool.pool.Put(bp)
			c.endParked(c.rd.readFailed(midStream(err)), true)
			return
		}
	}
}

// endParked ends a parked connection: out of its poller, then Serve's
// cleanup (finish: drain, close, OnClose) and ServeDetached's callback. A
// worker hands a connection that still has to drain (wait up to
// CloseTimeout for the peer's close frame) to a goroutine of its own.
func (c *Conn) endParked(ev error, dedicated bool) {
	if !dedicated && c.wire.drainPending() {
		go c.endParked(ev, true)
		return
	}
	c.pk.state.Store(parkDone)
	c.pk.reg.remove(c)
	c.finish(ev)
	c.callDone(c.pk.done)
}

// midStream maps the end of the stream to what the blocking reader reports
// for it (readFull: the stream ended inside a frame it was waiting for).
func midStream(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
