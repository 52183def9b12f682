package session

import (
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/wsgate/wsgate/internal/tools/wsgatetest/leak"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/wait"
)

// Every scheduled session fires once, never before its time; a cancelled
// or rescheduled one does not fire at its old time; the wheel's goroutine
// ends when the wheel is empty.
func TestTimerWheelFiresOnceNeverEarly(t *testing.T) {
	leak.Check(t)
	var mu sync.Mutex
	fired := map[*Session][]time.Time{}
	w := &timerWheel{now: time.Now, fire: func(s *Session) {
		mu.Lock()
		fired[s] = append(fired[s], time.Now())
		mu.Unlock()
	}}
	start := time.Now()
	const n = 300
	sessions := make([]*Session, n)
	when := make([]time.Time, n)
	for i := range sessions {
		sessions[i] = &Session{}
		when[i] = start.Add(time.Duration(i%30) * 7 * time.Millisecond)
		w.schedule(sessions[i], time.Until(when[i]))
	}
	cancelled := sessions[0]
	w.cancel(cancelled)
	moved := sessions[1]
	when[1] = start.Add(300 * time.Millisecond)
	w.schedule(moved, time.Until(when[1]))

	wait.For(t, "every scheduled session fired", 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(fired) == n-1
	})
	mu.Lock()
	defer mu.Unlock()
	if _, ok := fired[cancelled]; ok {
		t.Fatal("a cancelled session fired")
	}
	for i, s := range sessions[1:] {
		times := fired[s]
		if len(times) != 1 {
			t.Fatalf("session %d fired %d times", i+1, len(times))
		}
		if times[0].Before(when[i+1]) {
			t.Fatalf("session %d fired %v early", i+1, when[i+1].Sub(times[0]))
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.count != 0 {
		t.Fatalf("%d entries left", w.count)
	}
}

// A loop that runs late (more than a whole turn) finds everything due in one
// turn, and nothing that is not due yet.
func TestTimerWheelCatchesUp(t *testing.T) {
	now := time.Unix(1000, 0)
	w := &timerWheel{now: func() time.Time { return now }, epoch: now, running: true} // no loop: turn is called here
	var due, later []*Session
	for i := range 2000 {
		s := &Session{}
		at := now.Add(time.Duration(i) * 5 * time.Millisecond) // up to 10 s: two turns
		if i > 1600 {
			at = at.Add(time.Second) // none due in the first second after the late turn
		}
		w.schedule(s, at.Sub(now))
		if !at.After(now.Add(8 * time.Second)) {
			due = append(due, s)
		} else {
			later = append(later, s)
		}
	}
	now = now.Add(8 * time.Second) // the loop slept through more than one turn
	got, more := w.turn(nil)
	if !more {
		t.Fatal("wheel reported empty")
	}
	if len(got) != len(due) {
		t.Fatalf("%d due after a late turn, want %d", len(got), len(due))
	}
	seen := map[*Session]bool{}
	for _, s := range got {
		seen[s] = true
	}
	for _, s := range due {
		if !seen[s] {
			t.Fatal("a due session was not collected")
		}
	}
	if w.count != len(later) {
		t.Fatalf("%d left, want %d", w.count, len(later))
	}
	// A time in the past goes to the next step handled, not a turn later.
	past := &Session{}
	w.schedule(past, -time.Second)
	now = now.Add(wheelRes)
	if got, _ := w.turn(nil); len(got) != 1 || got[0] != past {
		t.Fatalf("a past time did not fire at the next step: %v", got)
	}
}

// Every connection holds a Session: a field that pushes it past its
// 448-byte size class costs 64 B per connection (it happened once, with a
// flag for the timer, in the 640-byte class it had then). Pack small fields
// with the others at its end; what few sessions need goes in sessionRare.
func TestSessionSizeClass(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("64-bit layout")
	}
	if n := unsafe.Sizeof(Session{}); n > 448 {
		t.Fatalf("Session is %d bytes, over its 448-byte size class", n)
	}
}

// Schedules, reschedules and cancels from many goroutines while the wheel
// fires keep its slots consistent: every entry's index is its place, and
// once everything is cancelled or fired nothing is left.
func TestTimerWheelConcurrent(t *testing.T) {
	leak.Check(t)
	w := &timerWheel{now: time.Now, fire: func(*Session) {}}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ss := make([]*Session, 50)
			for i := range ss {
				ss[i] = &Session{}
			}
			for round := range 200 {
				s := ss[(round*7+g)%len(ss)]
				switch round % 3 {
				case 0, 1:
					w.schedule(s, time.Duration(round%40)*time.Millisecond)
				default:
					w.cancel(s)
				}
			}
			for _, s := range ss {
				w.cancel(s)
			}
		}()
	}
	wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.count != 0 {
		t.Fatalf("%d entries left after every session was cancelled", w.count)
	}
	for i, slot := range w.slots {
		if len(slot) != 0 {
			t.Fatalf("slot %d holds %d entries", i, len(slot))
		}
	}
}
