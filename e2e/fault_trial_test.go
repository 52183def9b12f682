package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/tools/wsgatetest"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/bgrun"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/wait"
)

// faultTrial is the bookkeeping the fault tests share: the loops it runs (its
// subscribers' readers and its publishers, ended by loops.Halt, at the latest
// when the test ends), its subscribers, and the publishers progress waits for.
type faultTrial struct {
	t     *testing.T
	loops *bgrun.Loops
	subs  []*faultSub
	pubs  []*faultPublisher
}

func newFaultTrial(t *testing.T) *faultTrial {
	return &faultTrial{t: t, loops: bgrun.NewLoops(t)}
}

// subscribe subscribes s on c to chat:faults (from since, if any) and starts
// recording what c receives; the channel closes when that reader returns (c
// closed and drained, or loops.Halt). s joins the trial's subscribers the
// first time.
func (f *faultTrial) subscribe(s *faultSub, c *wsgatetest.Client, since *pos) <-chan struct{} {
	f.t.Helper()
	req := map[string]any{"type": "subscribe", "id": "sub", "channel": "chat:faults"}
	if since != nil {
		req["since"] = map[string]any{"offset": since.Offset, "epoch": since.Epoch}
	}
	c.SendJSON(f.t, req)
	s.mu.Lock()
	first := s.conn == nil
	s.conn = c
	s.mu.Unlock()
	if first {
		f.subs = append(f.subs, s)
	}
	return f.loops.Go(func() { s.read(c, f.loops.Stop()) })
}

// subscribed waits until every subscriber has its first answer.
func (f *faultTrial) subscribed() {
	f.t.Helper()
	wait.For(f.t, "every subscribe ack", 10*time.Second, func() bool {
		for _, s := range f.subs {
			if len(s.events()) == 0 {
				return false
			}
		}
		return true
	})
}

// publish starts p publishing on its connection; progress waits for it while
// it is in f.pubs.
func (f *faultTrial) publish(p *faultPublisher) <-chan struct{} {
	f.pubs = append(f.pubs, p)
	return f.loops.Go(func() { p.run(f.loops.Stop()) })
}

// progress waits until each publisher in f.pubs has n more acks than now.
func (f *faultTrial) progress(what string, n int) {
	f.t.Helper()
	base := make([]int, len(f.pubs))
	for i, p := range f.pubs {
		base[i] = p.ackCount()
	}
	wait.For(f.t, fmt.Sprintf("%d more acks per publisher (%s)", n, what), 30*time.Second, func() bool {
		for i, p := range f.pubs {
			if p.ackCount() < base[i]+n {
				return false
			}
		}
		return true
	})
}

// finish halts the trial, fails if a publisher in f.pubs stopped early,
// publishes a final marker through n that every subscriber must receive
// (after it, whatever a subscriber did not get is missing for good), and
// returns every acked position of all (the marker's included) and how many.
func (f *faultTrial) finish(n *wsgatetest.Server, all []*faultPublisher) (map[string]pos, int) {
	t := f.t
	t.Helper()
	f.loops.Halt()
	for _, p := range f.pubs {
		if p.fatal != "" {
			t.Fatalf("publisher %s stopped: %s", p.name, p.fatal)
		}
	}
	final := connectRetrying(t, n, "final")
	final.SendJSON(t, map[string]any{"type": "publish", "id": "final", "channel": "chat:faults", "payload": map[string]any{"id": "final"}})
	ack := final.Expect(t, "ack", 10*time.Second)
	acked := map[string]pos{"final": {ack["epoch"].(string), uint64(ack["offset"].(float64))}}
	for _, s := range f.subs {
		s.mu.Lock()
		c := s.conn
		s.mu.Unlock()
		deadline := time.After(20 * time.Second)
		for done := false; !done; {
			select {
			case b := <-c.Msgs:
				s.record(b)
				evs := s.events()
				done = len(evs) > 0 && evs[len(evs)-1].id == "final"
			case <-deadline:
				t.Fatalf("%s: final marker not received within 20s; last events %v", s.name, tail(s.events(), 5))
			}
		}
	}
	for _, p := range all {
		for id, ps := range p.acked {
			acked[id] = ps
		}
	}
	return acked, len(acked)
}
