package session

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/conn/outbox"
	"github.com/wsgate/wsgate/internal/conn/pipeline"
	"github.com/wsgate/wsgate/internal/conn/protocol"
	"github.com/wsgate/wsgate/internal/conn/transport"
	"github.com/wsgate/wsgate/internal/edge/auth"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/leak"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/wait"
	"go.uber.org/goleak"
)

// client collects what a test client receives.
type client struct {
	mu     sync.Mutex
	msgs   []string
	closed chan struct{}
	once   sync.Once
}

func newClient() *client { return &client{closed: make(chan struct{})} }

func (c *client) OnMessage(_ *transport.Conn, _ transport.Opcode, data []byte) {
	c.mu.Lock()
	c.msgs = append(c.msgs, string(data))
	c.mu.Unlock()
}
func (c *client) OnPing(*transport.Conn, []byte) {}
func (c *client) OnPong(*transport.Conn, []byte) {}
func (c *client) OnClose(*transport.Conn, error) { c.once.Do(func() { close(c.closed) }) }

func (c *client) received() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.msgs...)
}

// serve starts an httptest server whose handler upgrades into a session served
// on a goroutine of the test (as wsgate's Server does) and returns at once.
func serve(t *testing.T, deps Deps) (url string, sessions chan *Session) {
	t.Helper()
	// WSGATETEST_READER=event (or parked) runs the sessions on that reader.
	return serveOn(t, deps, os.Getenv("WSGATETEST_READER"))
}

// serveOn is serve with the transport reader chosen.
func serveOn(t *testing.T, deps Deps, reader string) (url string, sessions chan *Session) {
	t.Helper()
	up, err := transport.NewUpgrader(&transport.Options{Reader: reader})
	if err != nil {
		t.Fatal(err)
	}
	sessions = make(chan *Session, 4)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var all []*Session
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := New(Params{ID: NewID(), IP: netip.MustParseAddr("192.0.2.1"),
			Identity: auth.Identity{Subject: "alice"}}, &Options{Outbox: outbox.Options{MaxMessages: 4096, MaxBytes: 4 << 20}}, &deps)
		c, err := up.Upgrade(w, r, "", s)
		if err != nil {
			t.Errorf("upgrade: %v", err)
			return
		}
		s.Attach(c)
		mu.Lock()
		all = append(all, s)
		mu.Unlock()
		// ServeDetached as the endpoint does: with WSGATETEST_READER=parked
		// an idle session holds no goroutine.
		wg.Add(1)
		go s.ServeDetached(wg.Done)
		sessions <- s
	}))
	t.Cleanup(func() {
		srv.Close()
		// srv.Close does not close hijacked connections: close the sessions, so a
		// test that failed half-way (its client still open) cannot hang here.
		mu.Lock()
		open := append([]*Session(nil), all...)
		mu.Unlock()
		for _, s := range open {
			s.CloseWith(1001, "test over")
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("sessions still serving 10 s after they were closed")
		}
	})
	return "ws" + strings.TrimPrefix(srv.URL, "http"), sessions
}

// dialSession serves sessions on the default pipeline and dials one with a
// new client. Running the client's read loop (or not) is the caller's part.
func dialSession(t *testing.T) (*transport.Conn, *client, chan *Session) {
	t.Helper()
	p, err := pipeline.New(pipeline.Options{})
	if err != nil {
		t.Fatal(err)
	}
	url, sessions := serve(t, Deps{Pipeline: p})
	cl := newClient()
	conn, _, err := transport.Dial(context.Background(), url, nil, cl)
	if err != nil {
		t.Fatal(err)
	}
	return conn, cl, sessions
}

// TestRepliesAndBroadcastsKeepOrder: the session's own replies (welcome, pongs,
// error replies; written inline when nothing is queued) and broadcasts pushed
// from another goroutine at the same time each arrive complete and in order,
// the welcome first.
func TestRepliesAndBroadcastsKeepOrder(t *testing.T) {
	leak.Check(t)
	conn, cl, sessions := dialSession(t)
	go conn.Serve()
	s := <-sessions
	// Broadcasts only ever reach a session that asked for them after its welcome
	// (subscribe), so the test starts them once the welcome has arrived.
	wait.For(t, "the welcome", 30*time.Second, func() bool { return len(cl.received()) >= 1 })

	const n = 300
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range n {
			if err := s.Send(fmt.Appendf(nil, `{"type":"data","seq":%d}`, i)); err != nil {
				t.Errorf("broadcast %d: %v", i, err)
				return
			}
			if i%16 == 0 {
				runtime.Gosched()
			}
		}
	})
	for i := range n {
		msg := fmt.Sprintf(`{"type":"ping","id":%d}`, i)
		if i%10 == 9 {
			msg = fmt.Sprintf(`{"type":"ping","id":%d,"x":}`, i) // invalid JSON: an error reply
		}
		if err := conn.WriteMessage(transport.Text, []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	wait.For(t, fmt.Sprintf("all %d messages", 1+2*n), 30*time.Second, func() bool { return len(cl.received()) >= 1+2*n })

	got := cl.received()
	if !strings.Contains(got[0], `"welcome"`) {
		t.Fatalf("first message %s, want the welcome", got[0])
	}
	nextRef, nextSeq := 0, 0
	for mi, m := range got[1:] {
		var v struct {
			Type string `json:"type"`
			Ref  *int   `json:"ref"`
			Seq  *int   `json:"seq"`
		}
		if err := json.Unmarshal([]byte(m), &v); err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		switch {
		case v.Type == "data" && v.Seq != nil:
			if *v.Seq != nextSeq {
				t.Fatalf("broadcast %d arrived when %d was due", *v.Seq, nextSeq)
			}
			nextSeq++
		case v.Type == "pong" || v.Type == "error":
			if v.Ref == nil || *v.Ref != nextRef {
				// The neighbourhood shows which hand-over let it through.
				lo := max(mi-15, 0)
				hi := min(mi+15, len(got)-1)
				t.Fatalf("reply %s arrived when ref %d was due\n%s", m, nextRef, strings.Join(got[1+lo:1+hi], "\n"))
			}
			if (nextRef%10 == 9) != (v.Type == "error") {
				t.Fatalf("reply %s to message %d", m, nextRef)
			}
			nextRef++
		default:
			t.Fatalf("unexpected %s", m)
		}
	}
	if nextRef != n || nextSeq != n {
		t.Fatalf("replies %d, broadcasts %d; want %d each", nextRef, nextSeq, n)
	}
	st := s.Stats()
	if st.MessagesIn != n || st.MessagesOut != 1+2*n {
		t.Fatalf("stats %+v", st)
	}

	s.Close(protocol.ReasonShutdown)
	<-s.Done()
	<-cl.closed
}

// TestReplyToSlowClientNeverBlocksBroadcaster: while a reply is being written
// inline to a client that does not read (the writer stuck on a full socket),
// Send from another goroutine still returns at once: it queues, and a full
// queue closes the session as a slow consumer.
func TestReplyToSlowClientNeverBlocksBroadcaster(t *testing.T) {
	conn, _, sessions := dialSession(t)
	defer conn.Close()
	// The client never runs its read loop, so the server's writes fill the
	// socket buffers and then block.
	s := <-sessions
	big := []byte(`{"type":"data","pad":"` + strings.Repeat("x", 60<<10) + `"}`)
	// The welcome is written first (by the goroutine serving the session,
	// possibly after the test got it): a reply made before it went out
	// would find it queued or being written, queue behind it and never be
	// the one inline write this test is about.
	wait.For(t, "the welcome to be written", 10*time.Second, func() bool {
		m, _ := s.Pending()
		return s.Stats().MessagesOut >= 1 && m == 0
	})
	// Stand-in for the reader answering its client: replies are written inline
	// until one blocks.
	replies := make(chan struct{})
	var replyErr error
	go func() {
		defer close(replies)
		for range 2000 {
			if replyErr = s.Reply(big); replyErr != nil {
				return
			}
		}
	}()
	wait.For(t, "an inline reply to block", 30*time.Second, func() bool {
		m, _ := s.Pending()
		select {
		case <-replies:
			if replyErr != nil {
				t.Fatalf("a reply failed before one blocked: %v", replyErr)
			}
			t.Fatal("2000 replies of 60 KiB written to a client that does not read")
		default:
		}
		if m != 1 {
			return false
		}
		time.Sleep(50 * time.Millisecond) // still the same write?
		m2, _ := s.Pending()
		return m2 == 1
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 200 {
			_ = s.Send(big) // queued behind the blocked reply, then refused
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Send blocked behind an inline reply to a client that does not read")
	}
	select {
	case <-s.Done():
	case <-time.After(15 * time.Second):
		t.Fatal("slow consumer not closed")
	}
	<-replies
}

// TestQueuedBroadcastsDrainInOrder: broadcasts that queue up behind a client
// that does not read (its socket full) drain, in batches, complete and in
// order once it reads, and are counted.
func TestQueuedBroadcastsDrainInOrder(t *testing.T) {
	// With the parked reader the transport's pool may keep an idle worker
	// for up to two seconds after the end (its own tests check they exit).
	leak.Check(t, goleak.IgnoreTopFunction("github.com/wsgate/wsgate/internal/conn/transport.(*workerPool).work"))
	p, err := pipeline.New(pipeline.Options{})
	if err != nil {
		t.Fatal(err)
	}
	url, sessions := serve(t, Deps{Pipeline: p})
	cl := newClient()
	// A small receive buffer: the server's socket fills after a few
	// messages and the rest queue.
	conn, _, err := transport.Dial(context.Background(), url, &transport.DialOptions{
		NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
				return rc.Control(func(fd uintptr) {
					_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
				})
			}}
			return d.DialContext(ctx, network, addr)
		},
	}, cl)
	if err != nil {
		t.Fatal(err)
	}
	s := <-sessions
	wait.For(t, "the welcome to be written", 10*time.Second, func() bool {
		m, _ := s.Pending()
		return s.Stats().MessagesOut >= 1 && m == 0
	})
	const n = 1000
	pad := strings.Repeat("x", 3000)
	for i := range n {
		if err := s.Send(fmt.Appendf(nil, `{"type":"data","seq":%d,"pad":%q}`, i, pad)); err != nil {
			t.Fatalf("broadcast %d: %v", i, err)
		}
	}
	if m, _ := s.Pending(); m < 2 {
		t.Fatalf("%d queued: the socket took 3 MB without a reader", m)
	}
	go conn.Serve()
	wait.For(t, fmt.Sprintf("all %d messages", 1+n), 30*time.Second, func() bool { return len(cl.received()) >= 1+n })
	for i, m := range cl.received()[1:] {
		var v struct {
			Seq int    `json:"seq"`
			Pad string `json:"pad"`
		}
		if err := json.Unmarshal([]byte(m), &v); err != nil || v.Seq != i || v.Pad != pad {
			t.Fatalf("message %d: seq %d, %d bytes of pad, %v", i, v.Seq, len(v.Pad), err)
		}
	}
	if st := s.Stats(); st.MessagesOut != 1+n {
		t.Fatalf("%d messages counted out, want %d", st.MessagesOut, 1+n)
	}
	s.Close(protocol.ReasonShutdown)
	for _, ch := range []<-chan struct{}{s.Done(), cl.closed} {
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatal("the session did not end within 10 s of Close")
		}
	}
}
