package session

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/conn/pipeline"
	"github.com/wsgate/wsgate/internal/conn/protocol"
	"github.com/wsgate/wsgate/internal/conn/transport"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/wait"
)

// TestParkedSessions: on the parked reader, idle sessions hold no goroutine
// of their own (ServeDetached returned), answer their clients from the
// transport's workers, and still end completely when closed: each is
// removed from the registry and Done is closed.
func TestParkedSessions(t *testing.T) {
	p, err := pipeline.New(pipeline.Options{})
	if err != nil {
		t.Fatal(err)
	}
	reg := NewRegistry()
	url, sessions := serveOn(t, Deps{Pipeline: p, Registry: reg}, transport.ReaderParked)
	const n = 20
	base := runtime.NumGoroutine()
	var clients []*client
	var all []*Session
	for i := range n {
		cl := newClient()
		conn, _, err := transport.Dial(context.Background(), url, nil, cl)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		go conn.Serve() // the client side keeps a goroutine (gws reads clients)
		all = append(all, <-sessions)
		clients = append(clients, cl)
		if err := conn.WriteMessage(transport.Text, fmt.Appendf(nil, `{"type":"ping","id":%d}`, i)); err != nil {
			t.Fatal(err)
		}
	}
	for i, cl := range clients {
		wait.For(t, fmt.Sprintf("welcome and pong %d", i), 30*time.Second, func() bool { return len(cl.received()) >= 2 })
	}
	// Each client has its reading goroutine; the sessions add none beyond the
	// pollers and a few idle workers.
	wait.For(t, "the sessions to park", 30*time.Second, func() bool { return runtime.NumGoroutine()-base < n+n/2 })

	for _, s := range all {
		s.Close(protocol.ReasonShutdown)
	}
	for _, s := range all {
		wait.For(t, "the session's end", 30*time.Second, func() bool {
			select {
			case <-s.Done():
				return true
			default:
				return false
			}
		})
	}
	for _, cl := range clients {
		wait.For(t, "the client's close", 30*time.Second, func() bool {
			select {
			case <-cl.closed:
				return true
			default:
				return false
			}
		})
	}
	if reg.Len() != 0 {
		t.Fatalf("%d sessions still registered", reg.Len())
	}
}
