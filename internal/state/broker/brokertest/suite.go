package brokertest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/state/broker"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/bgrun"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/wait"
)

// deadline bounds every wait; generous because CI machines and Redis can be slow.
const deadline = 15 * time.Second

var keep = broker.PublishOptions{HistorySize: 100, HistoryTTL: time.Hour}

// Run runs the suite. newBroker must return a fresh broker; the suite runs it with
// Run(ctx, handler) itself and stops it at the end of each subtest.
func Run(t *testing.T, newBroker func(t *testing.T) broker.Broker) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, b broker.Broker, rec *Recorder)
	}{
		{"OffsetsAndEpoch", testOffsetsAndEpoch},
		{"HistoryLatest", testHistoryLatest},
		{"HistorySizeBound", testHistorySizeBound},
		{"RecoveryFromEveryOffset", testRecoveryFromEveryOffset},
		{"RecoveryRejectsForeignPositions", testRecoveryRejectsForeignPositions},
		{"NoHistoryKept", testNoHistoryKept},
		{"HistoryTTL", testHistoryTTL},
		{"ConcurrentPublishersOrdered", testConcurrentPublishersOrdered},
		{"DeliversOnlySubscribed", testDeliversOnlySubscribed},
		{"Presence", testPresence},
		{"InvalidArguments", testInvalidArguments},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newBroker(t)
			rec := start(t, b)
			tc.fn(t, b, rec)
		})
	}
}

// start runs b with a recorder and waits until deliveries flow.
func start(t *testing.T, b broker.Broker) *Recorder {
	t.Helper()
	rec := NewRecorder()
	bgrun.Start(t, func(ctx context.Context) error { return b.Run(ctx, rec) })
	// Run registers asynchronously: publish probes until one is delivered.
	probe := channelName("probe")
	must(t, b.Subscribe(context.Background(), probe))
	wait.For(t, "Run to deliver", deadline, func() bool {
		if _, err := b.Publish(context.Background(), probe, []byte(`"probe"`), "", broker.PublishOptions{}); err != nil {
			t.Fatalf("probe publish: %v", err)
		}
		return len(rec.Pubs(probe)) > 0
	})
	must(t, b.Unsubscribe(context.Background(), probe))
	return rec
}

func channelName(base string) string { return "brokertest:" + rand.Text()[:10] + ":" + base }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func publish(t *testing.T, b broker.Broker, ch string, n int, opts broker.PublishOptions) []broker.StreamPosition {
	t.Helper()
	out := make([]broker.StreamPosition, n)
	for i := range n {
		pos, err := b.Publish(context.Background(), ch, data(i), "tester", opts)
		if err != nil {
			t.Fatalf("publish %d to %s: %v", i, ch, err)
		}
		out[i] = pos
	}
	return out
}

func data(i int) []byte { return fmt.Appendf(nil, `{"n":%d}`, i) }

func history(t *testing.T, b broker.Broker, ch string, since *broker.StreamPosition, limit int) ([]broker.Publication, broker.StreamPosition) {
	t.Helper()
	pubs, pos, err := b.History(context.Background(), ch, since, limit)
	if err != nil {
		t.Fatalf("History(%s, %+v, %d): %v", ch, since, limit, err)
	}
	return pubs, pos
}

// checkRun asserts pubs are offsets first..first+len-1 of epoch with the payloads
// publish() produced (payload i belongs to offset i+1 on a fresh channel).
func checkRun(t *testing.T, pubs []broker.Publication, ch, epoch string, first uint64) {
	t.Helper()
	for i, p := range pubs {
		want := first + uint64(i)
		if p.Offset != want || p.Epoch != epoch || p.Channel != ch {
			t.Fatalf("publication %d: got %s/%d/%s, want %s/%d/%s", i, p.Channel, p.Offset, p.Epoch, ch, want, epoch)
		}
		if string(p.Data) != string(data(int(want-1))) {
			t.Fatalf("publication %d (offset %d): data %s, want %s", i, want, p.Data, data(int(want-1)))
		}
	}
}

func testOffsetsAndEpoch(t *testing.T, b broker.Broker, _ *Recorder) {
	ch := channelName("offsets")
	pos := publish(t, b, ch, 3, keep)
	epoch := pos[0].Epoch
	if epoch == "" {
		t.Fatal("empty epoch")
	}
	for i, p := range pos {
		if p.Offset != uint64(i+1) || p.Epoch != epoch {
			t.Fatalf("publish %d returned %+v, want offset %d epoch %s", i, p, i+1, epoch)
		}
	}
	pubs, cur := history(t, b, ch, nil, 0)
	if cur != pos[2] {
		t.Fatalf("current position %+v, want %+v", cur, pos[2])
	}
	if len(pubs) != 3 {
		t.Fatalf("history has %d publications, want 3", len(pubs))
	}
	checkRun(t, pubs, ch, epoch, 1)
	if pubs[0].From != "tester" || pubs[0].Time.IsZero() {
		t.Fatalf("publication metadata not kept: %+v", pubs[0])
	}
	// Streams are per channel.
	other := channelName("other")
	if p := publish(t, b, other, 1, keep); p[0].Offset != 1 {
		t.Fatalf("first offset in a new channel is %d", p[0].Offset)
	}
}

func testHistoryLatest(t *testing.T, b broker.Broker, _ *Recorder) {
	ch := channelName("latest")
	pos := publish(t, b, ch, 10, keep)
	epoch := pos[0].Epoch
	pubs, _ := history(t, b, ch, nil, 3)
	if len(pubs) != 3 {
		t.Fatalf("limit 3 returned %d", len(pubs))
	}
	checkRun(t, pubs, ch, epoch, 8)
	pubs, _ = history(t, b, ch, nil, 50)
	if len(pubs) != 10 {
		t.Fatalf("limit 50 returned %d", len(pubs))
	}
	checkRun(t, pubs, ch, epoch, 1)
	// A missing channel has no history and no error.
	pubs, _ = history(t, b, channelName("missing"), nil, 0)
	if len(pubs) != 0 {
		t.Fatalf("missing channel returned %d publications", len(pubs))
	}
}

func testHistorySizeBound(t *testing.T, b broker.Broker, _ *Recorder) {
	ch := channelName("bound")
	opts := broker.PublishOptions{HistorySize: 5, HistoryTTL: time.Hour}
	pos := publish(t, b, ch, 12, opts)
	pubs, cur := history(t, b, ch, nil, 0)
	if cur.Offset != 12 || len(pubs) != 5 {
		t.Fatalf("got %d publications at %+v, want 5 at offset 12", len(pubs), cur)
	}
	checkRun(t, pubs, ch, pos[0].Epoch, 8)
}

func testRecoveryFromEveryOffset(t *testing.T, b broker.Broker, _ *Recorder) {
	ch := channelName("recovery")
	opts := broker.PublishOptions{HistorySize: 10, HistoryTTL: time.Hour}
	pos := publish(t, b, ch, 20, opts)
	epoch := pos[0].Epoch
	const oldest = 11
	for since := uint64(0); since <= 20; since++ {
		sp := &broker.StreamPosition{Offset: since, Epoch: epoch}
		pubs, cur, err := b.History(context.Background(), ch, sp, 0)
		if since+1 < oldest {
			if !errors.Is(err, broker.ErrRecoveryFailed) {
				t.Fatalf("since %d (gap before %d): err %v, want ErrRecoveryFailed", since, oldest, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("since %d: %v", since, err)
		}
		if cur.Offset != 20 || cur.Epoch != epoch {
			t.Fatalf("since %d: current %+v", since, cur)
		}
		if len(pubs) != int(20-since) {
			t.Fatalf("since %d: %d publications, want %d", since, len(pubs), 20-since)
		}
		checkRun(t, pubs, ch, epoch, since+1)
		// Paging with a limit walks the same run.
		if since < 20 {
			page, _ := history(t, b, ch, sp, 2)
			if len(page) != min(2, int(20-since)) {
				t.Fatalf("since %d limit 2: %d publications", since, len(page))
			}
			checkRun(t, page, ch, epoch, since+1)
		}
	}
	// Nothing trimmed yet: offset 0 means "from the beginning".
	full := channelName("full")
	fp := publish(t, b, full, 4, keep)
	pubs, _ := history(t, b, full, &broker.StreamPosition{Offset: 0, Epoch: fp[0].Epoch}, 0)
	if len(pubs) != 4 {
		t.Fatalf("since 0 on untrimmed history: %d publications, want 4", len(pubs))
	}
	checkRun(t, pubs, full, fp[0].Epoch, 1)
}

func testRecoveryRejectsForeignPositions(t *testing.T, b broker.Broker, _ *Recorder) {
	ch := channelName("foreign")
	pos := publish(t, b, ch, 5, keep)
	cases := map[string]broker.StreamPosition{
		"other epoch":   {Offset: 3, Epoch: pos[0].Epoch + "x"},
		"empty epoch":   {Offset: 3, Epoch: ""},
		"future offset": {Offset: 6, Epoch: pos[0].Epoch},
	}
	for name, sp := range cases {
		if _, _, err := b.History(context.Background(), ch, &sp, 0); !errors.Is(err, broker.ErrRecoveryFailed) {
			t.Errorf("%s: err %v, want ErrRecoveryFailed", name, err)
		}
	}
	// A position in a channel that has no stream cannot be vouched for either.
	sp := broker.StreamPosition{Offset: 3, Epoch: pos[0].Epoch}
	if _, _, err := b.History(context.Background(), channelName("never"), &sp, 0); !errors.Is(err, broker.ErrRecoveryFailed) {
		t.Errorf("missing channel: err %v, want ErrRecoveryFailed", err)
	}
}

func testNoHistoryKept(t *testing.T, b broker.Broker, rec *Recorder) {
	ch := channelName("nohistory")
	must(t, b.Subscribe(context.Background(), ch)) // keeps the stream alive
	pos := publish(t, b, ch, 3, broker.PublishOptions{})
	for i, p := range pos {
		if p.Offset != uint64(i+1) || p.Epoch != pos[0].Epoch {
			t.Fatalf("publish %d returned %+v", i, p)
		}
	}
	wait.For(t, "3 deliveries", deadline, func() bool { return len(rec.Pubs(ch)) == 3 })
	pubs, cur := history(t, b, ch, nil, 0)
	if len(pubs) != 0 || cur != pos[2] {
		t.Fatalf("got %d publications at %+v, want none at %+v", len(pubs), cur, pos[2])
	}
	if pubs, _ := history(t, b, ch, &pos[2], 0); len(pubs) != 0 {
		t.Fatalf("since current: %d publications", len(pubs))
	}
	if _, _, err := b.History(context.Background(), ch, &pos[1], 0); !errors.Is(err, broker.ErrRecoveryFailed) {
		t.Fatalf("since %d without history: err %v, want ErrRecoveryFailed", pos[1].Offset, err)
	}
	must(t, b.Unsubscribe(context.Background(), ch))
}

func testHistoryTTL(t *testing.T, b broker.Broker, _ *Recorder) {
	ch := channelName("ttl")
	short := broker.PublishOptions{HistorySize: 10, HistoryTTL: 200 * time.Millisecond}
	pos := publish(t, b, ch, 2, short)
	// Long-lived history in another channel is untouched by the expiry.
	long := channelName("long")
	publish(t, b, long, 1, keep)
	wait.For(t, "history to expire", deadline, func() bool {
		pubs, _ := history(t, b, ch, nil, 0)
		return len(pubs) == 0
	})
	if pubs, _ := history(t, b, long, nil, 0); len(pubs) != 1 {
		t.Fatalf("unexpired history lost: %d publications", len(pubs))
	}
	// Recovery across the expired entries must fail, never return a gap.
	if _, _, err := b.History(context.Background(), ch, &pos[0], 0); !errors.Is(err, broker.ErrRecoveryFailed) {
		t.Fatalf("recovery over expired history: err %v, want ErrRecoveryFailed", err)
	}
	// The stream either continues in its epoch or restarts in a new one.
	next, err := b.Publish(context.Background(), ch, data(2), "tester", keep)
	must(t, err)
	switch {
	case next.Epoch == pos[1].Epoch:
		if next.Offset != pos[1].Offset+1 {
			t.Fatalf("same epoch %s but offset %d after %d", next.Epoch, next.Offset, pos[1].Offset)
		}
		pubs, _ := history(t, b, ch, &pos[1], 0)
		if len(pubs) != 1 || pubs[0].Offset != next.Offset {
			t.Fatalf("recovery from last position: %+v", pubs)
		}
	default:
		if next.Offset != 1 || next.Epoch == "" {
			t.Fatalf("new epoch %q must restart at offset 1, got %d", next.Epoch, next.Offset)
		}
		if _, _, err := b.History(context.Background(), ch, &pos[1], 0); !errors.Is(err, broker.ErrRecoveryFailed) {
			t.Fatalf("recovery from old epoch: err %v, want ErrRecoveryFailed", err)
		}
	}
}

func testConcurrentPublishersOrdered(t *testing.T, b broker.Broker, rec *Recorder) {
	chans := []string{channelName("race-a"), channelName("race-b")}
	for _, ch := range chans {
		must(t, b.Subscribe(context.Background(), ch))
	}
	const publishers, per = 8, 150
	var (
		mu       sync.Mutex
		returned = map[string][]uint64{}
		wg       sync.WaitGroup
	)
	for g := range publishers {
		for _, ch := range chans {
			wg.Go(func() {
				for i := range per {
					pos, err := b.Publish(context.Background(), ch, fmt.Appendf(nil, `"%d-%d"`, g, i), "", keep)
					if err != nil {
						t.Errorf("publish: %v", err)
						return
					}
					mu.Lock()
					returned[ch] = append(returned[ch], pos.Offset)
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	const total = publishers * per
	for _, ch := range chans {
		wait.For(t, "all deliveries on "+ch, deadline, func() bool { return len(rec.Pubs(ch)) >= total })
		got := rec.Pubs(ch)
		if len(got) != total {
			t.Fatalf("%s: %d deliveries, want %d", ch, len(got), total)
		}
		seen := map[string]bool{}
		for i, p := range got {
			if p.Offset != uint64(i+1) || p.Epoch != got[0].Epoch {
				t.Fatalf("%s: delivery %d has offset %d epoch %s (first epoch %s)", ch, i, p.Offset, p.Epoch, got[0].Epoch)
			}
			if seen[string(p.Data)] {
				t.Fatalf("%s: payload %s delivered twice", ch, p.Data)
			}
			seen[string(p.Data)] = true
		}
		offs := returned[ch]
		slices.Sort(offs)
		for i, o := range offs {
			if o != uint64(i+1) {
				t.Fatalf("%s: Publish returned offsets with a gap or duplicate at %d: %d", ch, i, o)
			}
		}
		// History agrees with what was delivered.
		pubs, cur := history(t, b, ch, nil, 0)
		if cur.Offset != total || len(pubs) != keep.HistorySize {
			t.Fatalf("%s: history %d publications at %+v", ch, len(pubs), cur)
		}
		for i, p := range pubs {
			d := got[total-keep.HistorySize+i]
			if p.Offset != d.Offset || string(p.Data) != string(d.Data) {
				t.Fatalf("%s: history %d is %d/%s, delivered %d/%s", ch, i, p.Offset, p.Data, d.Offset, d.Data)
			}
		}
		must(t, b.Unsubscribe(context.Background(), ch))
	}
}

// testDeliversOnlySubscribed checks the absence of a delivery with a marker: events
// published one after another from one goroutine reach this node in that order, so
// once the marker on a subscribed channel arrives, anything published before it on
// another channel would have arrived too.
func testDeliversOnlySubscribed(t *testing.T, b broker.Broker, rec *Recorder) {
	ctx := context.Background()
	ch, other, marker := channelName("sub"), channelName("unsub"), channelName("marker")
	must(t, b.Subscribe(ctx, marker))
	must(t, b.Subscribe(ctx, ch))
	must(t, b.Subscribe(ctx, ch)) // reference counted
	markers := 0
	mark := func() {
		t.Helper()
		markers++
		publish(t, b, marker, 1, broker.PublishOptions{})
		wait.For(t, "marker", deadline, func() bool { return len(rec.Pubs(marker)) == markers })
	}
	publish(t, b, other, 1, keep)
	publish(t, b, ch, 1, keep)
	mark()
	if n := len(rec.Pubs(other)); n != 0 {
		t.Fatalf("unsubscribed channel delivered %d publications", n)
	}
	if n := len(rec.Pubs(ch)); n != 1 {
		t.Fatalf("subscribed channel delivered %d publications, want 1", n)
	}
	must(t, b.Unsubscribe(ctx, ch))
	publish(t, b, ch, 1, keep)
	mark()
	if n := len(rec.Pubs(ch)); n != 2 {
		t.Fatalf("after one of two Unsubscribes: %d deliveries, want 2", n)
	}
	must(t, b.Unsubscribe(ctx, ch))
	publish(t, b, ch, 1, keep)
	mark()
	if n := len(rec.Pubs(ch)); n != 2 {
		t.Fatalf("after the last Unsubscribe: %d deliveries, want 2", n)
	}
	must(t, b.Unsubscribe(ctx, ch)) // extra Unsubscribe is harmless
	// The history was kept throughout.
	if pubs, _ := history(t, b, ch, nil, 0); len(pubs) != 3 {
		t.Fatalf("history has %d publications, want 3", len(pubs))
	}
}

func testPresence(t *testing.T, b broker.Broker, rec *Recorder) {
	ctx := context.Background()
	ch := channelName("presence")
	must(t, b.Subscribe(ctx, ch))
	alice := broker.ClientInfo{ConnID: "c1", User: "alice"}
	bob := broker.ClientInfo{ConnID: "c2", User: "bob"}
	must(t, b.AddPresence(ctx, ch, alice))
	must(t, b.AddPresence(ctx, ch, bob))
	wait.For(t, "two joins", deadline, func() bool { return len(rec.Joins(ch)) >= 2 })
	if got := sorted(rec.Joins(ch)); !slices.Equal(got, []broker.ClientInfo{alice, bob}) {
		t.Fatalf("joins %+v", got)
	}
	got, err := b.Presence(ctx, ch)
	must(t, err)
	if got = sorted(got); !slices.Equal(got, []broker.ClientInfo{alice, bob}) {
		t.Fatalf("presence %+v", got)
	}
	must(t, b.RemovePresence(ctx, ch, alice.ConnID))
	must(t, b.RemovePresence(ctx, ch, "unknown"))
	wait.For(t, "a leave", deadline, func() bool { return len(rec.Leaves(ch)) >= 1 })
	if l := rec.Leaves(ch); len(l) != 1 || l[0].ConnID != alice.ConnID {
		t.Fatalf("leaves %+v", l)
	}
	got, err = b.Presence(ctx, ch)
	must(t, err)
	if !slices.Equal(got, []broker.ClientInfo{bob}) {
		t.Fatalf("presence after leave %+v", got)
	}
	got, err = b.Presence(ctx, channelName("empty"))
	must(t, err)
	if len(got) != 0 {
		t.Fatalf("presence of an unknown channel: %+v", got)
	}
	must(t, b.RemovePresence(ctx, ch, bob.ConnID))
	must(t, b.Unsubscribe(ctx, ch))
}

func sorted(in []broker.ClientInfo) []broker.ClientInfo {
	out := slices.Clone(in)
	slices.SortFunc(out, func(a, b broker.ClientInfo) int {
		if a.ConnID < b.ConnID {
			return -1
		}
		if a.ConnID > b.ConnID {
			return 1
		}
		return 0
	})
	return out
}

func testInvalidArguments(t *testing.T, b broker.Broker, _ *Recorder) {
	ctx := context.Background()
	if _, err := b.Publish(ctx, "", []byte("1"), "", keep); err == nil {
		t.Error("Publish to an empty channel name succeeded")
	}
	if err := b.Subscribe(ctx, ""); err == nil {
		t.Error("Subscribe to an empty channel name succeeded")
	}
	if _, _, err := b.History(ctx, channelName("neg"), nil, -1); err == nil {
		t.Error("History with a negative limit succeeded")
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := b.Publish(canceled, channelName("canceled"), []byte("1"), "", keep); !errors.Is(err, context.Canceled) {
		t.Errorf("Publish with a canceled context: %v, want context.Canceled", err)
	}
}

// Recorder is the EventHandler the suite runs brokers with; brokers' own tests
// use it too. It keeps every event, per channel, in the order delivered.
type Recorder struct {
	mu      sync.Mutex
	pubByCh map[string][]broker.Publication
	joinCh  map[string][]broker.ClientInfo
	leaveCh map[string][]broker.ClientInfo
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder {
	return &Recorder{
		pubByCh: map[string][]broker.Publication{},
		joinCh:  map[string][]broker.ClientInfo{},
		leaveCh: map[string][]broker.ClientInfo{},
	}
}

func (r *Recorder) HandlePublication(p broker.Publication) {
	r.mu.Lock()
	r.pubByCh[p.Channel] = append(r.pubByCh[p.Channel], p)
	r.mu.Unlock()
}

func (r *Recorder) HandleJoin(ch string, info broker.ClientInfo) {
	r.mu.Lock()
	r.joinCh[ch] = append(r.joinCh[ch], info)
	r.mu.Unlock()
}

func (r *Recorder) HandleLeave(ch string, info broker.ClientInfo) {
	r.mu.Lock()
	r.leaveCh[ch] = append(r.leaveCh[ch], info)
	r.mu.Unlock()
}

// Pubs returns a copy of the publications delivered on ch so far.
func (r *Recorder) Pubs(ch string) []broker.Publication {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.pubByCh[ch])
}

// Joins returns a copy of the joins delivered on ch so far.
func (r *Recorder) Joins(ch string) []broker.ClientInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.joinCh[ch])
}

// Leaves returns a copy of the leaves delivered on ch so far.
func (r *Recorder) Leaves(ch string) []broker.ClientInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.leaveCh[ch])
}
