package outbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/conn/transport"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/leak"
)

// batchLog is a Writer with WriteOps: the first write waits for release (so
// that pushes queue up behind it), every call is logged ("w:msg" for one
// message, "b:N" for a batch of N) and the messages in the order written.
type batchLog struct {
	entered chan struct{}
	release chan struct{}
	once    sync.Once
	failAt  int   // WriteOps: fail after this many messages (0: never)
	err     error // what it fails with
	failed  chan error

	mu    sync.Mutex
	calls []string
	msgs  []string
}

func newBatchLog() *batchLog {
	return &batchLog{entered: make(chan struct{}), release: make(chan struct{}), failed: make(chan error, 2)}
}

func (l *batchLog) gate() {
	l.once.Do(func() {
		close(l.entered)
		<-l.release
	})
}

func (l *batchLog) WriteOp(op transport.Opcode, b []byte) error {
	l.gate()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, "w:"+msgName(b))
	l.msgs = append(l.msgs, fmt.Sprintf("%d%s", op, msgName(b)))
	return nil
}

func (l *batchLog) WriteOps(op transport.Opcode, bs [][]byte) (int, error) {
	l.gate()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, fmt.Sprintf("b:%d", len(bs)))
	for i, b := range bs {
		if l.failAt > 0 && len(l.msgs) == l.failAt {
			return i, l.err
		}
		l.msgs = append(l.msgs, fmt.Sprintf("%d%s", op, msgName(b)))
	}
	return len(bs), nil
}

func (l *batchLog) WriteFailed(err error) { l.failed <- err }
func (l *batchLog) TryWrite(transport.Opcode, []byte) (transport.TryResult, error) {
	return transport.TryBlocked, nil
}
func (l *batchLog) FlushTail() error { return nil }

// bounded is a context that ends with the test or after 5 s.
func bounded(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// recv receives from ch, failing the test after 5 s (no test waits unbounded).
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("no %s within 5 s", what)
		var zero T
		return zero
	}
}

// msgName is a message's text, or its size when it is large.
func msgName(b []byte) string {
	if len(b) > 32 {
		return fmt.Sprintf("<%d>", len(b))
	}
	return string(b)
}

func (l *batchLog) log() (calls, msgs string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.calls, ","), strings.Join(l.msgs, ",")
}

// A queue that built up drains in batches of one opcode, at most
// transport.MaxBatch messages and maxBatchBytes each, in order; the last
// message alone is a plain write.
func TestDrainBatches(t *testing.T) {
	leak.Check(t)
	l := newBatchLog()
	q := NewWriter(Options{MaxMessages: 1000, MaxBytes: 4 << 20}, l, false)
	var want []string
	push := func(op transport.Opcode, b []byte) {
		t.Helper()
		if err := q.PushOp(op, b); err != nil {
			t.Fatal(err)
		}
		want = append(want, fmt.Sprintf("%d%s", op, msgName(b)))
	}
	push(transport.Text, []byte("first"))
	recv(t, l.entered, "first write") // the drainer writes "first" and waits: the rest queue behind it
	for i := range 70 {
		push(transport.Text, fmt.Appendf(nil, "t%d", i))
	}
	push(transport.Binary, []byte("bin"))
	for range 5 {
		push(transport.Text, bytes.Repeat([]byte("x"), 100<<10))
	}
	close(l.release)
	if err := q.Wait(bounded(t)); err != nil {
		t.Fatal(err)
	}
	calls, msgs := l.log()
	if wantCalls := "w:first,b:64,b:6,b:1,b:2,b:2,w:<102400>"; calls != wantCalls {
		t.Errorf("calls %s, want %s", calls, wantCalls)
	}
	if msgs != strings.Join(want, ",") {
		t.Errorf("written in this order:\n%s\nwant\n%s", msgs, strings.Join(want, ","))
	}
	if st := q.Stats(); st.Written != uint64(len(want)) {
		t.Errorf("written %d, want %d", st.Written, len(want))
	}
	wantLen(t, q, 0, 0, "after draining")
	q.Close()
}

// A batch that fails part-way stops the queue as a failed write does: what
// went out is counted, the rest dropped, WriteFailed called once.
func TestDrainBatchFailure(t *testing.T) {
	leak.Check(t)
	boom := errors.New("boom")
	l := newBatchLog()
	l.failAt, l.err = 4, boom // "first" and three of the batch
	q := NewWriter(Options{}, l, false)
	for i := range 10 {
		if err := q.Push(fmt.Appendf(nil, "m%d", i)); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			recv(t, l.entered, "first write")
		}
	}
	close(l.release)
	if err := recv(t, l.failed, "WriteFailed"); !errors.Is(err, boom) {
		t.Fatalf("WriteFailed got %v, want boom", err)
	}
	if err := q.Wait(bounded(t)); err != nil {
		t.Fatal(err)
	}
	if st := q.Stats(); st.Written != 4 || st.Dropped != 5 {
		// As for a single failed write: the message that failed (m4) is
		// neither, the five after it are dropped.
		t.Fatalf("stats %+v, want 4 written, 5 dropped", st)
	}
	if err := q.Push([]byte("late")); !errors.Is(err, ErrClosed) {
		t.Fatalf("push after failure: %v", err)
	}
	wantLen(t, q, 0, 0, "after failure")
	select {
	case err := <-l.failed:
		t.Fatalf("WriteFailed called twice (%v)", err)
	default:
	}
}

// Close while a batch is being written: nothing is written after it and
// the queue ends empty.
func TestCloseDuringBatch(t *testing.T) {
	leak.Check(t)
	l := newBatchLog()
	q := NewWriter(Options{}, l, false)
	if err := q.Push([]byte("a")); err != nil {
		t.Fatal(err)
	}
	recv(t, l.entered, "first write")
	for i := range 10 {
		if err := q.Push(fmt.Appendf(nil, "m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	q.Close()
	close(l.release)
	if err := q.Wait(bounded(t)); err != nil {
		t.Fatal(err)
	}
	if calls, _ := l.log(); calls != "w:a" {
		t.Fatalf("calls after Close: %s", calls)
	}
	if st := q.Stats(); st.Dropped != 11 || st.Written != 0 {
		// "a" was being written when Close dropped everything.
		t.Fatalf("stats %+v, want 11 dropped", st)
	}
	wantLen(t, q, 0, 0, "after Close")
}
