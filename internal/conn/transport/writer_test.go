package transport

import (
	"bytes"
	"errors"
	"testing"
	"time"
	"unsafe"

	"github.com/wsgate/wsgate/internal/tools/wsgatetest/wsframe"
)

// RFC 6455 §1.3's example.
func TestAcceptKey(t *testing.T) {
	if got := acceptKey("dGhlIHNhbXBsZSBub25jZQ=="); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("accept key %q", got)
	}
}

// gws makes a connection only where it writes: with the transport's own
// readers, an uncompressed server connection is the transport's alone.
func TestOwnWriterWithoutGwsConn(t *testing.T) {
	own := testReader == ReaderEvent || testReader == ReaderParked
	ts := startServer(t, nil, true, "chat")
	rc := dialRaw(t, ts, "Sec-WebSocket-Protocol: chat")
	if got := rc.resp.Header.Get("Sec-WebSocket-Protocol"); got != "chat" {
		t.Fatalf("subprotocol %q", got)
	}
	if got := rc.resp.Header.Get("Sec-WebSocket-Accept"); got != acceptKey(wsframe.Key) {
		t.Fatalf("accept %q", got)
	}
	if c := ts.conn(t); (c.ws == nil) != own {
		t.Fatalf("reader %q: gws connection made: %v", testReader, c.ws != nil)
	}
	rc.write(frame(0x81, []byte("hello"), true))
	if _, p, err := rc.readFrame(); err != nil || string(p) != "hello" {
		t.Fatalf("echo %q %v", p, err)
	}
	rc.write(frame(0x89, []byte("p"), true))
	if op, p, err := rc.readFrame(); err != nil || op != 0x8A || string(p) != "p" {
		t.Fatalf("pong %x %q %v", op, p, err)
	}

	cts := startServer(t, &Options{Compression: Compression{Enabled: true}}, false, "")
	_ = dialRaw(t, cts, "Sec-WebSocket-Extensions: permessage-deflate")
	if c := cts.conn(t); c.ws == nil {
		t.Fatal("compressed connection without gws")
	}
}

// A large message goes out whole through writes that the socket takes in
// parts, and the connection goes on.
func TestWriteLargeMessageWhole(t *testing.T) {
	ts := startServer(t, nil, false, "")
	rc := dialRaw(t, ts)
	c := ts.conn(t)
	big := bytes.Repeat([]byte("0123456789abcdef"), 60<<10) // 960 KiB: the test client's limit is 1 MiB
	done := make(chan error, 1)
	go func() {
		if err := c.WriteMessage(Binary, big); err != nil {
			done <- err
			return
		}
		done <- c.WriteMessage(Text, []byte("after"))
	}()
	time.Sleep(50 * time.Millisecond) // the writer fills the socket and waits for it
	_ = rc.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, p, err := rc.readFrame(); err != nil || !bytes.Equal(p, big) {
		t.Fatalf("large message: %d bytes, %v", len(p), err)
	}
	if _, p, err := rc.readFrame(); err != nil || string(p) != "after" {
		t.Fatalf("next message %q %v", p, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A write that cannot finish within the write timeout (the peer reads
// nothing) fails, every later write fails without waiting, and the
// connection ends.
func TestFailedWriteEndsConnection(t *testing.T) {
	ts := startServer(t, &Options{WriteTimeout: 200 * time.Millisecond, CloseTimeout: 200 * time.Millisecond}, false, "")
	_ = dialRaw(t, ts) // never reads
	h := ts.handler(t)
	c := ts.conn(t)
	msg := bytes.Repeat([]byte("z"), 64<<10)
	var err error
	for i := 0; i < 10000 && err == nil; i++ {
		err = c.WriteMessage(Binary, msg)
	}
	if err == nil {
		t.Fatal("writes to a peer that reads nothing never failed")
	}
	start := time.Now()
	if err := c.WriteMessage(Text, []byte("late")); !errors.Is(err, errWriteClosed) && !errors.Is(err, ErrClosed) {
		t.Fatalf("write after a failed write: %v", err)
	}
	if time.Since(start) > 100*time.Millisecond {
		t.Fatal("a write after a failed write waited")
	}
	ev := h.next(t, "close")
	if code, _ := CloseCode(ev.err); code != StatusAbnormal {
		t.Fatalf("close code %d, want %d (%v)", code, StatusAbnormal, ev.err)
	}
}

// Every idle connection holds a wireConn, a Conn, a frameReader (the event
// and parked readers), a pooledReader (plain TCP) and a parking (parked): a
// field that pushes one into the next size class costs 16-32 B per
// connection. Move small fields to the block at the end instead, or raise
// the class here with a reason.
func TestConnSizeClasses(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("64-bit layout")
	}
	for _, c := range []struct {
		name       string
		size, want uintptr
	}{
		{"wireConn", unsafe.Sizeof(wireConn{}), 320},
		{"frameReader", unsafe.Sizeof(frameReader{}), 96},
		{"pooledReader", unsafe.Sizeof(pooledReader{}), 48},
		{"Conn", unsafe.Sizeof(Conn{}), 80},
		{"parking", unsafe.Sizeof(parking{}), 48},
	} {
		if c.size > c.want {
			t.Errorf("%s is %d bytes, over its %d-byte size class", c.name, c.size, c.want)
		}
	}
}
