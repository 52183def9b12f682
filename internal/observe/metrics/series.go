package metrics

import (
	"sync"
	"time"

	"github.com/wsgate/wsgate/internal/defaults"
)

// SeriesWindow is how far back Series remembers, at one point per second.
const SeriesWindow = 15 * time.Minute

const (
	seriesSlots = int(SeriesWindow / time.Second)
	// maxSlotReasons bounds distinct rejection reasons per second; the rest
	// are counted as "other".
	maxSlotReasons = 16
)

// Series is a bounded per-second history of connections and handshakes for
// the dashboard: a ring of 900 one-second slots, so memory is fixed however
// busy the server is. Safe for concurrent use; a nil *Series ignores calls.
type Series struct {
	mu    sync.Mutex
	now   func() time.Time
	slots [seriesSlots]slot
	conns int64
}

type slot struct {
	sec                uint64 // unix second this slot holds; 0 = never used
	opened, closed     uint32
	accepted, rejected uint32
	reasons            map[string]uint32
}

// NewSeries returns an empty series reading time from now (nil = time.Now).
func NewSeries(now func() time.Time) *Series {
	defaults.Now(&now)
	return &Series{now: now}
}

// slotLocked returns the slot for the current second, recycling it if it
// last held an older second.
func (s *Series) slotLocked() *slot {
	sec := uint64(s.now().Unix())
	sl := &s.slots[sec%uint64(seriesSlots)]
	if sl.sec != sec {
		reasons := sl.reasons
		clear(reasons)
		*sl = slot{sec: sec, reasons: reasons}
	}
	return sl
}

// ConnOpened records a new connection.
func (s *Series) ConnOpened() {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.conns++
	s.slotLocked().opened++
	s.mu.Unlock()
}

// ConnClosed records the end of a connection.
func (s *Series) ConnClosed() {
	if s == nil {
		return
	}
	s.mu.Lock()
	if s.conns > 0 {
		s.conns--
	}
	s.slotLocked().closed++
	s.mu.Unlock()
}

// Handshake records an upgrade request and, if rejected, its reason.
func (s *Series) Handshake(accepted bool, reason string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sl := s.slotLocked()
	if accepted {
		sl.accepted++
		return
	}
	sl.rejected++
	if reason == "" || !wellFormed(reason) {
		reason = Other
	}
	if sl.reasons == nil {
		sl.reasons = make(map[string]uint32)
	}
	if _, ok := sl.reasons[reason]; !ok && len(sl.reasons) >= maxSlotReasons {
		reason = Other
	}
	sl.reasons[reason]++
}

// Point is one second of history.
type Point struct {
	T           int64             `json:"t"` // unix seconds
	Connections int64             `json:"connections"`
	Opened      uint32            `json:"opened"`
	Closed      uint32            `json:"closed"`
	Accepted    uint32            `json:"accepted"`
	Rejected    uint32            `json:"rejected"`
	Reasons     map[string]uint32 `json:"reasons,omitempty"`
}

// Snapshot is the JSON view of the series.
type Snapshot struct {
	Now         int64             `json:"now"` // unix seconds of the last point
	Connections int64             `json:"connections"`
	Points      []Point           `json:"points"`  // oldest first, one per second
	Reasons     map[string]uint64 `json:"reasons"` // rejection reasons summed over Points
}

// Snapshot returns the full 15-minute history.
func (s *Series) Snapshot() Snapshot { return s.Last(SeriesWindow) }

// Last returns the history of the last d (at most 15 minutes), one point
// per second including seconds with no events.
func (s *Series) Last(d time.Duration) Snapshot {
	if s == nil {
		return Snapshot{Reasons: map[string]uint64{}}
	}
	n := int(d / time.Second)
	if n < 1 {
		n = 1
	}
	if n > seriesSlots {
		n = seriesSlots
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := uint64(s.now().Unix())
	snap := Snapshot{Now: int64(now), Connections: s.conns, Points: make([]Point, n), Reasons: map[string]uint64{}}
	// Walk back from now: connections at the end of second t-1 are those at
	// the end of t minus what t opened plus what it closed.
	conns := s.conns
	for i := n - 1; i >= 0; i-- {
		sec := now - uint64(n-1-i)
		p := Point{T: int64(sec), Connections: conns}
		if sl := &s.slots[sec%uint64(seriesSlots)]; sl.sec == sec {
			p.Opened, p.Closed, p.Accepted, p.Rejected = sl.opened, sl.closed, sl.accepted, sl.rejected
			if len(sl.reasons) > 0 {
				p.Reasons = make(map[string]uint32, len(sl.reasons))
				for k, v := range sl.reasons {
					p.Reasons[k] = v
					snap.Reasons[k] += uint64(v)
				}
			}
			conns -= int64(sl.opened) - int64(sl.closed)
			if conns < 0 {
				conns = 0
			}
		}
		snap.Points[i] = p
	}
	return snap
}
