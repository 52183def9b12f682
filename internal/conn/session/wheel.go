package session

import (
	"sync"
	"time"
)

// The sessions' timers (keepalive ping, pong deadline, idle timeout, token
// expiry: one due time per session, see Session.tick) run from one hashed
// timer wheel instead of a runtime timer each: a time.Timer and the tick
// callback made for it were ≈ 128 B of every connection's heap (issue 20),
// and a session in the wheel costs one 16-byte slot entry. The wheel turns
// every wheelRes while it holds sessions, and its goroutine exits when it
// holds none. A tick fires up to wheelRes late (nextTick's floor is 10 ms
// anyway), never early, on the monotonic clock as time.AfterFunc does: a
// step of the wall clock does not delay keepalive or idle checks. Like time.AfterFunc, each due tick runs on a
// goroutine of its own: a tick may write a ping or close the connection, and
// one slow socket must not hold up the other sessions' timers.

const (
	wheelRes   = 10 * time.Millisecond
	wheelSlots = 512 // one turn: 5.12 s; later times wait in their slot for their turn
)

// timerWheel holds the sessions by due time, hashed by wheelRes step.
// Session.wslot and Session.widx (guarded by mu) say where a session is.
type timerWheel struct {
	mu      sync.Mutex
	slots   [wheelSlots][]wheelEntry
	count   int
	cursor  int64 // the next step the loop handles (clock / wheelRes)
	running bool  // the loop's goroutine runs
	now     func() time.Time
	epoch   time.Time      // clock's zero: the first now (monotonic, as time.AfterFunc)
	fire    func(*Session) // nil: (*Session).tick; tests record instead
}

type wheelEntry struct {
	s    *Session
	when int64 // clock nanos
}

// timers is the process's wheel: the sessions of every endpoint share it, as
// they shared the runtime's timers.
var timers = &timerWheel{now: time.Now}

// clock is nanoseconds since epoch on the monotonic clock (time.Time.Sub
// uses it), so that a step of the wall clock neither delays nor hurries the
// sessions' timers. mu is held.
func (w *timerWheel) clock() int64 {
	if w.epoch.IsZero() {
		w.epoch = w.now()
	}
	return int64(w.now().Sub(w.epoch))
}

// schedule (re)places s to tick after d.
func (w *timerWheel) schedule(s *Session, d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.removeLocked(s)
	now := w.clock()
	when := now + int64(max(d, 0))
	if !w.running {
		w.running = true
		w.cursor = now / int64(wheelRes)
		go w.loop() // owned by the wheel: it exits when the wheel is empty
	}
	step := (when + int64(wheelRes) - 1) / int64(wheelRes) // rounded up: never early
	// A step the loop has passed already (a time due now or in the past)
	// goes to the next step it handles, not a turn later.
	step = max(step, w.cursor)
	i := int(step % wheelSlots)
	w.slots[i] = append(w.slots[i], wheelEntry{s: s, when: when})
	s.wslot, s.widx = int32(i)+1, int32(len(w.slots[i])-1)
	w.count++
}

// cancel takes s out of the wheel, if it is in.
func (w *timerWheel) cancel(s *Session) {
	w.mu.Lock()
	w.removeLocked(s)
	w.mu.Unlock()
}

func (w *timerWheel) removeLocked(s *Session) {
	if s.wslot == 0 {
		return
	}
	i, j := s.wslot-1, s.widx
	slot := w.slots[i]
	last := int32(len(slot) - 1)
	if j != last {
		slot[j] = slot[last]
		slot[j].s.widx = j
	}
	slot[last] = wheelEntry{}
	w.slots[i] = slot[:last]
	s.wslot, s.widx = 0, 0
	w.count--
}

// loop turns the wheel every wheelRes: each step's due sessions leave the
// wheel and tick (each on a goroutine of its own, like time.AfterFunc).
func (w *timerWheel) loop() {
	t := time.NewTicker(wheelRes)
	defer t.Stop()
	var due []*Session
	for range t.C {
		var more bool
		due, more = w.turn(due[:0])
		for i, s := range due {
			if w.fire != nil {
				go w.fire(s)
			} else {
				go s.tick()
			}
			due[i] = nil
		}
		if !more {
			return
		}
	}
}

// turn collects the sessions due up to now into due; more is false when the
// wheel is empty (the loop ends; the next schedule starts another).
func (w *timerWheel) turn(due []*Session) (_ []*Session, more bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.clock()
	end := now / int64(wheelRes)
	// At most one turn per call: after a whole turn every slot has been
	// looked at once, so whatever is due was found however late the loop ran.
	for k := 0; w.cursor <= end && k < wheelSlots; k++ {
		i := int(w.cursor % wheelSlots)
		for j := 0; j < len(w.slots[i]); {
			if e := w.slots[i][j]; e.when <= now {
				due = append(due, e.s)
				w.removeLocked(e.s) // moves the last entry to j
				continue
			}
			j++
		}
		w.cursor++
	}
	w.cursor = max(w.cursor, end+1)
	if w.count == 0 {
		w.running = false
		return due, false
	}
	return due, true
}
