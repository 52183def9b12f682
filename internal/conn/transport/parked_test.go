package transport

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// detachedServer serves every connection with ServeDetached, as the
// endpoint does: the HTTP handler returns at once (with serve false nobody
// serves them: the test drives the reader). ended counts the done
// callbacks.
type detachedServer struct {
	*testServer
	ended atomic.Int32
}

func startDetached(t testing.TB, opts *Options, echo, serve bool) *detachedServer {
	t.Helper()
	up, err := NewUpgrader(opts)
	if err != nil {
		t.Fatal(err)
	}
	ds := &detachedServer{testServer: &testServer{handlers: make(chan *recordingHandler, 100), conns: make(chan *Conn, 100)}}
	ds.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := newRecorder(echo)
		c, err := up.Upgrade(w, r, "", h)
		if err != nil {
			return
		}
		ds.handlers <- h
		ds.conns <- c
		if serve {
			c.ServeDetached(func() { ds.ended.Add(1) })
		}
	}))
	t.Cleanup(ds.Server.Close)
	return ds
}

// waitState waits until c's parked reader is in state.
func waitState(t *testing.T, c *Conn, state int32) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for c.pk.state.Load() != state {
		if time.Now().After(deadline) {
			t.Fatalf("reader state %d, want %d", c.pk.state.Load(), state)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Idle parked connections hold no goroutine, frames split across reads are
// reassembled, and closing parked connections from outside ends each exactly
// once and leaves no goroutine behind (the pollers and workers exit too).
func TestParkedConnections(t *testing.T) {
	if !parkingSupported {
		t.Skip("parking needs epoll")
	}
	if testReader != "" {
		t.Skip("chooses its reader")
	}
	leaks := goleak.IgnoreCurrent()
	ds := startDetached(t, &Options{Reader: ReaderParked}, true, true)
	const n = 40
	var clients []*rawClient
	var conns []*Conn
	var handlers []*recordingHandler
	before := runtime.NumGoroutine()
	for range n {
		clients = append(clients, dialRaw(t, ds.testServer))
		handlers = append(handlers, ds.handler(t))
		conns = append(conns, ds.conn(t))
	}
	for i, rc := range clients {
		// Header and payload in separate writes: the reader resumes the
		// frame on the next readiness.
		f := frame(0x81, fmt.Appendf(nil, "message %d", i), true)
		rc.write(f[:3])
		time.Sleep(time.Millisecond)
		rc.write(f[3:])
		_, p, err := rc.readFrame()
		if err != nil || string(p) != fmt.Sprintf("message %d", i) {
			t.Fatalf("echo %d: %q %v", i, p, err)
		}
	}
	for _, c := range conns {
		waitState(t, c, parkParked)
		if c.rd.partial() || c.rd.msg != nil || c.wire.pooled.buf != nil {
			t.Fatal("a parked connection holds read state")
		}
	}
	// Without parking each connection would keep a goroutine; with it
	// there are the pollers and a few idle workers.
	if extra := runtime.NumGoroutine() - before; extra >= n/2 {
		t.Fatalf("%d more goroutines with %d parked connections", extra, n)
	}

	// Half end from the server while parked (Close, WriteClose), half by the
	// peer's close frame.
	for i, c := range conns {
		switch i % 3 {
		case 0:
			_ = c.Close()
		case 1:
			_ = c.WriteClose(StatusGoingAway, "bye")
			clients[i].expectClose(StatusGoingAway)
		default:
			clients[i].write(frame(0x88, binary.BigEndian.AppendUint16(nil, StatusNormal), true))
		}
	}
	for i, h := range handlers {
		code, _ := CloseCode(h.next(t, "close").err)
		want := [...]uint16{StatusAbnormal, StatusGoingAway, StatusNormal}[i%3]
		if code != want {
			t.Errorf("connection %d: close %d, want %d", i, code, want)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for ds.ended.Load() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d connections ended", ds.ended.Load(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	for i, c := range conns {
		h := handlers[i]
		h.mu.Lock()
		closes := h.closes
		h.mu.Unlock()
		if c.pk.state.Load() != parkDone || closes != 1 {
			t.Fatalf("connection %d: state %d, %d OnClose calls", i, c.pk.state.Load(), closes)
		}
	}
	for _, rc := range clients {
		_ = rc.conn.Close()
	}
	ds.Server.CloseClientConnections()
	ds.Server.Close()
	deadline = time.Now().Add(3*workerIdle + 5*time.Second)
	for goleak.Find(leaks) != nil && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	goleak.VerifyNone(t, leaks)
}

// unserved returns the server side of a new connection to ts (a
// detachedServer that does not serve).
func unserved(t *testing.T, ts *testServer, extra ...string) (*Conn, *recordingHandler) {
	t.Helper()
	dialRaw(t, ts, extra...)
	h, c := ts.handler(t), ts.conn(t)
	t.Cleanup(func() { _ = c.Close() })
	return c, h
}

// feedChunks feeds stream to c's resumable reader in chunks whose sizes come
// from cuts in turn (1..32 bytes; the whole stream at once when cuts is
// empty), each checked by the observer first as wireConn.read does, and
// returns the handler's events and how the reader ended.
func feedChunks(c *Conn, h *recordingHandler, stream, cuts []byte) []string {
	var ev error
	done := false
	for off, i := 0, 0; off < len(stream) && !done; i++ {
		size := len(stream) - off
		if len(cuts) > 0 {
			size = min(size, int(cuts[i%len(cuts)])%32+1)
		}
		chunk := stream[off : off+size]
		off += size
		k, v := c.wire.obs.scan(chunk)
		ev, done = c.rd.feed(chunk[:k])
		if !done && v != nil {
			ev, done = c.rd.fail(v), true
		}
	}
	var out []string
	for len(h.events) > 0 {
		e := <-h.events
		out = append(out, fmt.Sprintf("%s %d %q", e.kind, e.op, e.data))
	}
	if !done {
		return append(out, fmt.Sprintf("open partial=%v", c.rd.partial()))
	}
	code, _ := CloseCode(c.closeError(ev))
	return append(out, fmt.Sprintf("end %d", code))
}

// FuzzResumableReader feeds the same stream to the resumable reader whole
// and cut at the fuzzed points: the handler must see the same messages,
// pings and pongs, and the reader end the same way (or hold the same
// partial frame).
func FuzzResumableReader(f *testing.F) {
	f.Add(frame(0x81, []byte("hello"), true), []byte{1}, false)
	f.Add(append(frame(0x01, []byte("ab"), true), append(frame(0x89, []byte("p"), true), frame(0x80, []byte("cd"), true)...)...), []byte{2, 5, 1}, false)
	f.Add(frame(0x82, bytes.Repeat([]byte{7}, 300), true), []byte{3, 0, 13}, false)
	f.Add(frame(0x82, bytes.Repeat([]byte{7}, 70000), true)[:2000], []byte{1, 2}, false)
	f.Add(append(frame(0x81, nil, true), frame(0x88, binary.BigEndian.AppendUint16(nil, 1000), true)...), []byte{0}, false)
	f.Add(frame(0x88, []byte{1}, true), []byte{0}, false)
	f.Add(frame(0x8A, []byte("pong"), true), []byte{4}, false)
	f.Add(append(frame(0x01, []byte{0xe2}, true), frame(0x80, []byte{0x82, 0xac}, true)...), []byte{1}, false)
	f.Add(frame(0x81, []byte{0xe2, 0x82}, true), []byte{1}, false)
	f.Add(frameLen(0x81, 1<<40, nil, true), []byte{3}, false)
	f.Add(frame(0xC1, []byte("x"), true), []byte{1}, false)
	f.Add(frame(0xC1, deflate(f, []byte("hello hello hello")), true), []byte{2}, true)
	f.Add(append(frame(0x41, deflate(f, []byte("frag"))[:2], true), frame(0x80, deflate(f, []byte("frag"))[2:], true)...), []byte{1, 3}, true)
	f.Add(frame(0xC1, []byte{0xff, 0xff}, true), []byte{1}, true)
	if testReader != "" {
		f.Skip("chooses its reader")
	}
	ts := startDetached(f, &Options{MaxMessageBytes: 1024, MaxFragments: 4, AllowBinary: true, Compression: Compression{Enabled: true}, Reader: ReaderEvent}, false, false)
	f.Fuzz(func(t *testing.T, stream, cuts []byte, compress bool) {
		if len(cuts) == 0 {
			cuts = []byte{0}
		}
		var ext []string
		if compress {
			ext = []string{"Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; server_no_context_takeover"}
		}
		wc, wh := unserved(t, ts.testServer, ext...)
		cc, ch := unserved(t, ts.testServer, ext...)
		whole := feedChunks(wc, wh, stream, nil)
		chunked := feedChunks(cc, ch, stream, cuts)
		if fmt.Sprint(whole) != fmt.Sprint(chunked) {
			t.Fatalf("stream %x cuts %v\n whole:   %q\n chunked: %q", stream, cuts, whole, chunked)
		}
	})
}

// A peer that goes away in the middle of a frame (FIN or RST right behind
// the bytes, so that one edge reports both) ends its parked connection.
func TestParkedPeerGoneMidFrame(t *testing.T) {
	if !parkingSupported {
		t.Skip("parking needs epoll")
	}
	if testReader != "" {
		t.Skip("chooses its reader")
	}
	ds := startDetached(t, &Options{Reader: ReaderParked}, false, true)
	cuts := [][]byte{
		{0x81},
		{0x81, 0x80 | 126, 0x10},
		frame(0x81, []byte("a payload cut short"), true)[:12],
		frame(0x01, []byte("a first fragment"), true),
	}
	const rounds = 5
	for round := range rounds {
		for i, cut := range cuts {
			rc := dialRaw(t, ds.testServer)
			rc.write(cut)
			if tc, ok := rc.conn.(interface{ SetLinger(int) error }); ok && (round+i)%2 == 0 {
				_ = tc.SetLinger(0) // RST instead of FIN
			}
			_ = rc.conn.Close()
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for int(ds.ended.Load()) != rounds*len(cuts) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d connections ended", ds.ended.Load(), rounds*len(cuts))
		}
		time.Sleep(5 * time.Millisecond)
	}
}
