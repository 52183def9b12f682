package transport

import (
	"bytes"
	"testing"
)

func newTestObserver() frameObserver {
	return frameObserver{expectMasked: true, maxBytes: 1000, maxFragments: 4}
}

// FuzzFrameObserver feeds arbitrary streams to the observer whole and in
// small chunks: it must never panic, never report more bytes than it got,
// reach the same verdict however the stream is cut, and cut the stream at
// the same frame.
func FuzzFrameObserver(f *testing.F) {
	f.Add(frame(0x81, []byte("hello"), true), uint8(1))
	f.Add(append(frame(0x01, []byte("a"), true), frame(0x80, []byte("b"), true)...), uint8(3))
	f.Add(frameLen(0x81, 1<<62, nil, true), uint8(2))
	f.Add(frameLen(0x81, 1<<63, nil, true), uint8(5))
	f.Add(frame(0x82, []byte{1}, true), uint8(1))
	f.Add(frame(0x89, bytes.Repeat([]byte("p"), 125), true), uint8(7))
	f.Add(frame(0x8B, nil, true), uint8(1))
	f.Add(frame(0x81, []byte("x"), false), uint8(1))
	f.Add([]byte{0x81, 0xfe, 0x00, 0x10, 1, 2, 3, 4}, uint8(1))
	f.Fuzz(func(t *testing.T, stream []byte, chunk uint8) {
		whole := newTestObserver()
		n, v := whole.scan(stream)
		if n < 0 || n > len(stream) {
			t.Fatalf("n=%d of %d", n, len(stream))
		}
		if v == nil && n != len(stream) {
			t.Fatalf("accepted %d of %d bytes without violation", n, len(stream))
		}

		size := int(chunk)%16 + 1
		parts := newTestObserver()
		accepted := 0
		var pv *violation
		for off := 0; off < len(stream) && pv == nil; off += size {
			end := min(off+size, len(stream))
			k, vv := parts.scan(stream[off:end])
			if k < 0 || k > end-off {
				t.Fatalf("chunk n=%d of %d", k, end-off)
			}
			accepted += k
			pv = vv
		}
		if (v == nil) != (pv == nil) || (v != nil && v.code != pv.code) {
			t.Fatalf("whole %v, chunked(%d) %v", v, size, pv)
		}
		// Chunked delivery passes on the same frames; it may also have
		// passed the first bytes of the refused header (it could not know
		// yet), never a whole header (at most 14 bytes).
		if v != nil && (accepted < n || accepted >= n+14) {
			t.Fatalf("chunked accepted %d, whole %d", accepted, n)
		}
	})
}

// FuzzHeadScanner: the end of a response head and its status are found the
// same way however the stream is cut, and the scanner never panics.
func FuzzHeadScanner(f *testing.F) {
	f.Add([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x00"), uint8(3))
	f.Add([]byte("HTTP/1.1 403 Forbidden\n\nbody"), uint8(1))
	f.Add([]byte("\n\n\r\n"), uint8(2))
	f.Fuzz(func(t *testing.T, stream []byte, chunk uint8) {
		var whole headScanner
		k, done, ok := whole.scan(stream)
		if k < 0 || k > len(stream) {
			t.Fatalf("k=%d", k)
		}
		size := int(chunk)%8 + 1
		var parts headScanner
		for off := 0; off < len(stream); off += size {
			end := min(off+size, len(stream))
			pk, pdone, pok := parts.scan(stream[off:end])
			if !pok {
				if ok {
					t.Fatal("chunked scan overflowed, whole did not")
				}
				return
			}
			if pdone {
				if !done || off+pk != k || parts.status != whole.status {
					t.Fatalf("chunked end %d status %d, whole end %d done %v status %d", off+pk, parts.status, k, done, whole.status)
				}
				return
			}
		}
		if done {
			t.Fatal("whole scan found an end the chunked scan did not")
		}
	})
}
