package transport

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/flate"
)

// testReader is the read side the package's tests run against; TestMain
// runs the whole package once with each (WSGATETEST_READER selects one).
var testReader = os.Getenv("WSGATETEST_READER")

// TestMain runs every test with gws's reader, then runs the test binary
// again with the event reader and with the parked reader, so that the
// strict, conformance and connection tests hold for every implementation.
func TestMain(m *testing.M) {
	// The parked reader's idle workers exit after workerIdle (1 s in
	// production); the leak checks' retries give up after about that long,
	// so a worker that ran a test's last read could be reported as a leak.
	workerIdle = 20 * time.Millisecond
	code := m.Run()
	if fz := flag.Lookup("test.fuzz"); code != 0 || testReader != "" || (fz != nil && fz.Value.String() != "") {
		os.Exit(code)
	}
	for _, r := range []string{ReaderEvent, ReaderParked} {
		cmd := exec.Command(os.Args[0], os.Args[1:]...)
		cmd.Env = append(os.Environ(), "WSGATETEST_READER="+r)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		fmt.Printf("=== transport tests again with the %s reader (WSGATETEST_READER=%s)\n", r, r)
		if err := cmd.Run(); err != nil {
			fmt.Println(r, "reader run:", err)
			os.Exit(1)
		}
	}
	os.Exit(0)
}

// newTestUpgrader is NewUpgrader with the reader under test, unless opts
// chose one.
func newTestUpgrader(opts *Options) (*Upgrader, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Reader == "" {
		o.Reader = testReader
	}
	return NewUpgrader(&o)
}

func TestReaderOption(t *testing.T) {
	if _, err := NewUpgrader(&Options{Reader: "nbio"}); err == nil {
		t.Fatal("unknown reader accepted")
	}
	for _, r := range []string{"", ReaderGws, ReaderEvent, ReaderParked} {
		if _, err := NewUpgrader(&Options{Reader: r}); err != nil {
			t.Fatalf("reader %q: %v", r, err)
		}
	}
}

// deflateStream compresses messages with one compressor kept across them
// (client context takeover), each ended as RFC 7692 §7.2.1 says.
func deflateStream(t *testing.T, msgs ...string) [][]byte {
	t.Helper()
	var buf bytes.Buffer
	fw, _ := flate.NewWriter(&buf, flate.BestCompression)
	var out [][]byte
	for _, m := range msgs {
		buf.Reset()
		_, _ = fw.Write([]byte(m))
		_ = fw.Flush()
		out = append(out, bytes.Clone(bytes.TrimSuffix(buf.Bytes(), []byte{0, 0, 0xff, 0xff})))
	}
	return out
}

// With client context takeover the later messages refer back into earlier
// ones: the decompression window must carry over (and fragments of a
// compressed message are inflated as one).
func TestCompressionContextTakeover(t *testing.T) {
	ts := startServer(t, &Options{Compression: Compression{Enabled: true, ClientContextTakeover: true}}, false, "")
	rc := dialRaw(t, ts, "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits")
	if ext := rc.resp.Header.Get("Sec-WebSocket-Extensions"); strings.Contains(ext, "client_no_context_takeover") {
		t.Fatalf("takeover not negotiated: %q", ext)
	}
	h := ts.handler(t)
	msgs := []string{strings.Repeat("the quick brown fox ", 10), strings.Repeat("the quick brown fox ", 12), "jumps over the quick brown fox"}
	for i, p := range deflateStream(t, msgs...) {
		if i == 1 { // fragmented
			rc.write(frame(0x41, p[:len(p)/2], true))
			rc.write(frame(0x80, p[len(p)/2:], true))
		} else {
			rc.write(frame(0xC1, p, true))
		}
		if got := h.next(t, "message").data; string(got) != msgs[i] {
			t.Fatalf("message %d: got %q", i, got)
		}
	}
	// Compressed text must be UTF-8 once inflated.
	rc.write(frame(0xC1, deflate(t, []byte{0xff, 0xfe}), true))
	rc.expectClose(StatusInvalidPayload)
}

// The peer's close frame is answered per RFC 6455 §7.4 and reported with
// the code the peer sent.
func TestPeerCloseAnswers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload []byte
		answer  uint16
	}{
		{"normal", binary.BigEndian.AppendUint16(nil, 1000), StatusNormal},
		{"going away with reason", append(binary.BigEndian.AppendUint16(nil, 1001), "bye"...), StatusNormal},
		{"application code", binary.BigEndian.AppendUint16(nil, 4001), 4001},
		{"one byte", []byte{3}, StatusProtocolError},
		{"reserved 1005", binary.BigEndian.AppendUint16(nil, 1005), StatusProtocolError},
		{"unassigned 2000", binary.BigEndian.AppendUint16(nil, 2000), StatusProtocolError},
		{"bad reason", append(binary.BigEndian.AppendUint16(nil, 1000), 0xc0), StatusInvalidPayload},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, nil, false, "")
			rc := dialRaw(t, ts)
			h := ts.handler(t)
			rc.write(frame(0x88, tc.payload, true))
			rc.expectClose(tc.answer)
			code, _ := CloseCode(h.next(t, "close").err)
			want := tc.answer
			if tc.answer == StatusNormal || tc.answer >= 3000 {
				want = binary.BigEndian.Uint16(tc.payload)
			}
			if code != want {
				t.Fatalf("OnClose code %d, want %d", code, want)
			}
		})
	}
}

// serverEvents writes stream to a fresh connection of ts, half-closes, and
// returns what the server's handler saw: messages, pings, pongs and the
// close code, in order.
func serverEvents(t *testing.T, ts *testServer, stream []byte, extra ...string) []string {
	t.Helper()
	rc := dialRaw(t, ts, extra...)
	h := ts.handler(t)
	_, _ = rc.conn.Write(stream)
	if cw, ok := rc.conn.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	var out []string
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e := <-h.events:
			if e.kind == "close" {
				code, _ := CloseCode(e.err)
				return append(out, fmt.Sprintf("close %d", code))
			}
			out = append(out, fmt.Sprintf("%s %d %q", e.kind, e.op, e.data))
		case <-timeout:
			t.Fatalf("no close after %q (events %q)", stream, out)
		}
	}
}

// FuzzEventReader sends the same client byte stream to a server reading
// with gws and to one reading with the event reader: the handler must see
// the same messages, pings and pongs and the same close code. With compress
// both negotiate permessage-deflate without context takeover.
func FuzzEventReader(f *testing.F) {
	f.Add(frame(0x81, []byte("hello"), true), false)
	f.Add(append(frame(0x01, []byte("a"), true), append(frame(0x89, []byte("p"), true), frame(0x80, []byte("b"), true)...)...), false)
	f.Add(append(frame(0x82, []byte{0, 1, 2}, true), frame(0x88, binary.BigEndian.AppendUint16(nil, 1000), true)...), false)
	f.Add(frame(0x88, []byte{1}, true), false)
	f.Add(frame(0x88, append(binary.BigEndian.AppendUint16(nil, 4000), 0xff), true), false)
	f.Add(frame(0x8A, []byte("pong"), true), false)
	f.Add(frame(0x81, []byte{0xe2, 0x82}, true), false)
	f.Add(append(frame(0x01, []byte{0xe2}, true), frame(0x80, []byte{0x82, 0xac}, true)...), false)
	f.Add(frameLen(0x81, 1<<40, nil, true), false)
	f.Add(frame(0x81, bytes.Repeat([]byte("x"), 300), true)[:100], false)
	f.Add(frame(0xC1, []byte("x"), true), false)
	f.Add(frame(0xC1, deflate(f, []byte("hello hello hello")), true), true)
	f.Add(frame(0xC1, deflate(f, make([]byte, 4096)), true), true)
	f.Add(append(frame(0x41, deflate(f, []byte("frag"))[:2], true), frame(0x80, deflate(f, []byte("frag"))[2:], true)...), true)
	f.Add(frame(0xC1, []byte{0xff, 0xff}, true), true)
	f.Add(frame(0xC1, deflate(f, []byte{0xc3, 0x28}), true), true)
	opts := &Options{MaxMessageBytes: 1024, MaxFragments: 4, AllowBinary: true, Compression: Compression{Enabled: true}}
	gwsOpts, eventOpts := *opts, *opts
	gwsOpts.Reader, eventOpts.Reader = ReaderGws, ReaderEvent
	f.Fuzz(func(t *testing.T, stream []byte, compress bool) {
		var ext []string
		if compress {
			ext = []string{"Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; server_no_context_takeover"}
		}
		// Servers per input keep cleanup simple; an input costs a few ms.
		g := serverEvents(t, startServer(t, &gwsOpts, false, ""), stream, ext...)
		e := serverEvents(t, startServer(t, &eventOpts, false, ""), stream, ext...)
		if fmt.Sprint(g) != fmt.Sprint(e) {
			t.Fatalf("stream %x\n gws:   %q\n event: %q", stream, g, e)
		}
	})
}

func TestMaskBytesOffsets(t *testing.T) {
	key := [4]byte{1, 2, 3, 4}
	p := bytes.Repeat([]byte{0xAA}, 37)
	for pos := range 4 {
		got := bytes.Clone(p)
		maskBytes(got, key, pos)
		for i := range got {
			if got[i] != p[i]^key[(pos+i)&3] {
				t.Fatalf("pos %d byte %d", pos, i)
			}
		}
	}
}
