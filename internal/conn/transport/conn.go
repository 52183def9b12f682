package transport

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/lxzan/gws"

	"github.com/wsgate/wsgate/internal/truncate"
)

// Handler receives the events of one connection. All methods are called from
// the goroutine running Serve, one at a time (with ReaderParked, from the
// worker that reads the connection at that moment, still one at a time). A panic in a method is
// recovered, logged, and closes the connection with 1011.
type Handler interface {
	// OnMessage receives a complete, checked message. The handler owns data:
	// the transport never touches the buffer again.
	OnMessage(c *Conn, op Opcode, data []byte)
	// OnPing is called after the pong answering payload has been sent.
	OnPing(c *Conn, payload []byte)
	// OnPong receives a pong (usually the answer to WritePing).
	OnPong(c *Conn, payload []byte)
	// OnClose is called exactly once, when the read loop has ended and the
	// socket is closed. CloseCode(err) gives the close code that was sent or
	// received, StatusAbnormal when the connection ended without one.
	OnClose(c *Conn, err error)
}

// Conn is one WebSocket connection, server or client side. Writes are safe
// for concurrent use; Serve must be called once, by the goroutine that owns
// the connection.
type Conn struct {
	ws   *gws.Conn // nil when the transport writes it (writer.go)
	wire *wireConn
	rd   *frameReader // the event reader; nil when gws reads
	pk   *parking     // the parked reader's state; nil when not parked
	h    Handler
	log  *slog.Logger

	serving   atomic.Bool
	finished  atomic.Bool
	initiated atomic.Bool // we sent the first close frame on purpose
	abrupt    atomic.Bool // Close was called
}

// Serve runs the read loop in the calling goroutine until the connection
// ends, then closes the socket and calls Handler.OnClose. A second call
// returns at once. With ReaderParked the loop runs on the transport's
// workers while the connection is parked and Serve only waits for the end
// (ServeDetached does not wait).
func (c *Conn) Serve() {
	if c.pk != nil {
		// A parked connection still ends on a worker; the caller waits.
		ended := make(chan struct{})
		if c.serveDetached(func() { close(ended) }) {
			<-ended
		}
		return
	}
	if c.serving.Swap(true) {
		return
	}
	c.serve()
}

// serve is Serve's read loop, once serving is set.
func (c *Conn) serve() {
	if c.rd != nil {
		c.finish(c.rd.run())
		return
	}
	c.ws.ReadLoop()
	// gws calls OnClose at the end of ReadLoop; finish is idempotent in case
	// a future gws version does not.
	c.finish(nil)
}

// WriteMessage sends one unfragmented message. It is goroutine-safe and each
// write has the WriteTimeout deadline; a failed write closes the connection.
func (c *Conn) WriteMessage(op Opcode, data []byte) error {
	if op != Text && op != Binary {
		return fmt.Errorf("transport: write: invalid opcode %d", op)
	}
	if len(data) > maxWriteBytes {
		return fmt.Errorf("transport: write: %d bytes exceeds %d", len(data), maxWriteBytes)
	}
	// gws would close the connection on invalid UTF-8; a bad outgoing
	// message is our bug, not a reason to drop the client.
	if op == Text && !utf8.Valid(data) {
		return ErrInvalidUTF8
	}
	return c.wrapWriteErr(c.writeFrame(op, data))
}

// WritePing sends a ping with up to 125 bytes of payload.
func (c *Conn) WritePing(p []byte) error {
	if len(p) > 125 {
		return fmt.Errorf("transport: ping payload %d bytes exceeds 125", len(p))
	}
	return c.wrapWriteErr(c.writeFrame(0x9, p))
}

// WriteClose starts the closing handshake: it sends a close frame with code
// (1000-1003, 1007-1014 or 3000-4999) and reason (cut to 123 bytes at a
// UTF-8 boundary). Serve then returns when the peer answers, closes, or after
// CloseTimeout. Call Close instead if Serve is not running.
func (c *Conn) WriteClose(code uint16, reason string) error {
	if !validSendCode(code) {
		return fmt.Errorf("transport: invalid close code %d", code)
	}
	reason = truncate.UTF8(reason, 123)
	c.initiated.Store(true)
	return c.wrapWriteErr(c.writeClose(code, []byte(reason)))
}

// Close drops the connection without a closing handshake. Serve returns and
// OnClose reports StatusAbnormal, unless a close frame was already sent: then
// it reports the code sent.
func (c *Conn) Close() error {
	c.abrupt.Store(true)
	if err := c.wire.closeNow(); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("transport: close: %w", err)
	}
	return nil
}

// SetReadDeadline sets the deadline for the read loop; when it passes, the
// connection ends (the session uses it for idle and pong timeouts). It is
// ignored once the closing handshake has started, which has its own deadline.
func (c *Conn) SetReadDeadline(t time.Time) error {
	if err := c.wire.SetReadDeadline(t); err != nil {
		return fmt.Errorf("transport: set read deadline: %w", err)
	}
	if c.pk != nil && !t.IsZero() {
		// Only a blocked read honours a deadline: the connection keeps a
		// goroutine from now on.
		c.pk.blocking.Store(true)
		c.wake()
	}
	return nil
}

// RemoteAddr is the peer's address as seen on the socket (before any proxy
// header interpretation).
func (c *Conn) RemoteAddr() net.Addr { return c.wire.RemoteAddr() }

// NetConn is the underlying socket (*tls.Conn, *net.TCPConn, or on Linux a
// parked connection's bare descriptor, which has the same methods), for
// inspection such as TLS state. Reading from or writing to it corrupts the
// connection.
func (c *Conn) NetConn() net.Conn { return c.wire.raw }

// Subprotocol is the negotiated subprotocol, "" if none.
func (c *Conn) Subprotocol() string { return c.wire.subprotocol }

func (c *Conn) wrapWriteErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, net.ErrClosed) {
		return ErrClosed
	}
	return fmt.Errorf("transport: write: %w", err)
}

// finish runs once at the end of the read loop: drain, close the socket,
// report how the connection ended.
func (c *Conn) finish(ev error) {
	if c.finished.Swap(true) {
		return
	}
	if !c.abrupt.Load() {
		c.wire.drain()
	}
	if c.wire.pooled != nil {
		c.wire.pooled.release()
	}
	_ = c.wire.closeNow()
	err := c.closeError(ev)
	defer c.recoverHandler("OnClose")
	c.h.OnClose(c, err)
}

// closeError maps what gws reports to the code that was sent or received.
func (c *Conn) closeError(ev error) error {
	sent, sentReason, sentOK := c.wire.sentClose()
	var peer *gws.CloseError
	// The code sent wins: once a close frame went out (ours, or gws's for a
	// protocol error), a later Close (a writer that failed because the
	// connection was already closing) does not turn it into 1006, so what is
	// logged, audited and propagated is what the peer got.
	switch {
	case c.initiated.Load() && sentOK:
		return &CloseError{Code: sent, Reason: sentReason}
	case errors.As(ev, &peer):
		// The peer started the closing handshake. gws answers 1000 to a
		// valid code and 1002/1007 to an invalid close payload.
		if sentOK && (sent == StatusProtocolError || sent == StatusInvalidPayload) {
			return &CloseError{Code: sent, Reason: sentReason}
		}
		code := peer.Code
		code = cmp.Or(code, StatusNoStatus)
		return &CloseError{Code: code, Reason: string(peer.Reason)}
	case sentOK && sent != StatusNormal && sent != StatusGoingAway && sent != StatusNoStatus:
		// gws detected a protocol error (1002, 1007, 1009 after rewrite).
		return &CloseError{Code: sent, Reason: sentReason}
	case c.abrupt.Load():
		return &CloseError{Code: StatusAbnormal, Reason: "connection closed locally", cause: ev}
	default:
		// The socket failed or ended without a close frame; gws's 1000/1001
		// "close" in that case is only an attempt to write to a dead peer.
		if ev == nil {
			ev = errors.New("connection ended")
		}
		return &CloseError{Code: StatusAbnormal, Reason: "connection ended without close frame", cause: ev}
	}
}

// recoverHandler is deferred around handler calls.
func (c *Conn) recoverHandler(method string) {
	if r := recover(); r != nil {
		c.log.Error("transport: handler panic", "method", method, "panic", fmt.Sprint(r), "remote", c.RemoteAddr().String())
		c.initiated.Store(true)
		_ = c.writeClose(StatusInternalError, []byte("internal error"))
	}
}

// eventAdapter turns gws events into Handler calls. It is stateless: the
// Conn is found through the wireConn gws holds.
type eventAdapter struct{}

func connOf(socket *gws.Conn) *Conn {
	w, _ := socket.NetConn().(*wireConn)
	if w == nil {
		return nil
	}
	return w.owner
}

func (eventAdapter) OnOpen(*gws.Conn) {}

func (eventAdapter) OnClose(socket *gws.Conn, err error) {
	if c := connOf(socket); c != nil {
		c.finish(err)
	}
}

func (eventAdapter) OnPing(socket *gws.Conn, payload []byte) {
	c := connOf(socket)
	if c == nil || c.wire.closing.Load() {
		return
	}
	_ = socket.WritePong(payload)
	defer c.recoverHandler("OnPing")
	c.h.OnPing(c, payload)
}

func (eventAdapter) OnPong(socket *gws.Conn, payload []byte) {
	c := connOf(socket)
	if c == nil || c.wire.closing.Load() {
		return
	}
	defer c.recoverHandler("OnPong")
	c.h.OnPong(c, payload)
}

func (eventAdapter) OnMessage(socket *gws.Conn, msg *gws.Message) {
	c := connOf(socket)
	if c == nil || c.wire.closing.Load() {
		return // after our close frame, data is discarded (RFC 6455 §1.4)
	}
	// msg.Data is not Closed: that would return the buffer to gws's pool
	// while the handler owns it.
	defer c.recoverHandler("OnMessage")
	c.h.OnMessage(c, Opcode(msg.Opcode), msg.Bytes())
}

// slogLogger adapts slog to gws.Logger.
type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Error(v ...any) { s.l.Error("transport: gws", "msg", fmt.Sprint(v...)) }

// gwsRecovery is gws's own backstop around OnMessage (our adapter already
// recovers, so this only fires on a gws bug).
func gwsRecovery(l *slog.Logger) func(gws.Logger) {
	return func(gws.Logger) {
		if r := recover(); r != nil {
			l.Error("transport: recovered panic in gws", "panic", fmt.Sprint(r))
		}
	}
}

// noSession replaces gws's per-connection map (we keep state in Conn).
type noSession struct{}

func (noSession) Len() int                     { return 0 }
func (noSession) Load(string) (any, bool)      { return nil, false }
func (noSession) Delete(string)                {}
func (noSession) Store(string, any)            {}
func (noSession) Range(func(string, any) bool) {}
func newNoSession() gws.SessionStorage         { return noSession{} }

func gwsDeflate(c Compression, d deflateConfig) gws.PermessageDeflate {
	return gws.PermessageDeflate{
		Enabled:               c.Enabled,
		Level:                 c.Level,
		Threshold:             c.Threshold,
		ServerContextTakeover: d.serverTakeover,
		ClientContextTakeover: d.clientTakeover,
		ServerMaxWindowBits:   d.serverBits,
		ClientMaxWindowBits:   d.clientBits,
	}
}
