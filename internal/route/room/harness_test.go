package room_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wsgate/wsgate/internal/conn/protocol"
	"github.com/wsgate/wsgate/internal/route/room"
	"github.com/wsgate/wsgate/internal/state/broker"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/bgrun"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeClient records what the room sends it.
type fakeClient struct {
	id, user string
	claims   map[string]any
	fail     bool // Send always fails, like a slow consumer

	mu     sync.Mutex
	msgs   [][]byte
	read   int
	notify chan struct{}
}

func newClient(id, user string, sub, pub []string) *fakeClient {
	toAny := func(ss []string) []any {
		out := make([]any, len(ss))
		for i, s := range ss {
			out[i] = s
		}
		return out
	}
	return &fakeClient{id: id, user: user, notify: make(chan struct{}, 1),
		claims: map[string]any{"sub": user, "channels": map[string]any{"sub": toAny(sub), "pub": toAny(pub)}}}
}

func (c *fakeClient) ConnID() string         { return c.id }
func (c *fakeClient) User() string           { return c.user }
func (c *fakeClient) Claims() map[string]any { return c.claims }
func (c *fakeClient) Send(b []byte) error {
	if c.fail {
		return errors.New("slow consumer")
	}
	if !json.Valid(b) {
		panic("room sent invalid JSON: " + string(b))
	}
	c.mu.Lock()
	c.msgs = append(c.msgs, b)
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
	return nil
}

type msg map[string]any

func (m msg) str(k string) string { s, _ := m[k].(string); return s }
func (m msg) num(k string) uint64 { f, _ := m[k].(float64); return uint64(f) }

// next returns the next unread message, failing the test after 5 s.
func (c *fakeClient) next(t testing.TB) msg {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		c.mu.Lock()
		if c.read < len(c.msgs) {
			b := c.msgs[c.read]
			c.read++
			c.mu.Unlock()
			var m msg
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatalf("%s: bad JSON %s: %v", c.id, b, err)
			}
			return m
		}
		c.mu.Unlock()
		select {
		case <-c.notify:
		case <-deadline:
			t.Fatalf("%s: no message within 5s", c.id)
		}
	}
}

func (c *fakeClient) expect(t testing.TB, typ string) msg {
	t.Helper()
	m := c.next(t)
	if m.str("type") != typ {
		t.Fatalf("%s: got %v, want type %q", c.id, m, typ)
	}
	return m
}

// quiet asserts nothing more arrived (after letting in-flight deliveries land).
func (c *fakeClient) quiet(t testing.TB) {
	t.Helper()
	time.Sleep(20 * time.Millisecond)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.read < len(c.msgs) {
		t.Fatalf("%s: unexpected message %s", c.id, c.msgs[c.read])
	}
}

type env struct {
	t  testing.TB
	s  *room.Service
	br *broker.Memory
}

// start builds a Service over a real broker.NewMemory and runs it until the test ends.
func start(t testing.TB, opts room.Options) *env {
	t.Helper()
	br := broker.NewMemory(broker.MemoryOptions{MaxHistorySize: 10000})
	s, err := room.New(opts, br)
	if err != nil {
		t.Fatal(err)
	}
	bgrun.Start(t, s.Run)
	e := &env{t: t, s: s, br: br}
	e.waitRunning(opts.DefaultChannel)
	return e
}

// waitRunning returns once the broker delivers events (Run registers its handler
// asynchronously), probing a channel beside the default one.
func (e *env) waitRunning(defaultChannel string) {
	e.t.Helper()
	if defaultChannel == "" {
		defaultChannel = room.DefaultChannel
	}
	ch := "probe-channel"
	if i := strings.IndexByte(defaultChannel, ':'); i >= 0 {
		ch = defaultChannel[:i+1] + ch
	}
	probe := newClient("probe", "probe", []string{ch}, nil)
	e.subscribe(probe, ch)
	for i := 0; ; i++ {
		if _, err := e.s.Publish(context.Background(), ch, json.RawMessage(`0`), ""); err != nil {
			e.t.Fatal(err)
		}
		probe.mu.Lock()
		n := len(probe.msgs) - probe.read
		probe.mu.Unlock()
		if n > 0 {
			break
		}
		if i > 500 {
			e.t.Fatal("broker never started delivering")
		}
		time.Sleep(2 * time.Millisecond)
	}
	e.s.Leave(context.Background(), probe)
}

func (e *env) handle(c *fakeClient, typ string, id int, body string) *protocol.Error {
	e.t.Helper()
	raw := `{"type":"` + typ + `","id":` + fmt.Sprint(id)
	if body != "" {
		raw += "," + strings.TrimPrefix(strings.TrimSuffix(body, "}"), "{")
	}
	raw += "}"
	return e.s.Handle(context.Background(), c, typ, []byte(fmt.Sprint(id)), []byte(raw))
}

// mustHandle runs a request that must succeed and returns its reply.
func (e *env) mustHandle(c *fakeClient, typ string, id int, body string) msg {
	e.t.Helper()
	if err := e.handle(c, typ, id, body); err != nil {
		e.t.Fatalf("%s %s: %v", c.id, typ, err)
	}
	m := c.next(e.t)
	if m.num("ref") != uint64(id) {
		e.t.Fatalf("%s %s: reply %v lacks ref %d", c.id, typ, m, id)
	}
	return m
}

func (e *env) subscribe(c *fakeClient, ch string) msg {
	e.t.Helper()
	m := e.mustHandle(c, "subscribe", 1, `{"channel":"`+ch+`"}`)
	if m.str("type") != "ack" {
		e.t.Fatalf("subscribe %s: %v", ch, m)
	}
	return m
}
