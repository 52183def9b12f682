package transport

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/tools/wsgatetest/wsframe"
)

// event is what a recordingHandler saw.
type event struct {
	kind string // "message", "ping", "pong", "close"
	op   Opcode
	data []byte
	err  error
}

// recordingHandler records events; echo makes it write each message back.
type recordingHandler struct {
	echo   bool
	events chan event
	mu     sync.Mutex
	closes int
}

func newRecorder(echo bool) *recordingHandler {
	return &recordingHandler{echo: echo, events: make(chan event, 1024)}
}

func (h *recordingHandler) OnMessage(c *Conn, op Opcode, data []byte) {
	if h.echo {
		_ = c.WriteMessage(op, data)
	}
	h.events <- event{kind: "message", op: op, data: data}
}
func (h *recordingHandler) OnPing(c *Conn, p []byte) { h.events <- event{kind: "ping", data: p} }
func (h *recordingHandler) OnPong(c *Conn, p []byte) { h.events <- event{kind: "pong", data: p} }
func (h *recordingHandler) OnClose(c *Conn, err error) {
	h.mu.Lock()
	h.closes++
	h.mu.Unlock()
	h.events <- event{kind: "close", err: err}
}

// next waits for the next event of kind (others are skipped).
func (h *recordingHandler) next(t *testing.T, kind string) event {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case e := <-h.events:
			if e.kind == kind {
				return e
			}
		case <-timeout:
			t.Fatalf("timeout waiting for %s event", kind)
		}
	}
}

// closedWith waits for h's close event and fails t unless it carries the
// close code want.
func (h *recordingHandler) closedWith(t *testing.T, want uint16) {
	t.Helper()
	if code, _ := CloseCode(h.next(t, "close").err); code != want {
		t.Fatalf("close code %d, want %d", code, want)
	}
}

// testServer upgrades every request with opts and serves it with a fresh
// handler from newHandler; server handlers are sent on handlers.
type testServer struct {
	*httptest.Server
	handlers chan *recordingHandler
	conns    chan *Conn
	mu       sync.Mutex
	stopped  bool
	wg       sync.WaitGroup
}

func startServer(t testing.TB, opts *Options, echo bool, subprotocol string) *testServer {
	t.Helper()
	up, err := newTestUpgrader(opts)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{handlers: make(chan *recordingHandler, 100), conns: make(chan *Conn, 100)}
	ts.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := newRecorder(echo)
		c, err := up.Upgrade(w, r, subprotocol, h)
		if err != nil {
			return
		}
		ts.mu.Lock()
		if ts.stopped {
			ts.mu.Unlock()
			_ = c.Close()
			return
		}
		ts.wg.Add(1)
		ts.mu.Unlock()
		defer ts.wg.Done()
		ts.handlers <- h
		ts.conns <- c
		c.Serve()
	}))
	t.Cleanup(func() {
		ts.mu.Lock()
		ts.stopped = true
		ts.mu.Unlock()
		ts.Server.CloseClientConnections()
		ts.Server.Close()
		ts.wg.Wait()
	})
	return ts
}

func (ts *testServer) wsURL() string { return "ws" + strings.TrimPrefix(ts.URL, "http") }

func (ts *testServer) handler(t testing.TB) *recordingHandler {
	t.Helper()
	return within(t, ts.handlers)
}

// conn is the server side of the next connection.
func (ts *testServer) conn(t testing.TB) *Conn {
	t.Helper()
	return within(t, ts.conns)
}

// within receives from ch, failing the test after 5 s.
func within[T any](t testing.TB, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatal("no server connection")
		var zero T
		return zero
	}
}

// rawClient speaks the wire protocol by hand, to send frames no library
// would produce.
type rawClient struct {
	t    testing.TB
	conn net.Conn
	br   *bufio.Reader
	resp *http.Response
}

// dialRaw performs the opening handshake with extra header lines and expects
// 101.
func dialRaw(t testing.TB, ts *testServer, extra ...string) *rawClient {
	t.Helper()
	rc := dialRawStatus(t, ts, extra...)
	if rc.resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", rc.resp.StatusCode)
	}
	return rc
}

func dialRawStatus(t testing.TB, ts *testServer, extra ...string) *rawClient {
	t.Helper()
	return dialRawWith(t, ts, nil, extra...)
}

// dialRawWith sends the request followed by trailer in one write.
func dialRawWith(t testing.TB, ts *testServer, trailer []byte, extra ...string) *rawClient {
	t.Helper()
	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	req := wsframe.Request("x", "/", extra...) + string(trailer)
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &rawClient{t: t, conn: conn, br: br, resp: resp}
}

// frame builds a frame: b0 is FIN|RSV|opcode, length may lie (announce
// more than payload), masked selects a client mask.
func frame(b0 byte, payload []byte, masked bool) []byte {
	return frameLen(b0, uint64(len(payload)), payload, masked)
}

// frameLen is frame announcing length bytes.
var frameLen = wsframe.Build

func (rc *rawClient) write(b []byte) {
	rc.t.Helper()
	if _, err := rc.conn.Write(b); err != nil {
		rc.t.Fatalf("write: %v", err)
	}
}

// readFrame reads one server frame (unmasked).
func (rc *rawClient) readFrame() (byte, []byte, error) {
	return wsframe.Read(rc.br, 1<<20)
}

// expectClose reads frames until a close frame and checks its code; then it
// checks that the server closes the TCP connection.
func (rc *rawClient) expectClose(code uint16) {
	rc.t.Helper()
	for {
		b0, p, err := rc.readFrame()
		if err != nil {
			rc.t.Fatalf("want close %d, got read error %v", code, err)
		}
		if b0&0x0f != 0x8 {
			continue
		}
		if code == StatusNoStatus {
			if len(p) != 0 {
				rc.t.Fatalf("want empty close payload, got %x", p)
			}
		} else if len(p) < 2 || binary.BigEndian.Uint16(p) != code {
			rc.t.Fatalf("want close %d, got payload %q", code, p)
		}
		break
	}
	// Answer the close and expect EOF.
	rc.write(frame(0x88, nil, true))
	if _, err := io.Copy(io.Discard, rc.br); err != nil {
		rc.t.Fatalf("after close: %v", err)
	}
	_ = rc.conn.Close()
}
