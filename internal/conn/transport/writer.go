package transport

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"sync"
	"time"

	"github.com/lxzan/gws"
)

// The transport's own writer (ADR 0002): a server connection read by the
// event or parked reader and not compressed is written without gws, and no
// gws.Conn is made for it (its connection, read queue and bufio reader were
// ≈ 640 B of every idle connection's heap). gws keeps writing client
// connections (masking), compressed ones (its deflater and context
// takeover) and those it reads itself (ReaderGws). Both writers keep the
// same rules: frames are serialized under wireConn.wmu with the rest of a
// partial direct write first; nothing follows a close frame; a failed write
// ends the connection; a close frame is followed by the half-close that
// starts the bounded closing handshake (wireConn.Close).

// errWriteClosed is what either writer returns once no frame may follow:
// a close frame went out, or a write failed. It is gws's value, so that one
// errors.Is test covers both.
var errWriteClosed = gws.ErrConnClosed

const opClose Opcode = 0x8

// writeFrame writes one whole frame: through gws when gws writes this
// connection, else with the transport's own writer.
func (c *Conn) writeFrame(op Opcode, p []byte) error {
	if c.ws != nil {
		return c.ws.WriteMessage(gws.Opcode(op), p)
	}
	return c.wire.writeOwn(op, p)
}

// writeClose sends a close frame with code and reason once (errWriteClosed
// after that, or after a failed write) and then half-closes the socket, as
// gws.Conn.WriteClose does.
func (c *Conn) writeClose(code uint16, reason []byte) error {
	if c.ws != nil {
		return c.ws.WriteClose(code, reason)
	}
	var buf [125]byte
	b := binary.BigEndian.AppendUint16(buf[:0], max(code, StatusNormal))
	b = append(b, reason[:min(len(reason), len(buf)-2)]...)
	err := c.wire.writeOwn(opClose, b)
	if errors.Is(err, errWriteClosed) {
		return err
	}
	_ = c.wire.Close()
	return err
}

// writeOwn writes one frame of the server's (unmasked, final) with the
// write deadline. A close frame is recorded as sent (closeError reports it)
// when it is about to be written, as wireConn.Write records gws's; after it,
// or after a failed write, every write answers errWriteClosed. A failed
// write half-closes the socket: the reader ends at the peer's answer, EOF or
// the close deadline, and the connection with it. (A failed close frame is
// left to its caller, which half-closes after it, as gws's WriteClose does.)
func (w *wireConn) writeOwn(op Opcode, p []byte) error {
	return w.writeOwnFrames(op, [][]byte{p})
}

// writeOwnFrames is writeOwn for one frame or several of op (a batch: one
// writev on a direct connection; never close frames).
func (w *wireConn) writeOwnFrames(op Opcode, msgs [][]byte) error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	if w.closeSent {
		return errWriteClosed
	}
	// The rest of a partial direct write goes first (as in Write, gws's path).
	err := w.flushTailLocked()
	if err == nil && op == opClose {
		w.closeSent = true
		code, reason := StatusNoStatus, ""
		if p := msgs[0]; len(p) >= 2 {
			code, reason = binary.BigEndian.Uint16(p), string(p[2:])
		}
		w.recordSent(code, reason)
	}
	switch {
	case err != nil:
	case w.direct:
		err = w.writeFramesLocked(op, msgs)
	default:
		for _, p := range msgs {
			if err = w.writeFrameLocked(op, p); err != nil {
				break
			}
		}
	}
	if err != nil && !w.closeSent {
		w.closeSent = true
		_ = w.Close()
	}
	return err
}

// writeFrameLocked writes the frame whole on a connection that is not direct
// (TLS), waiting for the socket up to the write deadline; wmu is held. It
// gets one Write of header and payload, so that a small frame is one record.
// (A direct connection's frames are writeFramesLocked's: one writev, no copy.)
func (w *wireConn) writeFrameLocked(op Opcode, p []byte) error {
	if w.writeTimeout > 0 {
		_ = w.raw.SetWriteDeadline(time.Now().Add(w.writeTimeout))
	}
	bp := frameBufs.Get().(*[]byte)
	var hb [10]byte
	b := append((*bp)[:0], hb[:frameHeader(hb[:], op, len(p))]...)
	b = append(b, p...)
	_, err := w.raw.Write(b)
	if cap(b) <= maxPooledFrame {
		*bp = b[:0]
		frameBufs.Put(bp)
	}
	return err
}

// maxPooledFrame bounds the frame buffers kept for reuse: a rare large
// message does not pin its buffer.
const maxPooledFrame = 64 << 10

var frameBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// websocketGUID is RFC 6455 §1.3's constant.
const websocketGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// acceptKey is the Sec-WebSocket-Accept answering key (RFC 6455 §4.2.2).
func acceptKey(key string) string {
	h := sha1.Sum([]byte(key + websocketGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

// response101 is the server's handshake answer when gws does not make it:
// no extension (none was negotiated) and the chosen subprotocol, if any
// (a token, checked by Upgrade).
func response101(key, subprotocol string) []byte {
	b := make([]byte, 0, 160+len(subprotocol))
	b = append(b, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	b = append(b, acceptKey(key)...)
	b = append(b, "\r\n"...)
	if subprotocol != "" {
		b = append(b, "Sec-WebSocket-Protocol: "...)
		b = append(b, subprotocol...)
		b = append(b, "\r\n"...)
	}
	return append(b, "\r\n"...)
}
