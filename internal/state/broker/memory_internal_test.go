package broker

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/state/statetest"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/bgrun"
)

// newClocked returns a broker on a manual clock.
func newClocked(opts MemoryOptions) (*Memory, *statetest.Clock) {
	c := statetest.New()
	opts.Now = c.Now
	return NewMemory(opts), c
}

var bg = context.Background()

// events records handler calls; it may call back into the broker.
type events struct {
	mu     sync.Mutex
	pubs   []Publication
	joins  []ClientInfo
	leaves []ClientInfo
	onPub  func(Publication)
}

func (e *events) HandlePublication(p Publication) {
	e.mu.Lock()
	e.pubs = append(e.pubs, p)
	e.mu.Unlock()
	if e.onPub != nil {
		e.onPub(p)
	}
}

func (e *events) HandleJoin(_ string, i ClientInfo) {
	e.mu.Lock()
	e.joins = append(e.joins, i)
	e.mu.Unlock()
}

func (e *events) HandleLeave(_ string, i ClientInfo) {
	e.mu.Lock()
	e.leaves = append(e.leaves, i)
	e.mu.Unlock()
}

func (e *events) counts() (pubs, joins, leaves int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.pubs), len(e.joins), len(e.leaves)
}

// run starts m.Run(h) and waits until the handler is registered.
func run(t *testing.T, m *Memory, h EventHandler) (stop func()) {
	t.Helper()
	stop = bgrun.Start(t, func(ctx context.Context) error { return m.Run(ctx, h) })
	for m.handler.Load() == nil {
		runtime.Gosched()
	}
	return stop
}

func mustNil(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var keep = PublishOptions{HistorySize: 10, HistoryTTL: time.Minute}

func TestTTLExpiryAndEpochChange(t *testing.T) {
	m, clk := newClocked(MemoryOptions{})
	first, err := m.Publish(bg, "ch", []byte("1"), "", keep)
	mustNil(t, err)
	clk.Advance(30 * time.Second)
	second, err := m.Publish(bg, "ch", []byte("2"), "", keep)
	mustNil(t, err)
	clk.Advance(31 * time.Second) // first expired, second not
	pubs, cur, err := m.History(bg, "ch", nil, 0)
	mustNil(t, err)
	if len(pubs) != 1 || pubs[0].Offset != 2 || cur != second {
		t.Fatalf("after partial expiry: %+v at %+v", pubs, cur)
	}
	// Since offset 0 now needs the expired offset 1.
	if _, _, err := m.History(bg, "ch", &StreamPosition{Epoch: first.Epoch}, 0); !errors.Is(err, ErrRecoveryFailed) {
		t.Fatalf("recovery across expired entry: %v", err)
	}
	if pubs, _, err := m.History(bg, "ch", &first, 0); err != nil || len(pubs) != 1 {
		t.Fatalf("recovery from 1: %v %+v", err, pubs)
	}
	clk.Advance(time.Minute)
	m.sweep()
	if n := m.Channels(); n != 0 {
		t.Fatalf("expired channel still tracked: %d", n)
	}
	third, err := m.Publish(bg, "ch", []byte("3"), "", keep)
	mustNil(t, err)
	if third.Offset != 1 || third.Epoch == first.Epoch {
		t.Fatalf("recreated stream at %+v, old epoch %s", third, first.Epoch)
	}
	if _, _, err := m.History(bg, "ch", &second, 0); !errors.Is(err, ErrRecoveryFailed) {
		t.Fatalf("recovery from old epoch: %v", err)
	}
}

func TestSubscriberKeepsStreamAcrossExpiry(t *testing.T) {
	m, clk := newClocked(MemoryOptions{})
	mustNil(t, m.Subscribe(bg, "ch"))
	p1, err := m.Publish(bg, "ch", []byte("1"), "", keep)
	mustNil(t, err)
	clk.Advance(2 * time.Minute)
	m.sweep()
	pubs, cur, err := m.History(bg, "ch", &p1, 0)
	if err != nil || len(pubs) != 0 || cur != p1 {
		t.Fatalf("since current after expiry: %v %+v %+v", err, pubs, cur)
	}
	p2, err := m.Publish(bg, "ch", []byte("2"), "", keep)
	mustNil(t, err)
	if p2.Epoch != p1.Epoch || p2.Offset != 2 {
		t.Fatalf("stream did not continue: %+v after %+v", p2, p1)
	}
	if pubs, _, err := m.History(bg, "ch", &p1, 0); err != nil || len(pubs) != 1 || pubs[0].Offset != 2 {
		t.Fatalf("recovery: %v %+v", err, pubs)
	}
}

func TestEmptyChannelsAreForgotten(t *testing.T) {
	m := NewMemory(MemoryOptions{})
	mustNil(t, m.Subscribe(bg, "a"))
	mustNil(t, m.AddPresence(bg, "b", ClientInfo{ConnID: "c1"}))
	if _, err := m.Publish(bg, "c", []byte("x"), "", PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := m.Channels(); n != 2 {
		t.Fatalf("channels %d, want 2 (no-history publish keeps nothing)", n)
	}
	mustNil(t, m.Unsubscribe(bg, "a"))
	mustNil(t, m.RemovePresence(bg, "b", "c1"))
	if n := m.Channels(); n != 0 {
		t.Fatalf("channels %d after everything left", n)
	}
	// A publish with history size 0 clears what was kept before.
	if _, err := m.Publish(bg, "d", []byte("x"), "", keep); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Publish(bg, "d", []byte("y"), "", PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := m.Channels(); n != 0 {
		t.Fatalf("channels %d after history was turned off", n)
	}
}

func TestMaxChannels(t *testing.T) {
	m, clk := newClocked(MemoryOptions{MaxChannels: 3})
	for _, ch := range []string{"a", "b", "c"} {
		mustNil(t, m.Subscribe(bg, ch))
	}
	if err := m.Subscribe(bg, "d"); !errors.Is(err, ErrTooManyChannels) {
		t.Fatalf("Subscribe over limit: %v", err)
	}
	if _, err := m.Publish(bg, "d", nil, "", keep); !errors.Is(err, ErrTooManyChannels) {
		t.Fatalf("Publish over limit: %v", err)
	}
	if err := m.AddPresence(bg, "d", ClientInfo{ConnID: "x"}); !errors.Is(err, ErrTooManyChannels) {
		t.Fatalf("AddPresence over limit: %v", err)
	}
	// Existing channels keep working, reads never create.
	if _, err := m.Publish(bg, "a", nil, "", keep); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.History(bg, "zzz", nil, 0); err != nil {
		t.Fatal(err)
	}
	mustNil(t, m.Unsubscribe(bg, "b"))
	mustNil(t, m.Subscribe(bg, "d"))
	// Expired channels are reclaimed: on demand in the creating shard, or by the sweep.
	mustNil(t, m.Unsubscribe(bg, "a")) // "a" still has history
	clk.Advance(2 * time.Minute)
	if err := m.Subscribe(bg, "e"); err != nil {
		m.sweep()
		mustNil(t, m.Subscribe(bg, "e"))
	}
	if n := m.Channels(); n != 3 {
		t.Fatalf("channels %d, want 3", n)
	}
}

func TestHistoryCapsAndShrink(t *testing.T) {
	m := NewMemory(MemoryOptions{MaxHistorySize: 4})
	for i := range 10 {
		if _, err := m.Publish(bg, "ch", []byte{byte(i)}, "", PublishOptions{HistorySize: 100, HistoryTTL: time.Minute}); err != nil {
			t.Fatal(err)
		}
	}
	pubs, _, err := m.History(bg, "ch", nil, 0)
	mustNil(t, err)
	if len(pubs) != 4 || pubs[0].Offset != 7 {
		t.Fatalf("history not capped: %d from %d", len(pubs), pubs[0].Offset)
	}
	// A smaller size on the next publish shrinks the retained run.
	if _, err := m.Publish(bg, "ch", []byte{10}, "", PublishOptions{HistorySize: 2, HistoryTTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	pubs, _, err = m.History(bg, "ch", nil, 0)
	mustNil(t, err)
	if len(pubs) != 2 || pubs[0].Offset != 10 || pubs[1].Offset != 11 {
		t.Fatalf("after shrink: %+v", pubs)
	}
}

func TestPresenceEventsOnlyWhenSubscribed(t *testing.T) {
	m := NewMemory(MemoryOptions{})
	ev := &events{}
	run(t, m, ev)
	mustNil(t, m.AddPresence(bg, "ch", ClientInfo{ConnID: "c1", User: "u"}))
	if _, j, _ := ev.counts(); j != 0 {
		t.Fatal("join delivered for an unsubscribed channel")
	}
	mustNil(t, m.Subscribe(bg, "ch"))
	mustNil(t, m.AddPresence(bg, "ch", ClientInfo{ConnID: "c2", User: "u"}))
	mustNil(t, m.AddPresence(bg, "ch", ClientInfo{ConnID: "c2", User: "u2"})) // update: no second join
	mustNil(t, m.RemovePresence(bg, "ch", "c2"))
	mustNil(t, m.RemovePresence(bg, "ch", "c2")) // already gone: no second leave
	if _, j, l := ev.counts(); j != 1 || l != 1 {
		t.Fatalf("joins %d leaves %d, want 1 and 1", j, l)
	}
	if ev.leaves[0].User != "u2" {
		t.Fatalf("leave reports %+v, want the updated info", ev.leaves[0])
	}
	if err := m.AddPresence(bg, "ch", ClientInfo{}); err == nil {
		t.Fatal("empty conn id accepted")
	}
}

func TestRunContract(t *testing.T) {
	m := NewMemory(MemoryOptions{})
	if err := m.Run(bg, nil); err == nil {
		t.Fatal("nil handler accepted")
	}
	ev := &events{}
	stop := run(t, m, ev)
	if err := m.Run(bg, ev); !errors.Is(err, ErrAlreadyRunning) {
		t.Fatalf("second Run: %v", err)
	}
	mustNil(t, m.Subscribe(bg, "ch"))
	if _, err := m.Publish(bg, "ch", nil, "", keep); err != nil {
		t.Fatal(err)
	}
	stop()
	if _, err := m.Publish(bg, "ch", nil, "", keep); err != nil {
		t.Fatal(err)
	}
	if p, _, _ := ev.counts(); p != 1 {
		t.Fatalf("deliveries %d, want 1 (none after Run returned)", p)
	}
	// A new Run may start afterwards.
	run(t, m, ev)
	if _, err := m.Publish(bg, "ch", nil, "", keep); err != nil {
		t.Fatal(err)
	}
	if p, _, _ := ev.counts(); p != 2 {
		t.Fatalf("deliveries %d, want 2", p)
	}
}

// A handler may publish to another channel from inside a delivery, and Run must
// still be able to stop while deliveries are in progress.
func TestReentrantHandlerAndStopUnderLoad(t *testing.T) {
	m := NewMemory(MemoryOptions{})
	mustNil(t, m.Subscribe(bg, "in"))
	mustNil(t, m.Subscribe(bg, "out"))
	ev := &events{}
	ev.onPub = func(p Publication) {
		if p.Channel == "in" {
			if _, err := m.Publish(bg, "out", p.Data, "", keep); err != nil {
				t.Error(err)
			}
		}
	}
	stop := run(t, m, ev)
	var wg sync.WaitGroup
	var published atomic.Int64
	quit := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-quit:
					return
				default:
				}
				if _, err := m.Publish(bg, "in", []byte("x"), "", keep); err != nil {
					t.Error(err)
					return
				}
				published.Add(1)
			}
		})
	}
	for published.Load() < 200 {
		runtime.Gosched()
	}
	stop() // must not deadlock with deliveries in flight
	close(quit)
	wg.Wait()
	_, cur, err := m.History(bg, "out", nil, 0)
	mustNil(t, err)
	if cur.Offset == 0 {
		t.Fatal("re-entrant publish never happened")
	}
}

func TestOptionsValidate(t *testing.T) {
	if err := (MemoryOptions{}).Validate(); err != nil {
		t.Fatal(err)
	}
	for _, o := range []MemoryOptions{{MaxChannels: -1}, {MaxHistorySize: -1}, {MaxHistoryTTL: -1}, {SweepInterval: -1}} {
		if err := o.Validate(); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	d := MemoryOptions{}.withDefaults()
	if d.MaxChannels != DefaultMaxChannels || d.MaxHistorySize != DefaultMaxHistorySize || d.MaxHistoryTTL != DefaultMaxHistoryTTL || d.SweepInterval != DefaultSweepInterval || d.Now == nil {
		t.Fatalf("defaults %+v", d)
	}
}

func TestRingWrapsAndShrinks(t *testing.T) {
	var r ring
	for i := range 50 {
		r.push(entry{pub: Publication{Offset: uint64(i + 1)}, expire: int64(i)}, 7)
		if r.n > 7 {
			t.Fatalf("ring holds %d > 7", r.n)
		}
		for j := 0; j < r.n; j++ {
			if want := uint64(i + 1 - r.n + j + 1); r.at(j).pub.Offset != want {
				t.Fatalf("after push %d: slot %d has %d, want %d", i, j, r.at(j).pub.Offset, want)
			}
		}
	}
	r.trimExpired(46) // entries expiring at 43..46 go
	if r.n != 3 || r.front().pub.Offset != 48 {
		t.Fatalf("after trim: n=%d front=%d", r.n, r.front().pub.Offset)
	}
	r.trimExpired(1000)
	if r.n != 0 || r.buf != nil {
		t.Fatal("empty ring kept its buffer")
	}
}

func TestHistoryByteBudget(t *testing.T) {
	const budget = 10 * (entryOverhead + 100)
	m, clk := newClocked(MemoryOptions{MaxHistoryBytes: budget})
	payload := make([]byte, 100)
	opts := PublishOptions{HistorySize: 100, HistoryTTL: time.Minute}
	for range 25 {
		if _, err := m.Publish(bg, "a", payload, "", opts); err != nil {
			t.Fatal(err)
		}
		if b := m.HistoryBytes(); b > budget {
			t.Fatalf("history bytes %d over budget %d", b, budget)
		}
	}
	// "a" trimmed its own front to stay within the budget; what is kept is contiguous.
	pubs, cur, err := m.History(bg, "a", nil, 0)
	mustNil(t, err)
	if len(pubs) != 10 || pubs[0].Offset != 16 || cur.Offset != 25 {
		t.Fatalf("a: %d publications from %d at %d", len(pubs), pubs[0].Offset, cur.Offset)
	}
	// "b" cannot fit anything: it keeps no history, and recovery fails cleanly.
	p1, err := m.Publish(bg, "b", payload, "", opts)
	mustNil(t, err)
	mustNil(t, m.Subscribe(bg, "b"))
	p2, err := m.Publish(bg, "b", payload, "", opts)
	mustNil(t, err)
	if pubs, _, err := m.History(bg, "b", nil, 0); err != nil || len(pubs) != 0 {
		t.Fatalf("b kept history over budget: %v %d", err, len(pubs))
	}
	if _, _, err := m.History(bg, "b", &p1, 0); !errors.Is(err, ErrRecoveryFailed) {
		t.Fatalf("b recovery: %v", err)
	}
	if pubs, _, err := m.History(bg, "b", &p2, 0); err != nil || len(pubs) != 0 {
		t.Fatalf("b since current: %v %d", err, len(pubs))
	}
	clk.Advance(2 * time.Minute)
	m.sweep()
	if b := m.HistoryBytes(); b != 0 {
		t.Fatalf("history bytes %d after everything expired", b)
	}
}
