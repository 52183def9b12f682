// Package logbuf is the tests' buffer for what another goroutine writes (a
// server's log, an audit log's output): every Write and read takes a lock, so
// a test can read while the writer runs, under -race. It imports nothing of
// wsgate, so any package's internal tests can use it.
package logbuf

import (
	"strings"
	"sync"
	"time"
)

// Buffer collects what was written, for assertions. The zero value is ready.
type Buffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns what was written so far.
func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Contains polls until what was written contains s or the deadline passes.
func (l *Buffer) Contains(s string, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for {
		if strings.Contains(l.String(), s) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}
