package transport

import (
	"bytes"
	"testing"
)

func TestObserverCutsAtRefusedHeader(t *testing.T) {
	o := newTestObserver()
	ok1 := frame(0x81, []byte("abc"), true)
	bad := frameLen(0x81, 5000, nil, true)
	stream := append(append([]byte{}, ok1...), bad...)
	n, v := o.scan(stream)
	if v != vTooBig || n != len(ok1) {
		t.Fatalf("n=%d v=%v", n, v)
	}
	// Failed observers stay failed.
	if n, v := o.scan([]byte{0x81, 0x80, 0, 0, 0, 0}); n != 0 || v != vTooBig {
		t.Fatalf("after failure n=%d v=%v", n, v)
	}
}

func TestObserverSplitHeader(t *testing.T) {
	o := newTestObserver()
	f := frame(0x81, []byte("hello"), true)
	for i := range f {
		if n, v := o.scan(f[i : i+1]); v != nil || n != 1 {
			t.Fatalf("byte %d: n=%d v=%v", i, n, v)
		}
	}
	// A refused header split over two chunks: the second chunk reports 0.
	bad := frameLen(0x81, 5000, nil, true)
	if n, v := o.scan(bad[:2]); v != nil || n != 2 {
		t.Fatalf("n=%d v=%v", n, v)
	}
	if n, v := o.scan(bad[2:]); v != vTooBig || n != 0 {
		t.Fatalf("n=%d v=%v", n, v)
	}
}

func TestObserverControlInsideFragments(t *testing.T) {
	o := newTestObserver()
	var s []byte
	s = append(s, frame(0x01, []byte("a"), true)...)
	s = append(s, frame(0x89, []byte("ping"), true)...)
	s = append(s, frame(0x80, []byte("b"), true)...)
	s = append(s, frame(0x88, []byte{3, 232}, true)...)
	if n, v := o.scan(s); v != nil || n != len(s) || !o.closeSeen {
		t.Fatalf("n=%d v=%v closeSeen=%v", n, v, o.closeSeen)
	}
}

func TestObserverAllocationFree(t *testing.T) {
	s := append(frame(0x01, make([]byte, 300), true), frame(0x80, make([]byte, 300), true)...)
	allocs := testing.AllocsPerRun(100, func() {
		o := newTestObserver()
		_, _ = o.scan(s)
	})
	if allocs != 0 {
		t.Fatalf("%v allocs per scan", allocs)
	}
}

func TestHeadScanner(t *testing.T) {
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
	var s headScanner
	k, done, ok := s.scan([]byte(resp + "\x81\x00"))
	if !ok || !done || k != len(resp) || s.status != 101 {
		t.Fatalf("k=%d done=%v ok=%v status=%d", k, done, ok, s.status)
	}
	var s2 headScanner
	k, done, _ = s2.scan([]byte("HTTP/1.1 403 Forbidden\nA: b\n\nbody"))
	if !done || s2.status != 403 || k != len("HTTP/1.1 403 Forbidden\nA: b\n\n") {
		t.Fatalf("k=%d done=%v status=%d", k, done, s2.status)
	}
	var s3 headScanner
	big := make([]byte, maxResponseHead+1)
	for i := range big {
		big[i] = 'a'
	}
	if _, _, ok := s3.scan(big); ok {
		t.Fatal("oversized head accepted")
	}
}

// A server refuses a ping/pong flood past the burst, and the budget refills
// with time, so a client's occasional pings are never refused.
func TestObserverControlFrameBudget(t *testing.T) {
	o := newTestObserver()
	o.limitControl = true
	var s []byte
	for i := 0; i < controlBurst; i++ {
		s = append(s, frame(0x89, []byte("p"), true)...)
	}
	if n, v := o.scan(s); v != nil || n != len(s) {
		t.Fatalf("burst refused: n=%d v=%v", n, v)
	}
	flood := bytes.Repeat(frame(0x8A, nil, true), 10*controlBurst)
	if _, v := o.scan(flood); v != vControlFlood {
		t.Fatalf("flood not refused: %v", v)
	}

	g := newTestObserver()
	now := int64(1e18)
	for i := 0; i < 10*controlBurst; i++ {
		if !g.allowControl(now) {
			t.Fatalf("frame %d at the sustained rate refused", i)
		}
		now += controlGap
	}
}
