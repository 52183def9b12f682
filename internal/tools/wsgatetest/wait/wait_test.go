package wait

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestForReturnsOnceTrue(t *testing.T) {
	var n atomic.Int32
	go func() {
		for range 3 {
			n.Add(1)
			time.Sleep(time.Millisecond)
		}
	}()
	For(t, "three increments", 10*time.Second, func() bool { return n.Load() == 3 })
}
