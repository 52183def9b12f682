package transport

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// Each case writes hand-built frames on a raw TCP connection and reads the
// close frame back.
func TestStrictFrames(t *testing.T) {
	big := bytes.Repeat([]byte("a"), 100)
	cases := []struct {
		name   string
		opts   Options
		frames [][]byte
		code   uint16
	}{
		{"message over cap", Options{MaxMessageBytes: 64}, [][]byte{frame(0x81, big, true)}, StatusMessageTooBig},
		{"announces 2^62 bytes", Options{}, [][]byte{frameLen(0x81, 1<<62, nil, true)}, StatusMessageTooBig},
		{"length with top bit set", Options{}, [][]byte{frameLen(0x81, 1<<63, nil, true)}, StatusProtocolError},
		{"fragments sum over cap", Options{MaxMessageBytes: 150}, [][]byte{
			frame(0x01, big, true), frame(0x00, big, true), frame(0x80, big, true)}, StatusMessageTooBig},
		{"too many fragments", Options{MaxFragments: 3}, [][]byte{
			frame(0x01, []byte("a"), true), frame(0x00, []byte("b"), true), frame(0x00, []byte("c"), true),
			frame(0x00, []byte("d"), true), frame(0x80, []byte("e"), true)}, StatusMessageTooBig},
		{"unmasked client frame", Options{}, [][]byte{frame(0x81, []byte("hi"), false)}, StatusProtocolError},
		{"rsv1 without extension", Options{}, [][]byte{frame(0xC1, []byte("hi"), true)}, StatusProtocolError},
		{"rsv2", Options{}, [][]byte{frame(0xA1, []byte("hi"), true)}, StatusProtocolError},
		{"rsv3", Options{}, [][]byte{frame(0x91, []byte("hi"), true)}, StatusProtocolError},
		{"reserved opcode 3", Options{}, [][]byte{frame(0x83, nil, true)}, StatusProtocolError},
		{"reserved opcode 7", Options{}, [][]byte{frame(0x87, nil, true)}, StatusProtocolError},
		{"reserved opcode 0xB", Options{}, [][]byte{frame(0x8B, nil, true)}, StatusProtocolError},
		{"reserved opcode 0xF", Options{}, [][]byte{frame(0x8F, nil, true)}, StatusProtocolError},
		{"continuation without start", Options{}, [][]byte{frame(0x80, []byte("x"), true)}, StatusProtocolError},
		{"data frame inside fragmented message", Options{}, [][]byte{
			frame(0x01, []byte("a"), true), frame(0x81, []byte("b"), true)}, StatusProtocolError},
		{"control frame over 125", Options{}, [][]byte{frameLen(0x89, 126, bytes.Repeat([]byte("p"), 126), true)}, StatusProtocolError},
		{"fragmented control frame", Options{}, [][]byte{frame(0x09, []byte("p"), true)}, StatusProtocolError},
		{"invalid utf-8 text", Options{}, [][]byte{frame(0x81, []byte{0xff, 0xfe, 'a'}, true)}, StatusInvalidPayload},
		{"invalid utf-8 across fragments", Options{}, [][]byte{
			frame(0x01, []byte{0xe2, 0x82}, true), frame(0x80, []byte{0x28}, true)}, StatusInvalidPayload},
		{"binary not allowed", Options{}, [][]byte{frame(0x82, []byte{1, 2, 3}, true)}, StatusUnsupportedData},
		{"close with 1-byte payload", Options{}, [][]byte{frame(0x88, []byte{3}, true)}, StatusProtocolError},
		{"close with reserved code 1005", Options{}, [][]byte{frame(0x88, []byte{0x03, 0xed}, true)}, StatusProtocolError},
		{"close with code 999", Options{}, [][]byte{frame(0x88, []byte{0x03, 0xe7}, true)}, StatusProtocolError},
		{"close with code 5000", Options{}, [][]byte{frame(0x88, []byte{0x13, 0x88}, true)}, StatusProtocolError},
		{"close with invalid utf-8 reason", Options{}, [][]byte{frame(0x88, []byte{0x03, 0xe8, 0xff}, true)}, StatusInvalidPayload},
		{"close empty", Options{}, [][]byte{frame(0x88, nil, true)}, StatusNoStatus},
		{"close normal", Options{}, [][]byte{frame(0x88, []byte{0x03, 0xe8, 'b', 'y', 'e'}, true)}, StatusNormal},
		{"close 4000 echoed", Options{}, [][]byte{frame(0x88, []byte{0x0f, 0xa0}, true)}, 4000},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			ts := startServer(t, &opts, false, "")
			rc := dialRaw(t, ts)
			h := ts.handler(t)
			for _, f := range tc.frames {
				rc.write(f)
			}
			rc.expectClose(tc.code)
			ev := h.next(t, "close")
			code, ok := CloseCode(ev.err)
			want := tc.code
			switch tc.name { // OnClose reports the code received, the wire carries the answer
			case "close empty":
				want = StatusNoStatus
			}
			if !ok || code != want {
				t.Fatalf("OnClose code %d (%v), want %d", code, ev.err, want)
			}
		})
	}
}

// Frames before a refused one are still delivered, in order.
func TestStrictDeliversEarlierFrames(t *testing.T) {
	ts := startServer(t, &Options{MaxMessageBytes: 16}, false, "")
	rc := dialRaw(t, ts)
	h := ts.handler(t)
	var b []byte
	b = append(b, frame(0x81, []byte("one"), true)...)
	b = append(b, frame(0x81, []byte("two"), true)...)
	b = append(b, frame(0x81, bytes.Repeat([]byte("x"), 17), true)...)
	rc.write(b)
	for _, want := range []string{"one", "two"} {
		if got := string(h.next(t, "message").data); got != want {
			t.Fatalf("got %q want %q", got, want)
		}
	}
	rc.expectClose(StatusMessageTooBig)
}

// Frames pipelined right behind the upgrade request (in net/http's buffer)
// are not lost.
func TestPipelinedFrames(t *testing.T) {
	ts := startServer(t, nil, true, "")
	conn := dialRawPipelined(t, ts, frame(0x81, []byte("early"), true))
	_, p, err := conn.readFrame()
	if err != nil || string(p) != "early" {
		t.Fatalf("echo %q %v", p, err)
	}
}

// dialRawPipelined sends the upgrade request and frames in one write.
func dialRawPipelined(t *testing.T, ts *testServer, frames []byte) *rawClient {
	t.Helper()
	return dialRawWith(t, ts, frames)
}

func deflate(t testing.TB, p []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	fw, _ := flate.NewWriter(&buf, flate.BestCompression)
	_, _ = fw.Write(p)
	_ = fw.Flush()
	b := buf.Bytes()
	return bytes.TrimSuffix(b, []byte{0, 0, 0xff, 0xff})
}

func TestCompressionBomb(t *testing.T) {
	ts := startServer(t, &Options{MaxMessageBytes: 1024, Compression: Compression{Enabled: true}}, true, "")
	rc := dialRaw(t, ts, "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; server_no_context_takeover")
	if ext := rc.resp.Header.Get("Sec-WebSocket-Extensions"); !strings.Contains(ext, "permessage-deflate") {
		t.Fatalf("compression not negotiated: %q", ext)
	}
	h := ts.handler(t)
	// A small compressed message within the cap round-trips.
	rc.write(frame(0xC1, deflate(t, []byte(strings.Repeat("hello ", 20))), true))
	if got := h.next(t, "message").data; string(got) != strings.Repeat("hello ", 20) {
		t.Fatalf("got %q", got)
	}
	// 512 KiB of zeros deflates to about half a kilobyte.
	bomb := deflate(t, make([]byte, 512<<10))
	if len(bomb) > 1024 {
		t.Fatalf("bomb is %d bytes, want under the cap", len(bomb))
	}
	rc.write(frame(0xC1, bomb, true))
	rc.expectClose(StatusMessageTooBig)
	h.closedWith(t, StatusMessageTooBig)
}

func TestCompressionRSV1OnContinuation(t *testing.T) {
	ts := startServer(t, &Options{Compression: Compression{Enabled: true}}, false, "")
	rc := dialRaw(t, ts, "Sec-WebSocket-Extensions: permessage-deflate")
	rc.write(frame(0x01, []byte("a"), true))
	rc.write(frame(0xC0, []byte("b"), true))
	rc.expectClose(StatusProtocolError)
}

func TestCompressionOffByDefault(t *testing.T) {
	ts := startServer(t, nil, false, "")
	rc := dialRaw(t, ts, "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits")
	if ext := rc.resp.Header.Values("Sec-WebSocket-Extensions"); len(ext) != 0 {
		t.Fatalf("unexpected extension in 101: %q", ext)
	}
	rc.write(frame(0xC1, deflate(t, []byte("hi")), true))
	rc.expectClose(StatusProtocolError)
}

// A read deadline makes gws close on its own; the close frame must not carry
// its error text (which names socket addresses).
func TestGwsCloseReasonIsSanitized(t *testing.T) {
	ts := startServer(t, nil, false, "")
	rc := dialRaw(t, ts)
	sc := <-ts.conns
	_ = sc.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	b0, p, err := rc.readFrame()
	if err != nil || b0&0x0f != 0x8 {
		t.Fatalf("frame %x %q %v", b0, p, err)
	}
	if len(p) > 2 || strings.Contains(string(p), "127.0.0.1") {
		t.Fatalf("close payload %q", p)
	}
}

// rawServer answers the handshake by hand and writes after101 in the same
// write as the 101 response, then reads frames until EOF.
func rawServer(t *testing.T, after101 []byte) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		sum := sha1.Sum([]byte(r.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Accept: " + base64.StdEncoding.EncodeToString(sum[:]) + "\r\n\r\n"
		_, _ = conn.Write(append([]byte(resp), after101...))
		_, _ = io.Copy(io.Discard, brw)
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

func TestClientStrictness(t *testing.T) {
	cases := []struct {
		name   string
		frames []byte
		code   uint16
	}{
		{"masked server frame", frame(0x81, []byte("hi"), true), StatusProtocolError},
		{"too big", frame(0x81, bytes.Repeat([]byte("a"), 200), false), StatusMessageTooBig},
		{"binary", frame(0x82, []byte{1}, false), StatusUnsupportedData},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			url := rawServer(t, append(frame(0x81, []byte("welcome"), false), tc.frames...))
			h := newRecorder(false)
			c, _, err := Dial(context.Background(), url, &DialOptions{Options: Options{MaxMessageBytes: 100}}, h)
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() { defer close(done); c.Serve() }()
			if got := h.next(t, "message"); string(got.data) != "welcome" {
				t.Fatalf("first message %q", got.data)
			}
			h.closedWith(t, tc.code)
			<-done
		})
	}
}

// RFC 6455 §8.1 fail fast: a text message fails at the fragment (or the chunk
// of a frame) where it becomes invalid UTF-8, while the client still holds
// the rest of the message.
func TestUTF8FailFast(t *testing.T) {
	cases := []struct {
		name  string
		first [][]byte // written before the close is expected
	}{
		{"first fragment invalid", [][]byte{frame(0x01, []byte{'o', 'k', 0xff}, true)}},
		{"second fragment invalid", [][]byte{frame(0x01, []byte("fine"), true), frame(0x00, []byte{0xed, 0xa0, 0x80}, true)}},
		{"code point split then broken", [][]byte{frame(0x01, []byte{0xe2, 0x82}, true), frame(0x00, []byte{0x28}, true)}},
		// One frame announced whole, its payload sent in part: the server
		// must not wait for the rest of the frame.
		{"inside a frame", [][]byte{frame(0x81, append([]byte("valid text "), 0xf4, 0x90, 0x80, 0x80, 'x', 'y'), true)[:2+4+13]}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, nil, false, "")
			rc := dialRaw(t, ts)
			h := ts.handler(t)
			for _, f := range tc.first {
				rc.write(f)
			}
			// No final fragment was sent: the close must come anyway.
			rc.expectClose(StatusInvalidPayload)
			h.closedWith(t, StatusInvalidPayload)
		})
	}
}

// A code point split across fragments, and across ping frames between them,
// is valid.
func TestUTF8AcrossFragments(t *testing.T) {
	ts := startServer(t, nil, false, "")
	rc := dialRaw(t, ts)
	h := ts.handler(t)
	rc.write(frame(0x01, []byte{'a', 0xf0, 0x9d}, true))
	rc.write(frame(0x89, []byte{0xff}, true)) // control payloads are not text
	rc.write(frame(0x00, []byte{0x84}, true))
	rc.write(frame(0x80, []byte{0x9e, 'b'}, true))
	if got := h.next(t, "message").data; string(got) != "a𝄞b" {
		t.Fatalf("got %q", got)
	}
	// A message that ends inside a code point fails at its last fragment.
	rc.write(frame(0x01, []byte("x"), true))
	rc.write(frame(0x80, []byte{0xe2, 0x82}, true))
	rc.expectClose(StatusInvalidPayload)
}
