// Package offer is the hand-off the observers (alert webhooks, the audit log
// and its checkpoint shipper) use between a caller that must never wait (a
// connection's goroutine raising an alert or logging an event) and the one
// goroutine that delivers: a value that does not fit in the bounded queue, or
// comes after the queue closed, is dropped and counted, never waited for.
package offer

import "sync/atomic"

// Send queues v on ch if ch has room and closed is false; otherwise it adds
// one to dropped. It reports whether v was queued. A caller whose close
// closes ch holds a lock that keeps closed true from then on (Send never sends
// on a closed channel when closed says so).
func Send[T any](ch chan<- T, v T, closed bool, dropped *atomic.Uint64) bool {
	if !closed {
		select {
		case ch <- v:
			return true
		default:
		}
	}
	dropped.Add(1)
	return false
}
