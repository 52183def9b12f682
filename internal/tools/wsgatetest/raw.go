package wsgatetest

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/conn/transport"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/wsframe"
)

// rawFrameLimit bounds one server frame a RawConn reads.
const rawFrameLimit = 16 << 20

// RawConn is a hand-driven client connection: the test writes the upgrade
// request and the frames itself (see package wsframe), so it can send protocol
// violations no WebSocket library would. Every read and write has a deadline.
type RawConn struct {
	net.Conn
	BR   *bufio.Reader  // reads what follows the response head
	Resp *http.Response // the handshake's answer
	t    testing.TB
}

// RawHandshake connects to addr with d (nil: a default dialer), writes req (a
// request head and anything to pipeline behind it) in one write and reads the
// response head, whatever its status. The connection closes when the test ends.
func RawHandshake(t testing.TB, d *net.Dialer, addr, req string) *RawConn {
	t.Helper()
	var dd net.Dialer
	if d != nil {
		dd = *d
	}
	dd.Timeout = 10 * time.Second
	c, err := dd.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no handshake response: %v", err)
	}
	return &RawConn{Conn: c, BR: br, Resp: resp, t: t}
}

// DialRaw does a valid opening handshake for path on addr with the extra
// header lines ("Name: value") and requires 101.
func DialRaw(t testing.TB, addr, path string, extra ...string) *RawConn {
	t.Helper()
	r := RawHandshake(t, nil, addr, wsframe.Request(addr, path, extra...))
	if r.Resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake status %d, want 101", r.Resp.StatusCode)
	}
	return r
}

// Send writes frames (or any bytes), failing the test on an error.
func (r *RawConn) Send(frames ...[]byte) {
	r.t.Helper()
	for _, f := range frames {
		if _, err := r.Write(f); err != nil {
			r.t.Fatalf("write: %v", err)
		}
	}
}

// ReadFrame returns the next server frame's first byte and payload.
func (r *RawConn) ReadFrame() (byte, []byte, error) {
	return wsframe.Read(r.BR, rawFrameLimit)
}

// Next returns the next server frame's opcode and payload, failing the test
// on a read error.
func (r *RawConn) Next() (byte, []byte) {
	r.t.Helper()
	b0, p, err := r.ReadFrame()
	if err != nil {
		r.t.Fatalf("read frame: %v", err)
	}
	return b0 & 0x0f, p
}

// CloseCode skips up to maxFrames frames until a close frame, answers it and
// returns its code (1005 for a close frame without one). Floods make a server
// answer many frames before it closes.
func (r *RawConn) CloseCode(maxFrames int) uint16 {
	r.t.Helper()
	for range maxFrames {
		op, p := r.Next()
		if op != 0x8 {
			continue
		}
		_, _ = r.Write(wsframe.Client(0x88, p[:min(len(p), 2)]))
		if len(p) < 2 {
			return transport.StatusNoStatus
		}
		return binary.BigEndian.Uint16(p)
	}
	r.t.Fatalf("no close frame within %d frames", maxFrames)
	return 0
}

// ExpectClose reads until a close frame and checks its code.
func (r *RawConn) ExpectClose(want uint16) {
	r.t.Helper()
	if got := r.CloseCode(100); got != want {
		r.t.Fatalf("close code %d, want %d", got, want)
	}
}

// ExpectJSON skips frames until a text frame whose JSON type is typ.
func (r *RawConn) ExpectJSON(typ string) map[string]any {
	r.t.Helper()
	for range 100 {
		op, p := r.Next()
		if op == 0x8 {
			r.t.Fatalf("close frame %v while waiting for %q", p, typ)
		}
		if op != 0x1 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(p, &m); err != nil {
			r.t.Fatalf("not JSON: %q", p)
		}
		if m["type"] == typ {
			return m
		}
		r.t.Logf("skipping %s", p)
	}
	r.t.Fatalf("no %q", typ)
	return nil
}

// ExpectEOF checks the server closes the TCP connection within 3s.
func (r *RawConn) ExpectEOF() {
	r.t.Helper()
	_ = r.SetReadDeadline(time.Now().Add(3 * time.Second))
	b, err := io.ReadAll(r.BR)
	if err != nil {
		r.t.Fatalf("after close: %v (read %d bytes)", err, len(b))
	}
}
