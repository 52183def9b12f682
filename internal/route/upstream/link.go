package upstream

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/internal/conn/transport"
)

// Client is the client side of a gateway connection, as the Link needs it. The
// wsgate session implements it through a small adapter in internal/server.
type Client interface {
	// Send queues or writes one message for the client, keeping its opcode;
	// it blocks for one write at most (bounded by the client's write
	// timeout). An error means it was not delivered (the client is closing,
	// or is a slow consumer and is being closed).
	Send(op transport.Opcode, b []byte) error
	// Pending reports what waits in the client's queue.
	Pending() (msgs, bytes int)
	// CloseWith closes the client with code and reason.
	CloseWith(code uint16, reason string)
}

// ErrTooLargeForClient is reported by a Client whose queue can never hold a
// message of that size.
var ErrTooLargeForClient = errors.New("upstream: message larger than the client's queue")

// EndFunc is told once how the upstream leg ended: the code received or sent,
// the reason, and whether wsgate ended it (keepalive, limits) or the client did.
type EndFunc func(code uint16, reason string, cause End)

// End says who ended an upstream leg.
type End int

// Ways an upstream leg ends.
const (
	EndUpstream End = iota // the upstream closed or vanished
	EndClient              // the client's session ended first; its code was propagated
	EndGateway             // wsgate ended it: upstream broke a limit or stopped answering
)

// Link is one open upstream leg. Its methods are safe for concurrent use.
type Link struct {
	opts *Options
	conn *transport.Conn

	client  Client
	onEnd   EndFunc
	closing chan struct{} // closed when the client side started closing the leg
	done    chan struct{} // closed when the read loop has ended
	started atomic.Bool
	once    sync.Once

	byClient  atomic.Bool // the client's close was propagated
	byGateway atomic.Bool // wsgate ended the leg
	blocked   atomic.Bool // waiting for the client's queue to drain

	pingSent atomic.Int64
	pongAt   atomic.Int64
	mu       sync.Mutex
	ticker   *time.Timer
	stopped  bool

	msgsIn, bytesIn, msgsOut, bytesOut atomic.Uint64
}

func newLink(o *Options) *Link {
	return &Link{opts: o, closing: make(chan struct{}), done: make(chan struct{})}
}

// Subprotocol is what the upstream chose ("" for none); answer the client with it.
func (l *Link) Subprotocol() string { return l.conn.Subprotocol() }

// Start relays upstream → client into c from a goroutine the Link owns; it ends
// when the upstream leg ends (Wait waits for it). onEnd may be nil.
func (l *Link) Start(c Client, onEnd EndFunc) {
	if l.started.Swap(true) {
		return
	}
	l.client, l.onEnd = c, onEnd
	if l.opts.PingInterval > 0 {
		l.mu.Lock()
		l.ticker = time.AfterFunc(l.opts.PingInterval, l.tick)
		l.mu.Unlock()
	}
	go func() {
		defer close(l.done)
		l.conn.Serve()
	}()
}

// Abort drops a Link that was never started (the client's upgrade failed),
// telling the upstream 1001.
func (l *Link) Abort() {
	if l.started.Swap(true) {
		l.Close(transport.StatusGoingAway, "client gone")
		return
	}
	_ = l.conn.WriteClose(transport.StatusGoingAway, "client gone")
	_ = l.conn.Close()
	close(l.done)
}

// Forward sends one client message (already checked by the route) upstream. It
// blocks for at most the write timeout, which pushes back on the client's reader.
func (l *Link) Forward(op transport.Opcode, data []byte) error {
	if err := l.conn.WriteMessage(op, data); err != nil {
		return err
	}
	l.msgsOut.Add(1)
	l.bytesOut.Add(uint64(len(data)))
	return nil
}

// Close propagates the client's close to the upstream (code mapped by
// UpstreamCloseCode). The read loop ends when the upstream answers or after the
// close timeout. Safe to call many times.
func (l *Link) Close(code uint16, reason string) {
	l.once.Do(func() {
		l.byClient.Store(true)
		close(l.closing)
		c, r := UpstreamCloseCode(code, reason)
		if err := l.conn.WriteClose(c, r); err != nil {
			_ = l.conn.Close()
		}
	})
}

// Wait blocks until the read loop has ended, dropping the socket if it has not
// within timeout (the upstream ignored the close).
func (l *Link) Wait(timeout time.Duration) {
	if !l.started.Load() {
		return
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-l.done:
	case <-t.C:
		_ = l.conn.Close()
		<-l.done
	}
}

// Done is closed when the upstream leg has ended.
func (l *Link) Done() <-chan struct{} { return l.done }

// LinkStats are a leg's counters: In is upstream → client, Out client → upstream.
type LinkStats struct{ MessagesIn, BytesIn, MessagesOut, BytesOut uint64 }

// Stats returns the counters.
func (l *Link) Stats() LinkStats {
	return LinkStats{l.msgsIn.Load(), l.bytesIn.Load(), l.msgsOut.Load(), l.bytesOut.Load()}
}

// --- keepalive ---

func (l *Link) tick() {
	now := time.Now().UnixNano()
	if ps := l.pingSent.Load(); ps != 0 && l.pongAt.Load() < ps {
		switch {
		case l.blocked.Load():
			// The read loop is parked by backpressure and cannot see the pong:
			// not the upstream's fault.
			l.pingSent.Store(0)
		case now-ps >= int64(l.opts.PongTimeout):
			l.gatewayEnd()
			return
		default:
			l.rearm(time.Duration(ps + int64(l.opts.PongTimeout) - now))
			return
		}
	}
	l.pingSent.Store(now)
	if err := l.conn.WritePing(nil); err != nil {
		_ = l.conn.Close()
		return
	}
	l.rearm(min(l.opts.PingInterval, l.opts.PongTimeout))
}

func (l *Link) rearm(d time.Duration) {
	l.mu.Lock()
	if !l.stopped && l.ticker != nil {
		l.ticker.Reset(max(d, 10*time.Millisecond))
	}
	l.mu.Unlock()
}

func (l *Link) stopTimer() {
	l.mu.Lock()
	l.stopped = true
	if l.ticker != nil {
		l.ticker.Stop()
	}
	l.mu.Unlock()
}

// gatewayEnd drops the upstream because it broke the contract (no pong).
func (l *Link) gatewayEnd() {
	l.byGateway.Store(true)
	_ = l.conn.Close()
}

// --- transport.Handler for the upstream connection ---

// OnMessage relays one upstream message to the client, first waiting while the
// client's queue is above the high-water mark: the read loop stays parked, so
// the upstream's socket buffers fill and TCP flow control slows the upstream.
// Nothing is buffered beyond the client's bounded queue.
func (l *Link) OnMessage(_ *transport.Conn, op transport.Opcode, data []byte) {
	if l.byClient.Load() {
		return
	}
	if !l.waitForRoom() {
		return
	}
	l.msgsIn.Add(1)
	l.bytesIn.Add(uint64(len(data)))
	// Send may write inline to a client whose socket is full: like waiting
	// for room, that is not the upstream's fault if a pong goes unread.
	l.blocked.Store(true)
	err := l.client.Send(op, data)
	l.blocked.Store(false)
	if err != nil {
		if errors.Is(err, ErrTooLargeForClient) {
			l.byGateway.Store(true)
			l.client.CloseWith(transport.StatusInternalError, ReasonUpstreamGone)
			_ = l.conn.WriteClose(transport.StatusMessageTooBig, "message too big for client")
		}
		// Any other error: the client is closing; its close reaches us via Close.
	}
}

// waitForRoom parks until the client's queue is below the high-water marks. It
// returns false when the leg is closing instead.
func (l *Link) waitForRoom() bool {
	m, b := l.client.Pending()
	if m < l.opts.HighWaterMessages && b < l.opts.HighWaterBytes {
		return true
	}
	l.blocked.Store(true)
	defer l.blocked.Store(false)
	d := 500 * time.Microsecond
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-l.closing:
			return false
		case <-t.C:
		}
		m, b = l.client.Pending()
		if m < l.opts.HighWaterMessages/2+1 && b < l.opts.HighWaterBytes/2+1 {
			return true
		}
		d = min(2*d, 20*time.Millisecond)
		t.Reset(d)
	}
}

// OnPing: the transport answered with a pong already.
func (l *Link) OnPing(*transport.Conn, []byte) {}

// OnPong records the keepalive answer.
func (l *Link) OnPong(*transport.Conn, []byte) { l.pongAt.Store(time.Now().UnixNano()) }

// OnClose maps the end of the upstream leg to the client's close (unless the
// client ended first) and reports it.
func (l *Link) OnClose(_ *transport.Conn, err error) {
	l.stopTimer()
	code, reason := transport.StatusAbnormal, ""
	var ce *transport.CloseError
	if errors.As(err, &ce) {
		code, reason = ce.Code, ce.Reason
	}
	cause := EndUpstream
	switch {
	case l.byClient.Load():
		cause = EndClient
	case l.byGateway.Load():
		cause = EndGateway
	case code == transport.StatusMessageTooBig || code == transport.StatusUnsupportedData ||
		code == transport.StatusProtocolError || code == transport.StatusInvalidPayload:
		// These are the codes our transport sends when the upstream broke a
		// limit (size, binary, framing, UTF-8); the upstream echoing them back
		// is the same story.
		cause = EndGateway
	}
	if cause != EndClient && l.client != nil {
		c, r := ClientCloseCode(code, reason, cause == EndGateway)
		l.client.CloseWith(c, r)
	}
	if l.onEnd != nil {
		l.onEnd(code, reason, cause)
	}
}
