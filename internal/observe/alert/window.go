package alert

import "time"

// buckets is the resolution of a sliding window: the window is cut into this
// many sub-intervals. Counts cover the current partial bucket and the 11
// before it, so an event older than the window is never counted, and one
// up to window/12 younger may already have dropped out.
const buckets = 12

// window counts events in a sliding window of buckets sub-intervals. Not
// safe for concurrent use; the owner locks.
type window struct {
	ids    [buckets]int64 // which sub-interval each slot currently holds
	counts [buckets]uint32
}

func (w *window) add(id int64) {
	i := id % buckets
	if w.ids[i] != id {
		w.ids[i], w.counts[i] = id, 0
	}
	if w.counts[i] < ^uint32(0) {
		w.counts[i]++
	}
}

func (w *window) sum(id int64) int {
	n := 0
	for i := range buckets {
		if d := id - w.ids[i]; d >= 0 && d < buckets {
			n += int(w.counts[i])
		}
	}
	return n
}

// bucketID maps a time to its sub-interval of a window of length win.
func bucketID(t time.Time, win time.Duration) int64 {
	id := t.UnixNano() / int64(win/buckets)
	if id < 0 { // a clock before 1970 must not index the ring negatively
		return 0
	}
	return id
}
