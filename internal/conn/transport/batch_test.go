package transport

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"
	"unsafe"
)

// WriteMessages puts every message on the wire as its own frame, in order,
// whatever their sizes (empty, the 126 and 65,536 length forms), through
// writes the socket takes in parts (the client reads only after the socket
// filled), and reports them all written; the connection goes on.
func TestWriteMessagesBatch(t *testing.T) {
	ts := startServer(t, nil, false, "")
	rc := dialRaw(t, ts)
	c := ts.conn(t)
	var msgs [][]byte
	for i := range MaxBatch {
		switch i % 4 {
		case 0:
			msgs = append(msgs, nil)
		case 1:
			msgs = append(msgs, fmt.Appendf(nil, "message %d", i))
		case 2:
			msgs = append(msgs, bytes.Repeat([]byte{byte('a' + i%26)}, 200))
		default:
			msgs = append(msgs, bytes.Repeat([]byte{byte('A' + i%26)}, 70<<10))
		}
	}
	done := make(chan error, 1)
	go func() {
		n, err := c.WriteMessages(Text, msgs)
		if err == nil && n != len(msgs) {
			err = fmt.Errorf("%d of %d written", n, len(msgs))
		}
		if err == nil {
			err = c.WriteMessage(Text, []byte("after"))
		}
		done <- err
	}()
	time.Sleep(50 * time.Millisecond) // 1.1 MiB: the writer fills the socket and waits
	_ = rc.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for i, want := range msgs {
		op, p, err := rc.readFrame()
		if err != nil || op != 0x81 || !bytes.Equal(p, want) {
			t.Fatalf("message %d: op %x, %d bytes (want %d), %v", i, op, len(p), len(want), err)
		}
	}
	if _, p, err := rc.readFrame(); err != nil || string(p) != "after" {
		t.Fatalf("next message %q %v", p, err)
	}
	if err := within(t, done); err != nil {
		t.Fatal(err)
	}
}

// A batch stops before a message WriteMessage would refuse: the ones before
// it go out, the count says how many, and the error says why.
func TestWriteMessagesStopsAtInvalid(t *testing.T) {
	ts := startServer(t, nil, false, "")
	rc := dialRaw(t, ts)
	c := ts.conn(t)
	n, err := c.WriteMessages(Text, [][]byte{[]byte("one"), []byte("two"), {0xff, 0xfe}, []byte("four")})
	if n != 2 || !errors.Is(err, ErrInvalidUTF8) {
		t.Fatalf("WriteMessages: %d, %v; want 2, ErrInvalidUTF8", n, err)
	}
	for _, want := range []string{"one", "two"} {
		if _, p, err := rc.readFrame(); err != nil || string(p) != want {
			t.Fatalf("got %q %v, want %q", p, err, want)
		}
	}
	if _, err := c.WriteMessages(Opcode(0x9), [][]byte{nil}); err == nil {
		t.Fatal("a batch of pings was accepted")
	}
	if _, err := c.WriteMessages(Text, make([][]byte, MaxBatch+1)); err == nil {
		t.Fatal("a batch over MaxBatch was accepted")
	}
}

// A batch that cannot go out within the write timeout (the peer reads
// nothing) fails and ends the connection, as a single write does.
func TestWriteMessagesTimeout(t *testing.T) {
	ts := startServer(t, &Options{WriteTimeout: 200 * time.Millisecond, CloseTimeout: 200 * time.Millisecond}, false, "")
	_ = dialRaw(t, ts) // never reads
	h := ts.handler(t)
	c := ts.conn(t)
	msg := bytes.Repeat([]byte("z"), 64<<10)
	batch := [][]byte{msg, msg, msg, msg}
	var err error
	for i := 0; i < 2000 && err == nil; i++ {
		_, err = c.WriteMessages(Binary, batch)
	}
	if err == nil {
		t.Fatal("batches to a peer that reads nothing never failed")
	}
	if code, _ := CloseCode(h.next(t, "close").err); code != StatusAbnormal {
		t.Fatalf("close code %d, want %d", code, StatusAbnormal)
	}
}

// BenchmarkWriteQueued writes 32 queued 100-byte messages per op to a peer
// that reads everything, one WriteMessage each (one) or one WriteMessages
// (batch): what a drainer pays for a queue that built up.
func BenchmarkWriteQueued(b *testing.B) {
	for _, mode := range []string{"one", "batch"} {
		b.Run(mode, func(b *testing.B) {
			ts := startServer(b, &Options{Reader: ReaderParked}, false, "")
			rc := dialRaw(b, ts)
			c := ts.conn(b)
			go func() { _, _ = io.Copy(io.Discard, rc.conn) }()
			_ = rc.conn.SetReadDeadline(time.Time{})
			msgs := make([][]byte, 32)
			for i := range msgs {
				msgs[i] = bytes.Repeat([]byte{'m'}, 100)
			}
			b.SetBytes(int64(len(msgs) * 100))
			b.ResetTimer()
			for range b.N {
				if mode == "batch" {
					if _, err := c.WriteMessages(Text, msgs); err != nil {
						b.Fatal(err)
					}
					continue
				}
				for _, m := range msgs {
					if err := c.WriteMessage(Text, m); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// advance drops exactly n written bytes from the front of the iovecs,
// whatever the split: what is left is the rest of the stream, byte for byte
// (a random walk of partial writes over frames of every length form).
func TestMultiWriteAdvance(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 40 {
		var msgs [][]byte
		for range 1 + rng.IntN(MaxBatch) {
			msgs = append(msgs, bytes.Repeat([]byte{byte(rng.IntN(256))}, []int{0, 1, 125, 126, 300, 65536}[rng.IntN(6)]))
		}
		m := newMultiWrite(MaxBatch)
		m.load(Binary, msgs)
		var stream []byte
		for _, p := range msgs {
			var h [10]byte
			stream = append(stream, h[:frameHeader(h[:], Binary, len(p))]...)
			stream = append(stream, p...)
		}
		for off := 0; off < len(stream); {
			n := 1 + rng.IntN(min(len(stream)-off, 70000))
			m.advance(n)
			off += n
			var rest []byte
			for _, v := range m.iov[m.idx:m.cnt] {
				rest = append(rest, unsafe.Slice(v.Base, v.Len)...)
			}
			if !bytes.Equal(rest, stream[off:]) {
				t.Fatalf("round %d: after %d of %d bytes the iovecs hold %d bytes that are not the rest", round, off, len(stream), len(rest))
			}
		}
		if m.idx != m.cnt {
			t.Fatalf("round %d: all written, %d iovecs left", round, m.cnt-m.idx)
		}
	}
}
