package offer

import (
	"sync/atomic"
	"testing"
)

func TestSend(t *testing.T) {
	ch := make(chan int, 1)
	var dropped atomic.Uint64
	if !Send(ch, 1, false, &dropped) {
		t.Fatal("a value with room was not queued")
	}
	if Send(ch, 2, false, &dropped) || dropped.Load() != 1 {
		t.Fatalf("a full queue took a value (dropped %d)", dropped.Load())
	}
	<-ch
	if Send(ch, 3, true, &dropped) || dropped.Load() != 2 || len(ch) != 0 {
		t.Fatalf("a closed queue took a value (dropped %d)", dropped.Load())
	}
}
