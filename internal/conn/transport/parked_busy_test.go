package transport

import (
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"testing"
	"time"
)

// blockingHandler echoes every message but "block", which holds the
// goroutine that reads its connection until release is closed: a handler
// waiting on a slow hook, Redis or an upstream.
type blockingHandler struct {
	release <-chan struct{}
	blocked *sync.WaitGroup
}

func (h blockingHandler) OnMessage(c *Conn, op Opcode, data []byte) {
	if string(data) == "block" {
		h.blocked.Done()
		<-h.release
		return
	}
	_ = c.WriteMessage(op, data)
}
func (blockingHandler) OnPing(*Conn, []byte) {}
func (blockingHandler) OnPong(*Conn, []byte) {}
func (blockingHandler) OnClose(*Conn, error) {}

// With every parked-reader worker held by a slow handler, a message on
// another connection is still read and answered: the poller does not wait
// for a worker (it would stall every connection it watches behind the slow
// ones); the connection gets a goroutine of its own for that read, as with
// the event reader.
func TestParkedBusyWorkersDoNotStallOthers(t *testing.T) {
	if !parkingSupported {
		t.Skip("parking needs epoll")
	}
	if testReader != "" {
		t.Skip("chooses its reader")
	}
	n := max(256, 128*runtime.GOMAXPROCS(0)) + 4 // every worker, and then some
	if n > 1100 {
		t.Skipf("a pool of %d workers is too many connections for this test", n-4)
	}
	up, err := NewUpgrader(&Options{Reader: ReaderParked})
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	var blocked sync.WaitGroup
	h := blockingHandler{release: release, blocked: &blocked}
	ts := &testServer{Server: httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, err := up.Upgrade(w, r, "", h); err == nil {
			c.ServeDetached(func() {})
		}
	}))}
	released := false
	defer func() {
		if !released {
			close(release)
		}
		ts.Server.CloseClientConnections()
		ts.Server.Close()
	}()

	clients := make([]*rawClient, n)
	for i := range clients {
		clients[i] = dialRaw(t, ts)
	}
	blocked.Add(n)
	for _, rc := range clients {
		rc.write(frame(0x81, []byte("block"), true))
	}
	done := make(chan struct{})
	go func() { blocked.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("not every blocking message reached its handler: connections waited for a busy worker")
	}
	// Every worker (and more) is now held. A message on a fresh connection
	// is answered anyway.
	rc := dialRaw(t, ts)
	rc.write(frame(0x81, []byte("still served"), true))
	_, p, err := rc.readFrame()
	if err != nil || string(p) != "still served" {
		t.Fatalf("echo while every worker is busy: %q %v", p, err)
	}
	close(release)
	released = true
}
