package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/conn/transport"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest"
)

// faultRoundsEnv repeats the fault rounds (scripts/redis-faults.sh sets it);
// the default run does each fault once.
const faultRoundsEnv = "WSGATETEST_FAULT_ROUNDS"

// pos is a stream position as the protocol carries it.
type pos struct {
	Epoch  string
	Offset uint64
}

// faultEvent is one thing a subscriber received that matters for delivery.
type faultEvent struct {
	kind      string // "message", "recovery_failed", "ack"
	pos       pos
	id        string // payload id of a message
	recovered bool   // ack of a subscribe with since, recovered
}

// faultSub is one subscriber; its reader goroutine (owned by the test, ended
// by stop) records events so the 4096-message client queue never overflows.
type faultSub struct {
	name string
	mu   sync.Mutex
	evs  []faultEvent
	conn *wsgatetest.Client
}

func (s *faultSub) events() []faultEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]faultEvent(nil), s.evs...)
}

// read records events from c until c closes or stop is closed.
func (s *faultSub) read(c *wsgatetest.Client, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-c.Closed():
			// Drain what arrived before the close.
			for {
				select {
				case b := <-c.Msgs:
					s.record(b)
				default:
					return
				}
			}
		case b := <-c.Msgs:
			s.record(b)
		}
	}
}

func (s *faultSub) record(b []byte) {
	var m struct {
		Type      string          `json:"type"`
		Ref       string          `json:"ref"`
		Offset    uint64          `json:"offset"`
		Epoch     string          `json:"epoch"`
		Recovered bool            `json:"recovered"`
		Payload   json.RawMessage `json:"payload"`
	}
	if json.Unmarshal(b, &m) != nil {
		return
	}
	ev := faultEvent{kind: m.Type, pos: pos{m.Epoch, m.Offset}, recovered: m.Recovered}
	switch m.Type {
	case "message":
		var p struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(m.Payload, &p)
		ev.id = p.ID
	case "recovery_failed":
	case "ack":
		if m.Ref != "sub" {
			return
		}
	default:
		return
	}
	s.mu.Lock()
	s.evs = append(s.evs, ev)
	s.mu.Unlock()
}

// last is the position the subscriber has everything up to, as a client
// computes it for `since`.
func (s *faultSub) last() pos {
	var cur pos
	for _, ev := range s.events() {
		if ev.kind == "ack" && ev.recovered {
			continue
		}
		cur = ev.pos
	}
	return cur
}

// faultPublisher publishes synchronously (one in flight) and records acks.
type faultPublisher struct {
	name  string
	c     *wsgatetest.Client
	mu    sync.Mutex
	acked map[string]pos
	order []string // acked ids in ack order
	errs  int
	fatal string // why the loop stopped early, if it did
}

func (p *faultPublisher) ackCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.order)
}

// run publishes until stop; each publication waits for its ack or error (10 s).
func (p *faultPublisher) run(stop <-chan struct{}) {
	for n := 0; ; n++ {
		select {
		case <-stop:
			return
		default:
		}
		id := fmt.Sprintf("%s-%d", p.name, n)
		msg, _ := json.Marshal(map[string]any{"type": "publish", "id": id, "channel": "chat:faults", "payload": map[string]any{"id": id}})
		if err := p.c.Conn.WriteMessage(transport.Text, msg); err != nil {
			p.stopWith("write: " + err.Error())
			return
		}
		if !p.await(id) {
			return
		}
	}
}

func (p *faultPublisher) await(id string) bool {
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case b := <-p.c.Msgs:
			var m struct {
				Type   string `json:"type"`
				Ref    string `json:"ref"`
				Offset uint64 `json:"offset"`
				Epoch  string `json:"epoch"`
			}
			if json.Unmarshal(b, &m) != nil || m.Ref != id {
				continue
			}
			p.mu.Lock()
			switch m.Type {
			case "ack":
				p.acked[id] = pos{m.Epoch, m.Offset}
				p.order = append(p.order, id)
			default:
				p.errs++
			}
			p.mu.Unlock()
			return true
		case <-p.c.Closed():
			p.stopWith("connection closed")
			return false
		case <-timeout.C:
			p.stopWith("no ack or error for " + id + " within 10s")
			return false
		}
	}
}

func (p *faultPublisher) stopWith(why string) {
	p.mu.Lock()
	p.fatal = why
	p.mu.Unlock()
}

// Three nodes on one real redis-server, two publishers, two subscribers per node,
// while Redis restarts empty, from an older snapshot and from its AOF, pub/sub
// is cut, Redis stalls (DEBUG SLEEP, CLIENT PAUSE) and a node stops (its
// subscribers reconnect elsewhere with since). For every acked
// publication, every subscriber received it exactly once at its acked position
// in order, or received recovery_failed (or a new epoch, which the server
// announces with recovery_failed) covering it; every message continues the
// subscriber's stream or follows a recovery_failed (issue 16).
func TestClusterFaultsAckedMeansDeliveredOrReported(t *testing.T) {
	rounds := 1
	if v, err := strconv.Atoi(os.Getenv(faultRoundsEnv)); err == nil && v > 0 {
		rounds = v
	}
	rs, nodes := cluster(t, 3, func(c *config.Config) {
		lots := config.RateLimit{Rate: 1_000_000, Burst: 1_000_000}
		c.Rate.Tiers["default"] = config.Tier{Messages: lots, Bytes: lots, UserMessages: lots, UserBytes: lots, IPMessages: lots, IPBytes: lots}
		c.Log.Level = "warn"
	})
	f := newFaultTrial(t)
	readers := map[*faultSub]<-chan struct{}{}
	subscribeFault := func(s *faultSub, n *wsgatetest.Server, since *pos) {
		t.Helper()
		readers[s] = f.subscribe(s, connectRetrying(t, n, s.name), since)
	}
	for i, n := range nodes {
		for j := range 2 {
			subscribeFault(&faultSub{name: fmt.Sprintf("sub-%d-%d", i, j)}, n, nil)
		}
	}
	f.subscribed()
	var pubs []*faultPublisher
	for i := range 2 {
		p := &faultPublisher{name: fmt.Sprintf("pub%d", i), c: nodes[i].Connect(t, fmt.Sprintf("pub%d", i), chatPerms), acked: map[string]pos{}}
		pubs = append(pubs, p)
		f.publish(p)
	}
	progress := f.progress
	progress("steady", 50)
	// Each round: Redis restarted empty; restarted from an older snapshot;
	// restarted from its AOF (nothing acked lost, but a new process); pub/sub
	// cut (nodes resubscribe late); stalled twice. After each fault every
	// publisher gets n more acks.
	type fault struct {
		after string
		n     int
		do    func()
	}
	faults := []fault{
		{"after an empty restart", 100, func() { rs.Stop(); rs.Restart() }},
		{"after the snapshot", 50, rs.Save},
		{"after a restart from the snapshot", 100, func() { rs.Stop(); rs.RestartFromSnapshot() }},
		{"with AOF", 30, rs.UseAOF},
		{"after a restart from the AOF", 100, func() { rs.Stop(); rs.RestartFromAOF() }},
	}
	for _, cmd := range []string{"CLIENT KILL TYPE pubsub", "DEBUG SLEEP 1.5", "CLIENT PAUSE 1500 ALL"} {
		faults = append(faults, fault{"after " + cmd, 50, func() { rs.Command(cmd) }})
	}
	for r := range rounds {
		for _, step := range faults {
			step.do()
			progress(fmt.Sprintf("round %d: %s", r, step.after), step.n)
		}
	}
	// A node stops; its subscribers reconnect to node 0 with since.
	victim := nodes[2]
	_ = victim.Stop(t)
	for _, s := range f.subs {
		if s.name[4] != '2' {
			continue
		}
		// The reader returns once the connection closed and what it had
		// received is recorded: only then is last() the client's position.
		select {
		case <-readers[s]:
		case <-time.After(15 * time.Second):
			t.Fatalf("%s: connection not closed within 15s of its node stopping", s.name)
		}
		progress("while "+s.name+" is away", 20)
		since := s.last()
		subscribeFault(s, nodes[0], &since)
	}
	progress("after the node loss", 50)
	acked, total := f.finish(nodes[0], pubs)
	errs := 0
	for _, p := range pubs {
		errs += p.errs
	}
	for _, s := range f.subs {
		checkFaultSubscriber(t, s, acked)
	}
	t.Logf("%d publications acked, %d refused while Redis was away, %d subscribers checked, %d rounds", total, errs, len(f.subs), rounds)
}

// connectRetrying connects like a client that honours 503 + Retry-After: after
// Redis lost its data, handshakes are refused until the quota counts are
// rebuilt (at most half the lease TTL).
func connectRetrying(t *testing.T, n *wsgatetest.Server, sub string) *wsgatetest.Client {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		h := http.Header{"Authorization": {"Bearer " + n.Token(t, sub, chatPerms)}}
		c, resp, err := n.Dial(t, wsgatetest.DialOptions{Header: h})
		if err == nil {
			if w := c.Expect(t, "welcome", 5*time.Second); w["user"] != sub {
				t.Fatalf("welcome for %v, want %s", w["user"], sub)
			}
			return c
		}
		if resp == nil || resp.StatusCode != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("connect %s: %v", sub, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func tail(evs []faultEvent, n int) []faultEvent {
	if len(evs) > n {
		return evs[len(evs)-n:]
	}
	return evs
}

// checkFaultSubscriber checks one subscriber's events against the acks.
func checkFaultSubscriber(t *testing.T, s *faultSub, acked map[string]pos) {
	t.Helper()
	evs := s.events()
	got := map[string]bool{}
	seenEpoch := map[string]bool{}
	type jump struct{ from, to pos }
	var jumps []jump
	var cur pos
	recovered, rfs := 0, 0
	for i, ev := range evs {
		switch ev.kind {
		case "ack":
			if !ev.recovered {
				cur = ev.pos
			}
			if ev.recovered {
				recovered++
			}
		case "recovery_failed":
			jumps = append(jumps, jump{cur, ev.pos})
			cur = ev.pos
			rfs++
		case "message":
			if got[ev.id] {
				t.Fatalf("%s: %s delivered twice (event %d)", s.name, ev.id, i)
			}
			got[ev.id] = true
			if want, ok := acked[ev.id]; ok && want != ev.pos {
				t.Fatalf("%s: %s delivered at %+v, acked at %+v", s.name, ev.id, ev.pos, want)
			}
			follows := (ev.pos.Epoch == cur.Epoch && ev.pos.Offset == cur.Offset+1) || (cur.Epoch == "" && ev.pos.Offset == 1)
			if !follows {
				t.Fatalf("%s: silent gap: message %+v after %+v without recovery_failed (event %d; events before: %v)",
					s.name, ev.pos, cur, i, evs[max(0, i-5):i])
			}
			cur = ev.pos
			seenEpoch[ev.pos.Epoch] = true
		}
	}
	missing := 0
	for id, p := range acked {
		if got[id] {
			continue
		}
		covered := false
		for _, j := range jumps {
			if (p.Epoch == j.from.Epoch && p.Offset > j.from.Offset) ||
				(p.Epoch == j.to.Epoch && p.Offset <= j.to.Offset) ||
				(p.Epoch != j.from.Epoch && p.Epoch != j.to.Epoch && !seenEpoch[p.Epoch]) {
				covered = true
				break
			}
		}
		if !covered {
			t.Fatalf("%s: acked %s at %+v neither delivered nor covered by a recovery_failed (jumps %v)", s.name, id, p, jumps)
		}
		missing++
	}
	t.Logf("%s: %d delivered, %d acked but reported lost, %d recovery_failed, %d recovered resubscribes", s.name, len(got), missing, rfs, recovered)
}
