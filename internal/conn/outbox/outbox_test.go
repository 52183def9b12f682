package outbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/wsgate/wsgate/internal/tools/wsgatetest/leak"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/wait"
)

// recorder is a write func that records what it was given.
type recorder struct {
	mu   sync.Mutex
	msgs [][]byte
}

func (r *recorder) write(b []byte) error {
	r.mu.Lock()
	r.msgs = append(r.msgs, b)
	r.mu.Unlock()
	return nil
}

// gatedOn records every write, blocking the one of msg on g first.
func (r *recorder) gatedOn(g *gate, msg string) func([]byte) error {
	return func(b []byte) error {
		if string(b) == msg {
			_ = g.write(b)
		}
		return r.write(b)
	}
}

// order is what was written, as text.
func (r *recorder) order() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.msgs))
	for i, m := range r.msgs {
		out[i] = string(m)
	}
	return fmt.Sprint(out)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

// gate is a write func that blocks until released, like a client that stopped reading.
type gate struct {
	entered chan struct{}
	release chan struct{}
	writes  atomic.Int64
}

func newGate() *gate {
	return &gate{entered: make(chan struct{}, 1), release: make(chan struct{})}
}

func (g *gate) write([]byte) error {
	g.writes.Add(1)
	select {
	case g.entered <- struct{}{}:
	default:
	}
	<-g.release
	return nil
}

// newGated returns a queue with options o writing through a new gate, both
// released when the test ends (the queue closed first, then the gate opened).
func newGated(t *testing.T, o Options) (*Queue, *gate) {
	g := newGate()
	q := New(o, g.write, nil)
	t.Cleanup(func() { close(g.release) })
	t.Cleanup(q.Close)
	return q, g
}

// wantLen fails the test unless q holds msgs messages of size bytes in all;
// when says at what point of the test (may be empty).
func wantLen(t *testing.T, q *Queue, msgs, size int, when string) {
	t.Helper()
	if m, b := q.Len(); m != msgs || b != size {
		if when != "" {
			when = " " + when
		}
		t.Fatalf("Len%s = %d, %d; want %d, %d", when, m, b, msgs, size)
	}
}

func TestOrdering(t *testing.T) {
	leak.Check(t)
	var r recorder
	q := New(Options{MaxMessages: 10000}, r.write, nil)
	const n = 5000
	for i := range n {
		if err := q.Push([]byte(fmt.Sprint(i))); err != nil {
			t.Fatalf("push %d: %v", i, err)
		}
	}
	if err := q.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r.count() != n {
		t.Fatalf("written %d, want %d", r.count(), n)
	}
	for i, m := range r.msgs {
		if string(m) != fmt.Sprint(i) {
			t.Fatalf("message %d is %q", i, m)
		}
	}
	if s := q.Stats(); s.Written != n || s.Rejected != 0 || s.Dropped != 0 {
		t.Fatalf("stats %+v", s)
	}
	wantLen(t, q, 0, 0, "after drain")
}

func TestConcurrentPushersKeepPerPusherOrder(t *testing.T) {
	leak.Check(t)
	var r recorder
	q := New(Options{MaxMessages: 100000, MaxBytes: 1 << 30}, r.write, nil)
	const pushers, per = 8, 1000
	var wg sync.WaitGroup
	for p := range pushers {
		wg.Go(func() {
			for i := range per {
				if err := q.Push([]byte{byte(p), byte(i >> 8), byte(i)}); err != nil {
					t.Errorf("push: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	wait.For(t, "all written", 10*time.Second, func() bool { return r.count() == pushers*per })
	next := make([]int, pushers)
	for _, m := range r.msgs {
		p, i := int(m[0]), int(m[1])<<8|int(m[2])
		if i != next[p] {
			t.Fatalf("pusher %d: got %d, want %d", p, i, next[p])
		}
		next[p]++
	}
}

func TestMessageBound(t *testing.T) {
	leak.Check(t)
	q, g := newGated(t, Options{MaxMessages: 3})
	for i := range 3 {
		if err := q.Push([]byte("x")); err != nil {
			t.Fatalf("push %d: %v", i, err)
		}
	}
	if err := q.Push([]byte("x")); !errors.Is(err, ErrFull) {
		t.Fatalf("push over bound: %v, want ErrFull", err)
	}
	<-g.entered // the in-flight message still counts
	if err := q.Push([]byte("x")); !errors.Is(err, ErrFull) {
		t.Fatalf("push while writing: %v, want ErrFull", err)
	}
	wantLen(t, q, 3, 3, "")
	if s := q.Stats(); s.Rejected != 2 {
		t.Fatalf("rejected %d, want 2", s.Rejected)
	}
}

func TestByteBound(t *testing.T) {
	leak.Check(t)
	q, _ := newGated(t, Options{MaxBytes: 10})
	if err := q.Push(make([]byte, 6)); err != nil {
		t.Fatal(err)
	}
	if err := q.Push(make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
	if err := q.Push(make([]byte, 1)); !errors.Is(err, ErrFull) {
		t.Fatalf("push over byte bound: %v, want ErrFull", err)
	}
	if err := q.Push(nil); err != nil { // an empty message still fits
		t.Fatalf("empty push: %v", err)
	}
	if err := q.Push(make([]byte, 11)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized push: %v, want ErrTooLarge", err)
	}
	wantLen(t, q, 3, 10, "")
}

func TestBoundFreesAsWritten(t *testing.T) {
	leak.Check(t)
	var r recorder
	q := New(Options{MaxMessages: 2}, r.write, nil)
	for i := range 100 {
		// Wait between pushes so the bound never trips: space is reclaimed as written.
		if err := q.Push([]byte{byte(i)}); err != nil {
			t.Fatalf("push %d: %v", i, err)
		}
		if err := q.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if r.count() != 100 {
		t.Fatalf("written %d", r.count())
	}
}

func TestBlockedWriterNeverBlocksPush(t *testing.T) {
	leak.Check(t)
	g := newGate()
	q := New(Options{MaxMessages: 8}, g.write, nil)
	done := make(chan int)
	go func() {
		full := 0
		for range 100000 {
			if errors.Is(q.Push([]byte("payload")), ErrFull) {
				full++
			}
		}
		done <- full
	}()
	select {
	case full := <-done:
		if full != 100000-8 {
			t.Fatalf("ErrFull %d times, want %d", full, 100000-8)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Push blocked behind a stuck writer")
	}
	<-g.entered
	q.Close()
	wantLen(t, q, 0, 0, "after Close")
	// The drainer is still inside write; Wait honours its context.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := q.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait with canceled ctx: %v", err)
	}
	close(g.release)
	if err := q.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if w := g.writes.Load(); w != 1 {
		t.Fatalf("write called %d times; Close must stop further writes", w)
	}
	if s := q.Stats(); s.Dropped != 8 || s.Written != 0 {
		t.Fatalf("stats %+v; want 8 dropped, 0 written", s)
	}
}

func TestCloseReleasesAndIsIdempotent(t *testing.T) {
	leak.Check(t)
	g := newGate()
	q := New(Options{}, g.write, func(error) { t.Error("onFail called by Close") })
	for range 10 {
		if err := q.Push(bytes.Repeat([]byte("a"), 100)); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(q.Close)
		wg.Go(func() {
			for range 100 {
				if err := q.Push([]byte("b")); err != nil && !errors.Is(err, ErrClosed) {
					t.Errorf("push during close: %v", err)
				}
			}
		})
	}
	wg.Wait()
	q.Close()
	if !q.Closed() {
		t.Fatal("not closed")
	}
	if err := q.Push([]byte("c")); !errors.Is(err, ErrClosed) {
		t.Fatalf("push after close: %v", err)
	}
	wantLen(t, q, 0, 0, "after Close")
	q.mu.Lock()
	ring := q.ring
	q.mu.Unlock()
	if ring != nil {
		t.Fatal("ring still referenced after Close")
	}
	close(g.release)
	if err := q.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestWriteErrorStopsQueue(t *testing.T) {
	leak.Check(t)
	boom := errors.New("boom")
	g := newGate()
	var calls atomic.Int64
	failed := make(chan error, 2)
	q := New(Options{}, func(b []byte) error {
		if err := g.write(b); err != nil {
			return err
		}
		return boom
	}, func(err error) {
		calls.Add(1)
		failed <- err
	})
	for range 5 {
		if err := q.Push([]byte("m")); err != nil {
			t.Fatal(err)
		}
	}
	<-g.entered
	close(g.release)
	err := <-failed
	if !errors.Is(err, boom) {
		t.Fatalf("onFail got %v, want wrapped boom", err)
	}
	if err := q.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 1 || g.writes.Load() != 1 {
		t.Fatalf("onFail calls %d, writes %d; want 1, 1", calls.Load(), g.writes.Load())
	}
	if err := q.Push([]byte("m")); !errors.Is(err, ErrClosed) {
		t.Fatalf("push after failure: %v", err)
	}
	if s := q.Stats(); s.Dropped != 4 {
		t.Fatalf("dropped %d, want 4", s.Dropped)
	}
	wantLen(t, q, 0, 0, "after failure")
}

func TestIdleQueueHoldsNoGoroutineOrBigRing(t *testing.T) {
	leak.Check(t)
	var r recorder
	q := New(Options{}, r.write, nil)
	for range 200 {
		if err := q.Push([]byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	q.mu.Lock()
	running, slots := q.running, len(q.ring)
	q.mu.Unlock()
	if running || slots > keepSlots {
		t.Fatalf("idle queue: running=%v ring=%d slots", running, slots)
	}
}

func TestNilWriteFailsInsteadOfPanicking(t *testing.T) {
	leak.Check(t)
	failed := make(chan error, 1)
	q := New(Options{}, nil, func(err error) { failed <- err })
	if err := q.Push([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := <-failed; !errors.Is(err, errNilWrite) {
		t.Fatalf("onFail: %v", err)
	}
	if err := q.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestOptionsValidate(t *testing.T) {
	if err := (Options{}).Validate(); err != nil {
		t.Fatal(err)
	}
	if err := (Options{MaxMessages: -1}).Validate(); err == nil {
		t.Fatal("negative MaxMessages accepted")
	}
	if err := (Options{MaxBytes: -1}).Validate(); err == nil {
		t.Fatal("negative MaxBytes accepted")
	}
	o := Options{MaxMessages: -5}.withDefaults()
	if o.MaxMessages != DefaultMaxMessages || o.MaxBytes != DefaultMaxBytes {
		t.Fatalf("defaults %+v", o)
	}
}

func BenchmarkPushDrain(b *testing.B) {
	q := New(Options{MaxMessages: 1 << 20, MaxBytes: 1 << 30}, func([]byte) error { return nil }, nil)
	msg := make([]byte, 128)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if err := q.Push(msg); err != nil {
			b.Fatal(err)
		}
	}
	if err := q.Wait(context.Background()); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkBroadcast pushes one shared message into many queues, as a room fan-out does.
func BenchmarkBroadcast(b *testing.B) {
	const conns = 1000
	qs := make([]*Queue, conns)
	for i := range qs {
		qs[i] = New(Options{MaxMessages: 1 << 20, MaxBytes: 1 << 30}, func([]byte) error { return nil }, nil)
	}
	msg := make([]byte, 128)
	b.ReportAllocs()
	for b.Loop() {
		for _, q := range qs {
			if err := q.Push(msg); err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, q := range qs {
		if err := q.Wait(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*conns), "ns/push")
}

// Every connection holds a Queue: keep it in the 144-byte size class.
func TestQueueSizeClass(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("64-bit layout")
	}
	if n := unsafe.Sizeof(Queue{}); n > 144 {
		t.Fatalf("Queue is %d bytes, over its 144-byte size class", n)
	}
}
