// Package wsframe writes and reads WebSocket frames by hand (RFC 6455 §5.2)
// for tests that must send what no conforming client would: unmasked frames,
// reserved bits and opcodes, lengths that lie, frames pipelined behind the
// upgrade request. It imports nothing from wsgate, so the transport's own
// tests can use it as well as the end-to-end tests and the conformance table.
package wsframe

import (
	"encoding/binary"
	"fmt"
	"io"
)

// maskKey masks every client frame built here: a fixed key keeps the bytes a
// test sends reproducible (the server must unmask whatever key it gets).
var maskKey = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// B0 is a frame's first byte: FIN, the three RSV bits (rsv 4 is RSV1) and the
// opcode.
func B0(fin bool, rsv, op byte) byte {
	b := op&0x0f | (rsv&7)<<4
	if fin {
		b |= 0x80
	}
	return b
}

// Build returns a frame with first byte b0 whose header announces length
// payload bytes, which may differ from len(payload) to lie about the size;
// masked selects a client frame.
func Build(b0 byte, length uint64, payload []byte, masked bool) []byte {
	out := make([]byte, 0, 14+len(payload))
	out = append(out, b0)
	var mbit byte
	if masked {
		mbit = 0x80
	}
	switch {
	case length <= 125:
		out = append(out, mbit|byte(length))
	case length <= 0xffff:
		out = append(out, mbit|126)
		out = binary.BigEndian.AppendUint16(out, uint16(length))
	default:
		out = append(out, mbit|127)
		out = binary.BigEndian.AppendUint64(out, length)
	}
	if !masked {
		return append(out, payload...)
	}
	out = append(out, maskKey[:]...)
	for i, c := range payload {
		out = append(out, c^maskKey[i%4])
	}
	return out
}

// Client is an honest masked client frame with first byte b0.
func Client(b0 byte, payload []byte) []byte {
	return Build(b0, uint64(len(payload)), payload, true)
}

// ClosePayload is a close frame's body: the status code, then the reason.
func ClosePayload(code uint16, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, code), reason...)
}

// Key is the Sec-WebSocket-Key of every request head built here (RFC 6455's
// sample nonce); servers do not remember keys, so one fixed key is enough.
const Key = "dGhlIHNhbXBsZSBub25jZQ=="

// Head is the head of a valid opening handshake for path on host over HTTP
// version proto ("HTTP/1.1"), without the final blank line, so callers can
// add fields.
func Head(proto, host, path string) string {
	return "GET " + path + " " + proto + "\r\nHost: " + host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + Key + "\r\nSec-WebSocket-Version: 13\r\n"
}

// Request is a whole HTTP/1.1 opening handshake with the extra header lines
// ("Name: value").
func Request(host, path string, extra ...string) string {
	req := Head("HTTP/1.1", host, path)
	for _, e := range extra {
		req += e + "\r\n"
	}
	return req + "\r\n"
}

// Read reads one server frame: its first byte and payload. A server frame
// must not be masked; one announcing more than limit bytes is an error rather
// than an allocation.
func Read(r io.Reader, limit uint64) (byte, []byte, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	if h[1]&0x80 != 0 {
		return 0, nil, fmt.Errorf("server frame is masked")
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > limit {
		return 0, nil, fmt.Errorf("server frame of %d bytes, over %d", n, limit)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, nil, err
	}
	return h[0], p, nil
}
