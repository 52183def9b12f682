package outbox

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/conn/transport"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/leak"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/wait"
)

// Binary and text messages pushed in any mix, inline or queued, are written in
// push order, each with its own opcode.
func TestOpcodeKeptInOrder(t *testing.T) {
	leak.Check(t)
	type rec struct {
		op transport.Opcode
		b  string
	}
	var mu sync.Mutex
	var got []rec
	release := make(chan struct{})
	first := true
	q := NewOp(Options{}, func(op transport.Opcode, b []byte) error {
		mu.Lock()
		wait := first
		first = false
		got = append(got, rec{op, string(b)})
		mu.Unlock()
		if wait {
			<-release // hold the first write so the others queue behind it
		}
		return nil
	}, nil)
	done := make(chan error, 1)
	go func() { done <- q.PushOrWriteOp(transport.Binary, []byte("0")) }()
	wait.For(t, "the first write to start", 10*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 1 })
	var want []rec
	want = append(want, rec{transport.Binary, "0"})
	for i := 1; i < 20; i++ {
		op := transport.Text
		if i%3 == 0 {
			op = transport.Binary
		}
		want = append(want, rec{op, fmt.Sprint(i)})
		var err error
		if i%2 == 0 {
			err = q.PushOp(op, []byte(fmt.Sprint(i)))
		} else {
			err = q.PushOrWriteOp(op, []byte(fmt.Sprint(i)))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	close(release)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for the inline write to return")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := q.Wait(ctx); err != nil {
		t.Fatalf("waiting for the queue to drain: %v", err)
	}
	mu.Lock()
	written := fmt.Sprint(got)
	mu.Unlock()
	if written != fmt.Sprint(want) {
		t.Fatalf("written %v, want %v", written, want)
	}
}
