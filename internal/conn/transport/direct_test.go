package transport

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

// A direct write is an ordinary frame on the wire, in order with gws's writes.
func TestTryWriteMessageFrames(t *testing.T) {
	ts := startServer(t, nil, false, "")
	rc := dialRaw(t, ts)
	c := ts.conn(t)
	if !c.DirectWrites() {
		t.Fatal("plain TCP server connection without direct writes")
	}
	for _, n := range []int{0, 5, 125, 126, 300, 70000} {
		msg := bytes.Repeat([]byte("x"), n)
		if res, err := c.TryWriteMessage(Text, msg); err != nil || res != TryWritten {
			t.Fatalf("%d bytes: %v %v", n, res, err)
		}
		if err := c.WriteMessage(Text, []byte("after")); err != nil {
			t.Fatal(err)
		}
		for _, want := range [][]byte{msg, []byte("after")} {
			b0, p, err := rc.readFrame()
			if err != nil || b0 != 0x81 || !bytes.Equal(p, want) {
				t.Fatalf("%d bytes: frame %#x of %d bytes, %v", n, b0, len(p), err)
			}
		}
	}
	if _, err := c.TryWriteMessage(Text, []byte{0xff}); err != ErrInvalidUTF8 {
		t.Fatalf("invalid UTF-8: %v", err)
	}
}

// When the peer does not read, direct writes stop at the full socket buffer
// (partly written or not at all) without blocking; what a partial write left
// goes out before the next frame, so the peer reads every message whole and in
// order once it reads again.
func TestTryWriteMessagePartialAndBlocked(t *testing.T) {
	ts := startServer(t, nil, false, "")
	rc := dialRaw(t, ts)
	c := ts.conn(t)
	msg := func(i int) []byte { return []byte(fmt.Sprintf("%06d%s", i, bytes.Repeat([]byte("y"), 9000))) }
	sent, partial := 0, false
	start := time.Now()
	for ; sent < 100000; sent++ {
		res, err := c.TryWriteMessage(Text, msg(sent))
		if err != nil {
			t.Fatal(err)
		}
		if res == TryBlocked {
			break
		}
		if res == TryPartial {
			partial = true
			sent++
			// Another direct write must wait for the tail.
			if res, _ := c.TryWriteMessage(Text, msg(sent)); res != TryBlocked {
				t.Fatalf("direct write over a pending tail: %v", res)
			}
			break
		}
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("direct writes blocked")
	}
	t.Logf("%d messages written directly before the socket filled (partial: %v)", sent, partial)
	done := make(chan error, 1)
	go func() {
		if err := c.Flush(); err != nil {
			done <- err
			return
		}
		done <- c.WriteMessage(Text, msg(sent))
	}()
	for i := 0; i <= sent; i++ {
		_ = rc.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, p, err := rc.readFrame()
		if err != nil || !bytes.Equal(p, msg(i)) {
			t.Fatalf("message %d: %d bytes, %v", i, len(p), err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// The deadline a blocking write left on the socket has no say over a later
// direct write, which never blocks.
func TestTryWriteMessageAfterStaleDeadline(t *testing.T) {
	ts := startServer(t, nil, false, "")
	rc := dialRaw(t, ts)
	c := ts.conn(t)
	if err := c.WriteMessage(Text, []byte("first")); err != nil {
		t.Fatal(err)
	}
	_ = c.NetConn().SetWriteDeadline(time.Now().Add(-time.Second))
	if res, err := c.TryWriteMessage(Text, []byte("late")); res != TryWritten || err != nil {
		t.Fatalf("direct write after a stale deadline: %v %v", res, err)
	}
	for _, want := range []string{"first", "late"} {
		if _, p, err := rc.readFrame(); err != nil || string(p) != want {
			t.Fatalf("got %q %v, want %q", p, err, want)
		}
	}
}

// No direct write after a close frame.
func TestTryWriteMessageAfterClose(t *testing.T) {
	ts := startServer(t, nil, false, "")
	rc := dialRaw(t, ts)
	c := ts.conn(t)
	if err := c.WriteClose(StatusNormal, "bye"); err != nil {
		t.Fatal(err)
	}
	if res, _ := c.TryWriteMessage(Text, []byte("late")); res != TryBlocked {
		t.Fatalf("direct write after the close frame: %v", res)
	}
	rc.expectClose(StatusNormal)
}

// Compressed connections go through gws.
func TestDirectWritesOffWithCompression(t *testing.T) {
	ts := startServer(t, &Options{Compression: Compression{Enabled: true}}, false, "")
	_ = dialRaw(t, ts, "Sec-WebSocket-Extensions: permessage-deflate")
	c := ts.conn(t)
	if c.DirectWrites() {
		t.Fatal("direct writes on a compressed connection")
	}
	if res, err := c.TryWriteMessage(Text, []byte("x")); res != TryBlocked || err != nil {
		t.Fatalf("%v %v", res, err)
	}
}
