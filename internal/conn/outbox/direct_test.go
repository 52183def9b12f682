package outbox

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/conn/transport"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/leak"
)

// directLog is a fake connection: Try answers from script, every write and
// flush is logged in order.
type directLog struct {
	mu     sync.Mutex
	log    []string
	script []transport.TryResult
	err    error
}

func (d *directLog) add(s string) {
	d.mu.Lock()
	d.log = append(d.log, s)
	d.mu.Unlock()
}

func (d *directLog) lines() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return strings.Join(d.log, ",")
}

func (d *directLog) queue() *Queue {
	q := NewOp(Options{}, func(_ transport.Opcode, b []byte) error { d.add("w:" + string(b)); return nil }, nil)
	q.SetDirect(Direct{
		Try: func(_ transport.Opcode, b []byte) (transport.TryResult, error) {
			d.mu.Lock()
			defer d.mu.Unlock()
			if d.err != nil {
				return transport.TryBlocked, d.err
			}
			res := transport.TryWritten
			if len(d.script) > 0 {
				res, d.script = d.script[0], d.script[1:]
			}
			switch res {
			case transport.TryWritten:
				d.log = append(d.log, "d:"+string(b))
			case transport.TryPartial:
				d.log = append(d.log, "p:"+string(b))
			}
			return res, nil
		},
		Flush: func() error { d.add("flush"); return nil },
	})
	return q
}

func waitIdle(t *testing.T, q *Queue) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := q.Wait(ctx); err != nil {
		t.Fatal(err)
	}
}

// An idle queue's push is written by the pusher; a blocked one is queued and
// written by a drainer; a partial one is flushed before anything after it.
func TestPushDirect(t *testing.T) {
	leak.Check(t)
	d := &directLog{script: []transport.TryResult{transport.TryWritten, transport.TryBlocked, transport.TryPartial}}
	q := d.queue()
	for _, m := range []string{"a", "b"} {
		if err := q.Push([]byte(m)); err != nil {
			t.Fatal(err)
		}
		waitIdle(t, q)
	}
	if err := q.Push([]byte("c")); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, q)
	if got, want := d.lines(), "d:a,w:b,p:c,flush"; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	if st := q.Stats(); st.Written != 3 {
		t.Fatalf("written %d, want 3", st.Written)
	}
	q.Close()
}

// While a drainer holds the role, pushes queue behind it (no direct write
// overtakes queued messages).
func TestPushDirectKeepsOrderBehindQueue(t *testing.T) {
	leak.Check(t)
	d := &directLog{script: []transport.TryResult{transport.TryBlocked}}
	q := d.queue()
	for _, m := range []string{"1", "2", "3"} {
		if err := q.Push([]byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	waitIdle(t, q)
	// Every message once, in order (2 and 3 are direct only if the drainer
	// was already done).
	got := strings.NewReplacer("w:", "", "d:", "").Replace(d.lines())
	if got != "1,2,3" {
		t.Fatalf("order: %s", d.lines())
	}
	q.Close()
}

// A failed direct write stops the queue and reports through onFail.
func TestPushDirectError(t *testing.T) {
	leak.Check(t)
	boom := errors.New("boom")
	var failed error
	q := NewOp(Options{}, func(transport.Opcode, []byte) error { return nil }, func(err error) { failed = err })
	q.SetDirect(Direct{
		Try:   func(transport.Opcode, []byte) (transport.TryResult, error) { return transport.TryBlocked, boom },
		Flush: func() error { return nil },
	})
	if err := q.Push([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(failed, boom) || !q.Closed() {
		t.Fatalf("onFail %v, closed %v", failed, q.Closed())
	}
	if err := q.Push([]byte("y")); !errors.Is(err, ErrClosed) {
		t.Fatalf("push after failure: %v", err)
	}
}

// PushOrWriteReuse frees the buffer when it wrote it inline, not when it had
// to queue it behind a writer.
func TestPushOrWriteReuse(t *testing.T) {
	leak.Check(t)
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	q := New(Options{}, func(b []byte) error {
		if string(b) == "slow" {
			started <- struct{}{}
			<-release
		}
		return nil
	}, nil)
	if ok, err := q.PushOrWriteReuse([]byte("a")); !ok || err != nil {
		t.Fatalf("idle queue: reusable %v, %v", ok, err)
	}
	if err := q.Push([]byte("slow")); err != nil {
		t.Fatal(err)
	}
	<-started
	if ok, err := q.PushOrWriteReuse([]byte("b")); ok || err != nil {
		t.Fatalf("busy queue: reusable %v, %v", ok, err)
	}
	close(release)
	waitIdle(t, q)
	q.Close()
}

// A push queued while a direct write holds the role is written when that
// write completes, by a drainer, before anything pushed later: it neither
// waits for the next push nor is overtaken by an inline reply.
func TestPushDirectHandsQueuedToDrainer(t *testing.T) {
	leak.Check(t)
	var mu sync.Mutex
	var log []string
	add := func(s string) { mu.Lock(); log = append(log, s); mu.Unlock() }
	inTry := make(chan struct{})
	release := make(chan struct{})
	q := NewOp(Options{}, func(_ transport.Opcode, b []byte) error { add("w:" + string(b)); return nil }, nil)
	q.SetDirect(Direct{
		Try: func(_ transport.Opcode, b []byte) (transport.TryResult, error) {
			close(inTry)
			<-release
			add("d:" + string(b))
			return transport.TryWritten, nil
		},
		Flush: func() error { return nil },
	})
	done := make(chan error, 1)
	go func() { done <- q.Push([]byte("broadcast")) }()
	<-inTry
	// The reader's reply finds the role taken: queued behind the direct write.
	if ok, err := q.PushOrWriteReuse([]byte("reply1")); ok || err != nil {
		t.Fatalf("reply during a direct write: reusable %v, %v", ok, err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitIdle(t, q)
	// Nothing else was pushed: reply1 must be out already.
	mu.Lock()
	got := strings.Join(log, ",")
	mu.Unlock()
	if got != "d:broadcast,w:reply1" {
		t.Fatalf("after the direct write: %s, want d:broadcast,w:reply1", got)
	}
	if _, err := q.PushOrWriteReuse([]byte("reply2")); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, q)
	mu.Lock()
	got = strings.Join(log, ",")
	mu.Unlock()
	if got != "d:broadcast,w:reply1,w:reply2" {
		t.Fatalf("order %s", got)
	}
	if n, _ := q.Len(); n != 0 {
		t.Fatalf("len %d after all written", n)
	}
	q.Close()
}
