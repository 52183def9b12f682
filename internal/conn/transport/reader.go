package transport

import (
	"encoding/binary"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/klauspost/compress/flate"
	"github.com/lxzan/gws"
)

// Names of the read-side implementations (Options.Reader).
const (
	// ReaderGws reads frames with gws's ReadLoop (the default).
	ReaderGws = "gws"
	// ReaderEvent reads frames with wsgate's own reader over the frame
	// observer (ADR 0002 step 2). It is the reader the event-driven
	// transport will drive from readiness events; for now it runs in the
	// goroutine that calls Serve, like gws's.
	ReaderEvent = "event"
)

// Reasons of the closes the event reader decides itself (static, so that
// refusing allocates nothing; the same texts wireConn puts in gws's).
var (
	errReadProtocol   = &violation{StatusProtocolError, "protocol error"}
	errReadCorrupt    = &violation{StatusInvalidPayload, "invalid compressed data"}
	errClosingHandled = errors.New("transport: closing handshake completed")
)

// flateTail ends a permessage-deflate message (RFC 7692 §7.2.2: the removed
// 0x00 0x00 0xff 0xff) followed by an empty final stored block, so that the
// inflater reports io.EOF at the end of the message.
var flateTail = [...]byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

// frameReader is the event reader's state for one server connection: the
// message being assembled and, with client context takeover, the
// decompression window. It reads through wireConn.Read, so every byte it
// sees has passed the frame observer: a header it parses is within every
// limit (message size, fragments, control frames, masking, opcodes), and the
// payload of an uncompressed text message is valid UTF-8 up to where it is.
// What the observer leaves to it: assembly, unmasking, RSV1 against the
// negotiation, control frames, inflation and UTF-8 of inflated text.
//
// Every idle connection holds one: its fields fill the 96-byte size class
// (the message limit is the frame observer's, whether permessage-deflate
// was negotiated is the wire's).
type frameReader struct {
	c *Conn

	// window is the inflate window with client context takeover; nil
	// without (most connections: no compression).
	window *inflateWindow

	hdr [14]byte // the frame header being read (here: a local array would escape)

	op         Opcode // opcode of the message being assembled
	compressed bool   //
	msg        []byte // payload so far; nil between messages

	fp frameProgress // the parked reader's place in the stream (feed)
}

// maxBytes is the message size limit (the frame observer's, Options.MaxMessageBytes).
func (r *frameReader) maxBytes() int { return int(r.c.wire.obs.maxBytes) }

// compression reports whether permessage-deflate was negotiated.
func (r *frameReader) compression() bool { return r.c.wire.extensions != "" }

// inflateWindow is what client context takeover keeps between messages.
type inflateWindow struct {
	size int    // window size in bytes
	dict []byte // the last size bytes of inflated messages
}

// newFrameReader builds the reader for a connection whose 101 answered
// extensions (the negotiated permessage-deflate parameters, "" for none).
func newFrameReader(c *Conn, extensions string) *frameReader {
	r := &frameReader{c: c}
	if extensions == "" {
		return r
	}
	takeover, window := true, 1<<15
	for _, p := range strings.Split(extensions, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		switch k {
		case extClientNoCT:
			takeover = false
		case extClientWindow:
			if bits, err := strconv.Atoi(v); err == nil && bits >= 8 && bits <= 15 {
				window = 1 << bits
			}
		}
	}
	if takeover {
		r.window = &inflateWindow{size: window}
	}
	return r
}

// readFull reads exactly len(p) bytes through the wire (and its observer).
func (r *frameReader) readFull(p []byte) error {
	for len(p) > 0 {
		n, err := r.c.wire.Read(p)
		p = p[n:]
		if err != nil {
			if len(p) == 0 {
				return nil
			}
			if err == io.EOF {
				return io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// run reads frames until the connection ends and returns what ended it, as
// gws's ReadLoop hands it to OnClose: a *gws.CloseError for the peer's close
// frame, else the read error.
func (r *frameReader) run() error {
	hdr := &r.hdr
	for {
		if err := r.readFull(hdr[:2]); err != nil {
			return r.readFailed(err)
		}
		need := headerSize(hdr[1])
		if err := r.readFull(hdr[2:need]); err != nil {
			return r.readFailed(err)
		}
		h := decodeHeader(hdr[:need])
		p, v := r.open(h)
		if v != nil {
			return r.fail(v)
		}
		if err := r.readFull(p); err != nil {
			return r.readFailed(err)
		}
		if ev, done := r.frameDone(h, p); done {
			return ev
		}
	}
}

// frameHead is a decoded frame header.
type frameHead struct {
	fin, rsv1, masked bool
	op                Opcode
	length            uint64
	key               [4]byte
}

// headerSize is the length of a frame header whose second byte is b1.
func headerSize(b1 byte) int {
	need := 2
	switch b1 & 0x7f {
	case 126:
		need += 2
	case 127:
		need += 8
	}
	if b1&0x80 != 0 {
		need += 4
	}
	return need
}

// decodeHeader decodes a complete header (headerSize(hdr[1]) bytes).
func decodeHeader(hdr []byte) frameHead {
	h := frameHead{fin: hdr[0]&0x80 != 0, rsv1: hdr[0]&0x40 != 0, op: Opcode(hdr[0] & 0x0f), masked: hdr[1]&0x80 != 0}
	switch l := hdr[1] & 0x7f; l {
	case 126:
		h.length = uint64(binary.BigEndian.Uint16(hdr[2:4]))
	case 127:
		h.length = binary.BigEndian.Uint64(hdr[2:10])
	default:
		h.length = uint64(l)
	}
	if h.masked {
		copy(h.key[:], hdr[len(hdr)-4:])
	}
	return h
}

// open returns where the payload of the frame h goes: a new buffer for a
// control frame (handed to the handler: one allocation per control frame,
// nothing for an empty one, none while idle), else the end of the message
// being assembled, grown by the frame's length.
func (r *frameReader) open(h frameHead) ([]byte, *violation) {
	if h.op >= 0x8 { // control: the observer checked fin, length <= 125, no RSV1
		if h.length == 0 {
			return nil, nil
		}
		return make([]byte, h.length), nil
	}
	if h.rsv1 && !r.compression() {
		return nil, vRSV
	}
	if h.op != 0 { // the observer checked that no message is open
		r.op, r.compressed = h.op, h.rsv1
		r.msg = make([]byte, 0, h.length)
	}
	// The observer checked the message total against MaxMessageBytes
	// before this header got here: growing is bounded.
	start := len(r.msg)
	if uint64(cap(r.msg)-start) < h.length {
		r.msg = grow(r.msg, int(h.length), r.maxBytes())
	}
	r.msg = r.msg[:start+int(h.length)]
	return r.msg[start:], nil
}

// grow returns msg with room for n more bytes. The capacity at least doubles
// (never past limit, the message bound, when that is enough), so a message
// sent in many small fragments costs linear copying: growing by each
// fragment's length alone copied the message once per fragment, quadratic
// in the fragment count (a 1.25 MiB message in 64-byte fragments: 13 GB of
// copying; found by the conformance table's case 9.4.1).
func grow(msg []byte, n, limit int) []byte {
	need := len(msg) + n
	c := 2 * cap(msg)
	if limit > 0 && c > limit {
		c = limit
	}
	c = max(c, need)
	grown := make([]byte, len(msg), c)
	copy(grown, msg)
	return grown
}

// frameDone handles the frame h whose payload p (from open) is complete:
// a control frame is answered, a final data frame completes its message.
// done reports that the read loop ends, with ev for OnClose.
func (r *frameReader) frameDone(h frameHead, p []byte) (ev error, done bool) {
	if h.masked {
		maskBytes(p, h.key, 0)
	}
	if h.op >= 0x8 {
		return r.control(h.op, p)
	}
	if !h.fin {
		return nil, false
	}
	data, op, compressed := r.msg, r.op, r.compressed
	r.msg = nil
	if compressed {
		var v *violation
		if data, v = r.inflate(data); v != nil {
			return r.fail(v), true
		}
		if op == Text {
			var u utf8Stream
			if u.feed(data) >= 0 || !u.complete() {
				return r.fail(vUTF8), true
			}
		}
	}
	r.deliver(op, data)
	return nil, false
}

// deliver hands a complete message to the handler, unless our close frame
// went out (RFC 6455 §1.4: data after it is discarded).
func (r *frameReader) deliver(op Opcode, data []byte) {
	c := r.c
	if c.wire.closing.Load() {
		return
	}
	defer c.recoverHandler("OnMessage")
	c.h.OnMessage(c, op, data)
}

// control handles a ping, pong or close. done reports that the read loop
// ends, with ev for OnClose.
func (r *frameReader) control(op Opcode, p []byte) (ev error, done bool) {
	c := r.c
	switch op {
	case 0x9: // ping
		if c.wire.closing.Load() {
			return nil, false
		}
		_ = c.writeFrame(0xA, p)
		defer c.recoverHandler("OnPing")
		c.h.OnPing(c, p)
		return nil, false
	case 0xA: // pong
		if c.wire.closing.Load() {
			return nil, false
		}
		defer c.recoverHandler("OnPong")
		c.h.OnPong(c, p)
		return nil, false
	case 0x8:
		return r.peerClose(p), true
	default: // the observer refuses reserved opcodes before they get here
		return r.fail(errReadProtocol), true
	}
}

// peerClose answers the peer's close frame as gws does (1000 to a valid
// code, its own code echoed for 3000-4999, 1002 to an invalid code or a
// one-byte payload, 1007 to a reason that is not UTF-8) and returns the
// event for OnClose.
func (r *frameReader) peerClose(p []byte) error {
	c := r.c
	code, reason := uint16(0), []byte(nil)
	answer, answerReason := StatusNormal, ""
	switch {
	case len(p) == 1:
		code = uint16(p[0])
		answer, answerReason = StatusProtocolError, errReadProtocol.reason
	case len(p) >= 2:
		code, reason = binary.BigEndian.Uint16(p), p[2:]
		switch {
		case !validReceivedCode(code):
			answer, answerReason = StatusProtocolError, errReadProtocol.reason
		case code >= 3000:
			answer = code
		}
		var u utf8Stream
		if u.feed(reason) >= 0 || !u.complete() {
			answer, answerReason = StatusInvalidPayload, vUTF8.reason
		}
	}
	if answer != StatusNormal && answer < 3000 {
		c.initiated.Store(true) // our answer is a refusal: report what we sent
	}
	var err error
	if len(p) == 0 {
		// No code received, none sent back (gws's WriteClose always puts
		// one). wireConn refuses every frame after this one, so gws's
		// writers cannot follow it.
		if err = c.writeFrame(opClose, nil); err == nil {
			_ = c.wire.Close()
		}
	} else {
		err = c.writeClose(answer, []byte(answerReason))
	}
	if errors.Is(err, errWriteClosed) && !c.initiated.Load() {
		// A close went out before (gws's, after a failed write): the
		// handshake completes, what is reported is what was sent.
		return errClosingHandled
	}
	return &gws.CloseError{Code: code, Reason: reason}
}

// validReceivedCode is RFC 6455 §7.4's set of codes a close frame may
// carry, as gws checks it.
func validReceivedCode(code uint16) bool {
	switch {
	case code < 1000 || code >= 5000:
		return false
	case code >= 1016 && code < 3000:
		return false
	}
	switch code {
	case 1004, 1005, 1006, 1014, 1015:
		return false
	}
	return true
}

// fail sends the close frame of a refusal and returns the loop's end event.
func (r *frameReader) fail(v *violation) error {
	c := r.c
	c.initiated.Store(true)
	_ = c.writeClose(v.code, []byte(v.reason))
	return errRefused
}

// readFailed ends the loop on a read error as gws does: a close frame is
// attempted (the socket usually is gone; closeError reports 1006 then) unless
// one went out already.
func (r *frameReader) readFailed(err error) error {
	if !errors.Is(err, errRefused) {
		_ = r.c.writeClose(StatusNormal, nil)
	}
	return err
}

// inflate decompresses a permessage-deflate message, refusing it with 1009
// as soon as its output exceeds maxBytes (the output buffer never grows past
// maxBytes+1) and with 1007 when the data is corrupt.
func (r *frameReader) inflate(in []byte) ([]byte, *violation) {
	src := &tailReader{p: in}
	fr := inflaters.Get().(io.ReadCloser)
	defer inflaters.Put(fr)
	var dict []byte
	if r.window != nil {
		dict = r.window.dict
	}
	if err := fr.(flate.Resetter).Reset(src, dict); err != nil {
		return nil, errReadCorrupt
	}
	out := make([]byte, 0, min(max(2*len(in), 512), r.maxBytes()+1))
	for {
		if len(out) == cap(out) {
			if len(out) > r.maxBytes() {
				return nil, vTooBig
			}
			// One byte over the bound is room enough to see it crossed.
			out = grow(out, 1, r.maxBytes()+1)
		}
		n, err := fr.Read(out[len(out):cap(out)])
		out = out[:len(out)+n]
		if len(out) > r.maxBytes() {
			return nil, vTooBig
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, errReadCorrupt
		}
	}
	if w := r.window; w != nil {
		w.dict = slide(w.dict, out, w.size)
	}
	return out, nil
}

// slide appends p to the window dict and keeps its last size bytes.
func slide(dict, p []byte, size int) []byte {
	if len(p) >= size {
		if cap(dict) < size {
			dict = make([]byte, 0, size)
		}
		return append(dict[:0], p[len(p)-size:]...)
	}
	if keep := size - len(p); len(dict) > keep {
		dict = append(dict[:0], dict[len(dict)-keep:]...)
	}
	return append(dict, p...)
}

// inflaters pools flate readers (tens of KiB of state each): a connection
// holds one only while it inflates a message.
var inflaters = sync.Pool{New: func() any { return flate.NewReader(&tailReader{}) }}

// tailReader reads p then flateTail. It is an io.ByteReader, so the flate
// reader does not wrap it in a bufio.Reader of its own.
type tailReader struct {
	p []byte
	t int
}

func (t *tailReader) Read(b []byte) (int, error) {
	if len(t.p) > 0 {
		n := copy(b, t.p)
		t.p = t.p[n:]
		return n, nil
	}
	if t.t == len(flateTail) {
		return 0, io.EOF
	}
	n := copy(b, flateTail[t.t:])
	t.t += n
	return n, nil
}

func (t *tailReader) ReadByte() (byte, error) {
	if len(t.p) > 0 {
		c := t.p[0]
		t.p = t.p[1:]
		return c, nil
	}
	if t.t == len(flateTail) {
		return 0, io.EOF
	}
	c := flateTail[t.t]
	t.t++
	return c, nil
}

// maskBytes XORs p with key, p[0] being at offset pos of the key.
func maskBytes(p []byte, key [4]byte, pos int) {
	k := [4]byte{key[pos&3], key[(pos+1)&3], key[(pos+2)&3], key[(pos+3)&3]}
	m := uint64(binary.LittleEndian.Uint32(k[:]))
	m |= m << 32
	i := 0
	for ; i+8 <= len(p); i += 8 {
		binary.LittleEndian.PutUint64(p[i:], binary.LittleEndian.Uint64(p[i:])^m)
	}
	for ; i < len(p); i++ {
		p[i] ^= k[i&3]
	}
}
