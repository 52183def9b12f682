package transport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	// drainLimit bounds how much a closing connection reads and discards
	// while waiting for the peer's close frame, so a flooding peer cannot
	// keep it busy; past it the socket is closed (possibly with a RST).
	drainLimit = 64 << 10
	// maxResponseHead bounds the HTTP response header a client accepts
	// (net/http's ReadResponse has no limit of its own).
	maxResponseHead = 16 << 10
	// gwsTooLargeReason is the reason gws v1.8.9 puts in the 1011 close it
	// sends when inflating a message exceeds the read limit.
	gwsTooLargeReason = "gws: message too large"
)

type readPhase uint8

const (
	phaseFrames      readPhase = iota // parse frame headers
	phaseClientHead                   // client: inside the HTTP response head
	phasePassthrough                  // client: refused handshake, body follows
)

var (
	errResponseHeadTooLarge = errors.New("transport: handshake response header too large")
	errRefused              = errors.New("transport: frame refused")
)

// wireConn is the net.Conn handed to gws. It observes the inbound byte stream
// (frameObserver), applies the write deadline to every write, records and
// corrects the close frame gws sends, injects the chosen subprotocol into the
// 101 response, and turns gws's abrupt close into a bounded closing
// handshake.
type wireConn struct {
	raw   net.Conn
	owner *Conn // set once the handshake succeeded, before reads start

	writeTimeout time.Duration
	closeTimeout time.Duration

	// Read side: only the goroutine that reads (gws's handshake, then Serve).
	prefix string        // bytes net/http had buffered before the hijack
	pooled *pooledReader // server on plain TCP: reads through a pooled buffer; nil otherwise
	// rc is the socket's RawConn when pooled is set (its reads, the direct
	// writes, parking): here rather than in pooled, so that a fan-out's
	// write to a connection touches one object.
	rc      syscall.RawConn
	obs     frameObserver
	pending *violation

	subprotocol string // the negotiated subprotocol (server: added to the 101 response)
	extensions  string // server: the negotiated extensions ("" for none)

	// Write side: wmu serializes every frame written after the handshake
	// (gws's and TryWriteMessage's), so that the rest of a partially written
	// direct frame (tail) goes out before anything else.
	wmu  sync.Mutex
	tail *[]byte // the rest of a partially written direct frame (rare: a pointer, 16 B less per connection)

	mu   sync.Mutex // guards sent, client and deadline changes
	sent *sentFrame // the first close frame we sent; nil until one went out
	// client is the client side's handshake state (guarded by mu, but for
	// head, which only the reader uses); nil on the server side, which has
	// one connection per client and so keeps none of it.
	client *clientHandshake

	// The small fields, together so that they share words (the struct is
	// in the 352-byte size class, not 384). Each says who may touch it.
	//
	// handshaking is true until Upgrade/Dial hand the conn over; during it
	// writes are HTTP and Close is deferred to Upgrade/Dial.
	handshaking atomic.Bool
	closing     atomic.Bool
	closeSent   bool // wmu: a close frame went out: no direct writes after it
	server      bool // set at creation
	// direct: the transport writes frames on the socket itself (rc):
	// a server on plain TCP without compression. Set at the upgrade.
	direct     bool
	rewriteExt bool      // server: replace gws's Sec-WebSocket-Extensions in the 101
	phase      readPhase // read side
	refused    bool      // read side
	eof        bool      // read side
}

// clientHandshake is what only a client connection needs during its handshake.
type clientHandshake struct {
	head     headScanner // the HTTP response head being read
	deadline time.Time   // the handshake deadline from the context
	canceled bool        // the dial context ended
}

func newWireConn(raw net.Conn, server bool, o *Options) *wireConn {
	w := &wireConn{
		raw:          raw,
		server:       server,
		writeTimeout: o.WriteTimeout,
		closeTimeout: o.CloseTimeout,
		obs: frameObserver{
			expectMasked: server,
			allowRSV1:    o.Compression.Enabled,
			allowBinary:  o.AllowBinary,
			maxBytes:     uint64(o.MaxMessageBytes),
			maxFragments: o.MaxFragments,
			limitControl: server,
		},
	}
	if !server {
		w.phase = phaseClientHead
		w.client = &clientHandshake{}
	}
	w.handshaking.Store(true)
	return w
}

// Read feeds gws. A refused frame is cut off: gws gets the bytes of the
// frames before it, and on its next read the close frame is sent and an
// error ends its read loop.
func (w *wireConn) Read(p []byte) (int, error) { return w.read(p, false) }

// read is Read; with nonblock (the parked reader) a socket with no bytes
// answers errWouldBlock instead of waiting.
func (w *wireConn) read(p []byte, nonblock bool) (int, error) {
	if w.pending != nil {
		return w.refuse()
	}
	var n int
	var err error
	if len(w.prefix) > 0 {
		n = copy(p, w.prefix)
		w.prefix = w.prefix[n:]
	} else {
		switch {
		case nonblock:
			n, err = w.pooled.tryRead(p)
		case w.pooled != nil:
			n, err = w.pooled.Read(p)
		default:
			n, err = w.raw.Read(p)
		}
		if err == io.EOF {
			w.eof = true
		}
	}
	if n <= 0 {
		return n, err
	}
	off := 0
	if w.phase == phaseClientHead {
		head := &w.client.head
		k, done, ok := head.scan(p[:n])
		if !ok {
			return 0, errResponseHeadTooLarge
		}
		if !done {
			return n, err
		}
		if head.status != 101 {
			w.phase = phasePassthrough
			return n, err
		}
		w.phase, off = phaseFrames, k
	}
	if w.phase == phaseFrames {
		k, v := w.obs.scan(p[off:n])
		if v != nil {
			w.pending = v
			if off+k > 0 {
				return off + k, nil
			}
			return w.refuse()
		}
	}
	return n, err
}

// refuse sends the violation's close frame through gws (so it is serialized
// with other writes and gws marks itself closed) and fails the read.
func (w *wireConn) refuse() (int, error) {
	if !w.refused && w.owner != nil {
		w.refused = true
		w.owner.initiated.Store(true)
		_ = w.owner.writeClose(w.pending.code, []byte(w.pending.reason))
	}
	return 0, errRefused
}

// Write applies the write deadline to every write and watches close frames.
func (w *wireConn) Write(b []byte) (int, error) {
	if w.handshaking.Load() {
		if w.server && (w.subprotocol != "" || w.rewriteExt) && bytes.HasPrefix(b, []byte("HTTP/1.1 101 ")) && bytes.HasSuffix(b, []byte("\r\n\r\n")) {
			if _, err := w.writeDeadlined(w.rewrite101(b)); err != nil {
				return 0, err
			}
			return len(b), nil
		}
		return w.writeDeadlined(b)
	}
	w.wmu.Lock()
	defer w.wmu.Unlock()
	if err := w.flushTailLocked(); err != nil {
		return 0, err
	}
	if w.closeSent {
		// Nothing follows a close frame (RFC 6455 §5.5.1). gws never
		// tries; the event reader's empty close answer needs the guard.
		return 0, net.ErrClosed
	}
	if len(b) >= 2 && b[0]&0x0f == 0x8 {
		w.closeSent = true
		if out, ok := w.observeClose(b); ok {
			if _, err := w.writeDeadlined(out); err != nil {
				return 0, err
			}
			return len(b), nil
		}
	}
	return w.writeDeadlined(b)
}

// rewrite101 adds the subprotocol to gws's 101 response and replaces its
// Sec-WebSocket-Extensions with wsgate's own negotiation result.
func (w *wireConn) rewrite101(b []byte) []byte {
	head := b[:len(b)-2] // ends with the last header's CRLF
	out := make([]byte, 0, len(b)+len(w.subprotocol)+len(w.extensions)+60)
	for len(head) > 0 {
		i := bytes.Index(head, []byte("\r\n"))
		if i < 0 {
			i = len(head) - 2
		}
		line := head[:i+2]
		head = head[i+2:]
		if w.rewriteExt && len(line) > 25 && strings.EqualFold(string(line[:25]), "Sec-WebSocket-Extensions:") {
			continue
		}
		out = append(out, line...)
	}
	if w.rewriteExt && w.extensions != "" {
		out = append(out, "Sec-WebSocket-Extensions: "...)
		out = append(out, w.extensions...)
		out = append(out, "\r\n"...)
	}
	if w.subprotocol != "" {
		out = append(out, "Sec-WebSocket-Protocol: "...)
		out = append(out, w.subprotocol...)
		out = append(out, "\r\n"...)
	}
	return append(out, "\r\n"...)
}

func (w *wireConn) writeDeadlined(b []byte) (int, error) {
	if w.writeTimeout > 0 {
		_ = w.raw.SetWriteDeadline(time.Now().Add(w.writeTimeout))
	}
	return w.raw.Write(b)
}

// observeClose records the first close frame we send. When gws closed on
// its own with a reason, it returns a corrected frame: a static reason, and
// 1009 instead of 1011 for an inflate overflow (1007 for corrupt compressed
// data). gws writes each frame in one Write call, so b is a whole frame.
func (w *wireConn) observeClose(b []byte) ([]byte, bool) {
	n := int(b[1] & 0x7f)
	hl := 2
	masked := b[1]&0x80 != 0
	if masked {
		hl += 4
	}
	if n > 125 || len(b) < hl+n {
		return nil, false
	}
	var payload [125]byte
	copy(payload[:n], b[hl:hl+n])
	if masked {
		for i := 0; i < n; i++ {
			payload[i] ^= b[2+i%4]
		}
	}
	code, reason := StatusNoStatus, ""
	if n >= 2 {
		code = binary.BigEndian.Uint16(payload[:2])
		reason = string(payload[2:n])
	}
	var out []byte
	if w.owner != nil && !w.owner.initiated.Load() && n > 2 {
		// gws closed on its own: its reason is an error text that may name
		// socket addresses, and its inflate errors carry the wrong code.
		code, reason = gwsCloseStatus(code, string(payload[2:n]))
		frame := make([]byte, 0, hl+2+len(reason))
		frame = append(frame, b[0], byte(2+len(reason))|b[1]&0x80)
		frame = append(frame, b[2:hl]...)
		frame = binary.BigEndian.AppendUint16(frame, code)
		frame = append(frame, reason...)
		if masked {
			for i := hl; i < len(frame); i++ {
				frame[i] ^= b[2+(i-hl)%4]
			}
		}
		out = frame
	}
	w.recordSent(code, reason)
	return out, out != nil
}

// gwsCloseStatus maps a close gws decided by itself to the code and static
// reason we send.
func gwsCloseStatus(code uint16, gwsReason string) (uint16, string) {
	switch code {
	case StatusInternalError: // only the inflate path closes with 1011
		if gwsReason == gwsTooLargeReason {
			return StatusMessageTooBig, vTooBig.reason
		}
		return StatusInvalidPayload, "invalid compressed data"
	case StatusProtocolError:
		return code, "protocol error"
	case StatusInvalidPayload:
		return code, "invalid payload"
	case StatusMessageTooBig:
		return code, vTooBig.reason
	default:
		return code, ""
	}
}

// sentFrame is the close frame a connection sent: made when it goes out,
// so that an open connection does not carry it.
type sentFrame struct {
	code   uint16
	reason string
}

// recordSent records the first close frame sent.
func (w *wireConn) recordSent(code uint16, reason string) {
	w.mu.Lock()
	if w.sent == nil {
		w.sent = &sentFrame{code: code, reason: reason}
	}
	w.mu.Unlock()
}

func (w *wireConn) sentClose() (uint16, string, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.sent == nil {
		return 0, "", false
	}
	return w.sent.code, w.sent.reason, true
}

// Close is what gws calls right after sending a close frame. Instead of
// dropping the socket (which can turn into a RST that destroys the close
// frame before the peer reads it) it half-closes the write side and gives
// the peer CloseTimeout to answer; the read loop ends on the peer's close
// frame, EOF or that deadline, and Serve then closes the socket.
func (w *wireConn) Close() error {
	if w.handshaking.Load() {
		return nil // Upgrade/Dial close the socket themselves
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closing.Swap(true) {
		return nil
	}
	if cw, ok := w.raw.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	err := w.raw.SetReadDeadline(time.Now().Add(w.closeTimeout))
	w.wakeOwner() // a parked reader must wait for the peer's answer
	return err
}

// closeNow closes the socket.
func (w *wireConn) closeNow() error {
	w.closing.Store(true)
	err := w.raw.Close()
	w.wakeOwner() // a parked reader ends on the closed socket
	return err
}

// wakeOwner hands a parked connection to a goroutine (Conn.wake).
func (w *wireConn) wakeOwner() {
	if w.owner != nil {
		w.owner.wake()
	}
}

// drain reads and discards what the peer still sends after we sent a close
// frame, until its EOF, the close deadline or drainLimit, so that closing the
// socket does not reset a connection whose peer is still reading our close.
// Only called from the read goroutine after gws's read loop has ended.
func (w *wireConn) drain() {
	if !w.drainPending() {
		return
	}
	if w.pooled != nil {
		w.pooled.release()
	}
	buf := make([]byte, 2048)
	for total := 0; total < drainLimit; {
		n, err := w.raw.Read(buf)
		total += n
		if err != nil {
			return
		}
	}
}

// drainPending reports whether drain would read: we sent a close frame and
// the peer's close frame or EOF has not come yet.
func (w *wireConn) drainPending() bool {
	if w.eof || w.obs.closeSeen || !w.closing.Load() {
		return false
	}
	_, _, sent := w.sentClose()
	return sent
}

// SetDeadline is used by gws during the handshake. A client handshake never
// outlives its context.
func (w *wireConn) SetDeadline(t time.Time) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if c := w.client; c != nil {
		if c.canceled {
			t = time.Unix(1, 0)
		} else if !c.deadline.IsZero() && w.handshaking.Load() && (t.IsZero() || t.After(c.deadline)) {
			t = c.deadline
		}
	}
	if w.closing.Load() {
		return w.raw.SetWriteDeadline(t)
	}
	return w.raw.SetDeadline(t)
}

// SetReadDeadline keeps the close deadline once closing started.
func (w *wireConn) SetReadDeadline(t time.Time) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closing.Load() {
		return nil
	}
	return w.raw.SetReadDeadline(t)
}

func (w *wireConn) cancelHandshake() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.client.canceled = true // only Dial cancels, on a client connection
	_ = w.raw.SetDeadline(time.Unix(1, 0))
}

func (w *wireConn) SetWriteDeadline(t time.Time) error { return w.raw.SetWriteDeadline(t) }
func (w *wireConn) LocalAddr() net.Addr                { return w.raw.LocalAddr() }
func (w *wireConn) RemoteAddr() net.Addr               { return w.raw.RemoteAddr() }

// headScanner finds the end of an HTTP response head in a byte stream and the
// status code of its first line, without buffering the head.
type headScanner struct {
	n         int
	lineLen   int
	first     [16]byte
	firstLen  int
	firstDone bool
	status    int
}

// scan returns the offset just past the head when it ends inside b, done,
// and ok=false when the head exceeds maxResponseHead.
func (s *headScanner) scan(b []byte) (int, bool, bool) {
	for i, c := range b {
		s.n++
		if s.n > maxResponseHead {
			return 0, false, false
		}
		if !s.firstDone {
			if c == '\n' {
				s.firstDone = true
				s.status = parseStatus(s.first[:s.firstLen])
			} else if s.firstLen < len(s.first) {
				s.first[s.firstLen] = c
				s.firstLen++
			}
		}
		switch c {
		case '\n':
			if s.lineLen == 0 && s.n > 1 {
				return i + 1, true, true
			}
			s.lineLen = 0
		case '\r':
		default:
			s.lineLen++
		}
	}
	return len(b), false, true
}

// parseStatus reads the status code from the start of a status line
// ("HTTP/1.1 101 ...").
func parseStatus(line []byte) int {
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 || len(line) < sp+4 {
		return 0
	}
	code := 0
	for _, c := range line[sp+1 : sp+4] {
		if c < '0' || c > '9' {
			return 0
		}
		code = code*10 + int(c-'0')
	}
	return code
}
