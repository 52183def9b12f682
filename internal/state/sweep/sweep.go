package sweep

import (
	"sync"
	"time"
)

// Sweeper is a running sweep loop. The zero value and nil are stopped sweepers.
type Sweeper struct {
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// Start calls f every interval on a new goroutine until Stop. A non-positive
// interval starts nothing and returns nil, whose Stop does nothing, so callers need
// no separate "disabled" branch. f runs on one goroutine only, never concurrently
// with itself.
func Start(every time.Duration, f func()) *Sweeper {
	if every <= 0 || f == nil {
		return nil
	}
	s := &Sweeper{stop: make(chan struct{}), done: make(chan struct{})}
	go s.loop(every, f)
	return s
}

func (s *Sweeper) loop(every time.Duration, f func()) {
	defer close(s.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			f()
		}
	}
}

// Stop ends the loop and waits for it to return, including a sweep in progress.
// It is idempotent and safe to call concurrently and on nil.
func (s *Sweeper) Stop() {
	if s == nil || s.stop == nil {
		return
	}
	s.once.Do(func() { close(s.stop) })
	<-s.done
}
