package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/wsgate/wsgate/internal/observe/alert"
)

// streamPoints is how many recent seconds each stats event carries; the client
// merges them by timestamp, so a late or missed tick heals itself.
const streamPoints = 5

// connEvent is one connection opening or closing, as the stream reports it.
type connEvent struct {
	Op   string `json:"op"` // "open" or "close"
	Conn Conn   `json:"conn"`
}

// events is the live stream (text/event-stream): "stats" every StreamInterval,
// "alert" as alerts fire, "conn" as connections open and close (found by
// comparing the live set between ticks while it is at most MaxTracked), and
// "hello" first with the full stats window. It ends when the client goes or
// Options.Done closes.
func (h *Handler) events(w http.ResponseWriter, r *http.Request) {
	select {
	case h.streams <- struct{}{}:
		defer func() { <-h.streams }()
	default:
		writeError(w, http.StatusServiceUnavailable, "too many live streams")
		return
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	var alerts <-chan alert.Alert
	if h.o.Alerts != nil {
		ch, cancel := h.o.Alerts.Subscribe(64)
		defer cancel()
		alerts = ch
	}
	send := func(event string, v any) bool {
		b, err := json.Marshal(v)
		if err != nil {
			h.o.Log.Warn("admin stream: encode", "event", event, "err", err)
			return true
		}
		// JSON has no raw newlines, so one data line per event is enough.
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}

	known, tracking := h.liveSet()
	if !send("hello", map[string]any{"stats": h.snapshot(h.o.StatsWindow, 0), "tracking": tracking,
		"interval_ms": h.o.StreamInterval.Milliseconds()}) {
		return
	}
	tick := time.NewTicker(h.o.StreamInterval)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-h.o.Done:
			return
		case a, ok := <-alerts:
			if !ok {
				alerts = nil
				continue
			}
			if !send("alert", a) {
				return
			}
		case <-tick.C:
			now, track := h.liveSet()
			if track && tracking {
				for _, ev := range diffConns(known, now) {
					if !send("conn", ev) {
						return
					}
				}
			}
			known, tracking = now, track
			if !send("stats", h.snapshot(h.o.StatsWindow, streamPoints)) {
				return
			}
		}
	}
}

// liveSet returns the live connections by id, or nil and false when there are
// more than MaxTracked (the stream then reports counts only).
func (h *Handler) liveSet() (map[string]Conn, bool) {
	m := make(map[string]Conn)
	over := false
	h.o.Conns.RangeConns(func(c Conn) bool {
		if len(m) >= h.o.MaxTracked {
			over = true
			return false
		}
		if c.Channels == nil {
			c.Channels = []string{}
		}
		m[c.ID] = c
		return true
	})
	if over {
		return nil, false
	}
	return m, true
}

func diffConns(before, after map[string]Conn) []connEvent {
	var out []connEvent
	for id, c := range before {
		if _, ok := after[id]; !ok {
			out = append(out, connEvent{Op: "close", Conn: c})
		}
	}
	for id, c := range after {
		if _, ok := before[id]; !ok {
			out = append(out, connEvent{Op: "open", Conn: c})
		}
	}
	return out
}
