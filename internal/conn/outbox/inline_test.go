package outbox

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/wsgate/wsgate/internal/tools/wsgatetest/leak"
)

// On an idle queue the reply is written before PushOrWrite returns, by the
// caller (the write sees the caller's marker set), and no goroutine is started.
func TestPushOrWriteWritesInlineWhenIdle(t *testing.T) {
	leak.Check(t)
	var inCaller atomic.Bool
	var inline, written atomic.Int64
	q := New(Options{}, func(b []byte) error {
		if inCaller.Load() {
			inline.Add(1)
		}
		written.Add(1)
		return nil
	}, nil)
	// Not a leak check (leak.Check above is): the count must not grow even
	// for a moment, since an idle PushOrWrite writes on the caller's goroutine
	// and starts no drainer at all.
	before := runtime.NumGoroutine()
	for i := range 100 {
		inCaller.Store(true)
		if err := q.PushOrWrite([]byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
		inCaller.Store(false)
		// Written before PushOrWrite returned, and no drainer was started.
		if written.Load() != int64(i+1) {
			t.Fatalf("message %d not written when PushOrWrite returned", i)
		}
	}
	if inline.Load() != 100 {
		t.Fatalf("%d of 100 writes ran inline", inline.Load())
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("goroutines grew from %d to %d", before, n)
	}
	if s := q.Stats(); s.Written != 100 {
		t.Fatalf("stats %+v", s)
	}
	wantLen(t, q, 0, 0, "")
}

// While a drainer writes, a reply queues behind what is there and is never
// written out of order or on the caller's goroutine.
func TestPushOrWriteQueuesBehindDrainer(t *testing.T) {
	leak.Check(t)
	g := newGate()
	var r recorder
	q := New(Options{}, r.gatedOn(g, "first"), nil)
	if err := q.Push([]byte("first")); err != nil {
		t.Fatal(err)
	}
	<-g.entered // the drainer is blocked in the first write
	if err := q.Push([]byte("second")); err != nil {
		t.Fatal(err)
	}
	if err := q.PushOrWrite([]byte("reply")); err != nil { // must not block
		t.Fatal(err)
	}
	if m, _ := q.Len(); m != 3 {
		t.Fatalf("Len = %d, want 3 (reply queued)", m)
	}
	close(g.release)
	if err := q.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := r.order(); got != "[first second reply]" {
		t.Fatalf("order %v", got)
	}
}

// A broadcast pushed while an inline reply is being written waits for it, and
// is then written by a drainer (the reader is not kept writing); Wait covers
// the inline write.
func TestPushDuringInlineWrite(t *testing.T) {
	leak.Check(t)
	g := newGate()
	var r recorder
	q := New(Options{}, r.gatedOn(g, "reply"), nil)
	done := make(chan error, 1)
	go func() { done <- q.PushOrWrite([]byte("reply")) }()
	<-g.entered
	if m, _ := q.Len(); m != 1 {
		t.Fatalf("Len during inline write = %d, want 1", m)
	}
	waited := make(chan error, 1)
	go func() { waited <- q.Wait(context.Background()) }()
	for i := range 3 {
		if err := q.Push(fmt.Appendf(nil, "b%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.PushOrWrite([]byte("reply2")); err != nil { // queued, not inline
		t.Fatal(err)
	}
	select {
	case <-waited:
		t.Fatal("Wait returned during the inline write")
	default:
	}
	close(g.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	if err := q.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := r.order(); got != "[reply b0 b1 b2 reply2]" {
		t.Fatalf("order %v", got)
	}
	if s := q.Stats(); s.Written != 5 {
		t.Fatalf("stats %+v", s)
	}
}

func TestPushOrWriteBoundsAndErrors(t *testing.T) {
	leak.Check(t)
	g := newGate()
	q := New(Options{MaxMessages: 2, MaxBytes: 10}, g.write, nil)
	if err := q.PushOrWrite(make([]byte, 11)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("too large: %v", err)
	}
	if err := q.Push([]byte("a")); err != nil {
		t.Fatal(err)
	}
	<-g.entered
	if err := q.PushOrWrite([]byte("b")); err != nil {
		t.Fatal(err)
	}
	if err := q.PushOrWrite([]byte("c")); !errors.Is(err, ErrFull) {
		t.Fatalf("full: %v", err)
	}
	close(g.release)
	if err := q.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	q.Close()
	if err := q.PushOrWrite([]byte("d")); !errors.Is(err, ErrClosed) {
		t.Fatalf("closed: %v", err)
	}
	if s := q.Stats(); s.Rejected != 2 || s.Written != 2 {
		t.Fatalf("stats %+v", s)
	}
}

func TestPushOrWriteErrorStopsQueue(t *testing.T) {
	leak.Check(t)
	boom := errors.New("boom")
	var fails atomic.Int64
	q := New(Options{}, func([]byte) error { return boom }, func(err error) {
		if !errors.Is(err, boom) {
			t.Errorf("onFail got %v", err)
		}
		fails.Add(1)
	})
	if err := q.PushOrWrite([]byte("x")); !errors.Is(err, boom) {
		t.Fatalf("got %v, want wrapped boom", err)
	}
	if fails.Load() != 1 {
		t.Fatalf("onFail called %d times", fails.Load())
	}
	if !q.Closed() {
		t.Fatal("queue not stopped")
	}
	if err := q.PushOrWrite([]byte("y")); !errors.Is(err, ErrClosed) {
		t.Fatalf("after failure: %v", err)
	}
}

// Close during an inline write returns at once; the writer gives the role up
// when its write returns, and later calls fail with ErrClosed.
func TestCloseDuringInlineWrite(t *testing.T) {
	leak.Check(t)
	g := newGate()
	q := New(Options{}, g.write, func(error) { t.Error("onFail called by Close") })
	done := make(chan error, 1)
	go func() { done <- q.PushOrWrite([]byte("reply")) }()
	<-g.entered
	_ = q.Push([]byte("queued"))
	q.Close()
	if m, _ := q.Len(); m != 0 {
		t.Fatalf("Len after Close = %d", m)
	}
	close(g.release)
	if err := <-done; err != nil {
		t.Fatalf("inline write whose bytes went out: %v", err)
	}
	if err := q.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if g.writes.Load() != 1 {
		t.Fatalf("writes %d, want 1 (nothing written after Close)", g.writes.Load())
	}
	if err := q.PushOrWrite([]byte("late")); !errors.Is(err, ErrClosed) {
		t.Fatalf("late: %v", err)
	}
}

// Many goroutines mixing Push and PushOrWrite: every message is written exactly
// once, each caller's messages in its own order, and only one write at a time.
func TestMixedPushAndPushOrWrite(t *testing.T) {
	leak.Check(t)
	var busy atomic.Int32
	var mu sync.Mutex
	var got [][]byte
	q := New(Options{MaxMessages: 1 << 20, MaxBytes: 1 << 30}, func(b []byte) error {
		if busy.Add(1) != 1 {
			t.Error("two writes at once")
		}
		mu.Lock()
		got = append(got, b)
		mu.Unlock()
		runtime.Gosched()
		busy.Add(-1)
		return nil
	}, nil)
	const callers, per = 6, 500
	var wg sync.WaitGroup
	for c := range callers {
		wg.Go(func() {
			for i := range per {
				b := []byte{byte(c), byte(i >> 8), byte(i)}
				var err error
				if c%2 == 0 {
					err = q.PushOrWrite(b)
				} else {
					err = q.Push(b)
				}
				if err != nil {
					t.Errorf("caller %d: %v", c, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := q.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(got) != callers*per {
		t.Fatalf("written %d, want %d", len(got), callers*per)
	}
	next := make([]int, callers)
	for _, m := range got {
		c, i := int(m[0]), int(m[1])<<8|int(m[2])
		if i != next[c] {
			t.Fatalf("caller %d: got %d, want %d", c, i, next[c])
		}
		next[c]++
	}
}

func BenchmarkPushOrWriteIdle(b *testing.B) {
	q := New(Options{}, func([]byte) error { return nil }, nil)
	msg := []byte(`{"type":"pong"}`)
	b.ReportAllocs()
	for b.Loop() {
		_ = q.PushOrWrite(msg)
	}
}
