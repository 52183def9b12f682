package redis_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/state/broker"
	"github.com/wsgate/wsgate/internal/state/redis"
	"github.com/wsgate/wsgate/internal/state/redis/redistest"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/wait"
)

// Concurrent publishers on two nodes, several channels: publications of one
// channel are batched (fewer scripts than publications), every Publish gets a
// distinct offset, a third node receives each channel gap-free in offset
// order with the data each Publish was acked for, and each publisher's
// publications in the order it made them. History holds exactly the last
// HistorySize entries.
func TestPublishBatchedInOrderAcrossNodes(t *testing.T) {
	srv := redistest.Start(t)
	na, nb, nc := three(t, srv)
	pa, err := na.Broker(redis.BrokerOptions{})
	must(t, err)
	pb, err := nb.Broker(redis.BrokerOptions{})
	must(t, err)
	sub, rec := runBroker(t, nc, redis.BrokerOptions{})
	ctx := context.Background()
	keep := broker.PublishOptions{HistorySize: 50, HistoryTTL: time.Minute}
	const channels, perChannel, each = 4, 16, 40 // publishers per channel, publications each
	for ch := range channels {
		must(t, sub.Subscribe(ctx, "batch"+strconv.Itoa(ch)))
	}
	type ack struct {
		pos  broker.StreamPosition
		data string
	}
	var mu sync.Mutex
	acks := map[string][]ack{} // channel -> acks
	var wg sync.WaitGroup
	for ch := range channels {
		for p := range perChannel {
			node := pa
			if p%2 == 1 {
				node = pb
			}
			channel := "batch" + strconv.Itoa(ch)
			wg.Go(func() {
				for i := range each {
					data := fmt.Sprintf(`{"p":%d,"i":%d}`, p, i)
					pos, err := node.Publish(ctx, channel, []byte(data), "u"+strconv.Itoa(p), keep)
					if err != nil {
						t.Errorf("publish: %v", err)
						return
					}
					mu.Lock()
					acks[channel] = append(acks[channel], ack{pos, data})
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	const total = perChannel * each
	for ch := range channels {
		channel := "batch" + strconv.Itoa(ch)
		wait.For(t, "every publication of "+channel, 10*time.Second, func() bool { return len(rec.Pubs(channel)) >= total })
		got := rec.Pubs(channel)
		if len(got) != total {
			t.Fatalf("%s: %d deliveries, want %d", channel, len(got), total)
		}
		byOffset := map[uint64]string{}
		for _, a := range acks[channel] {
			if _, dup := byOffset[a.pos.Offset]; dup {
				t.Fatalf("%s: offset %d acked twice", channel, a.pos.Offset)
			}
			byOffset[a.pos.Offset] = a.data
		}
		next := map[string]int{} // publisher -> next i expected
		for i, p := range got {
			if p.Offset != uint64(i+1) || p.Epoch != got[0].Epoch {
				t.Fatalf("%s: delivery %d at %d/%s, want offset %d in one epoch", channel, i, p.Offset, p.Epoch, i+1)
			}
			if byOffset[p.Offset] != string(p.Data) {
				t.Fatalf("%s: offset %d delivered %s, acked for %s", channel, p.Offset, p.Data, byOffset[p.Offset])
			}
			var pub, n int
			if _, err := fmt.Sscanf(string(p.Data), `{"p":%d,"i":%d}`, &pub, &n); err != nil {
				t.Fatal(err)
			}
			if key := strconv.Itoa(pub); n != next[key] || p.From != "u"+key {
				t.Fatalf("%s: publisher %d's publication %d (from %q) delivered after %d", channel, pub, n, p.From, next[key])
			} else {
				next[key]++
			}
		}
		hist, cur, err := sub.History(ctx, channel, nil, 0)
		must(t, err)
		if len(hist) != keep.HistorySize || cur.Offset != total || hist[len(hist)-1].Offset != total {
			t.Fatalf("%s: history %d entries up to %d (current %d), want %d up to %d", channel, len(hist), hist[len(hist)-1].Offset, cur.Offset, keep.HistorySize, total)
		}
	}
	scripts := pa.PublishScripts() + pb.PublishScripts()
	t.Logf("%d publications in %d scripts", channels*total, scripts)
	if scripts >= channels*total {
		t.Fatalf("%d scripts for %d publications: nothing was batched", scripts, channels*total)
	}
}

// A batch whose reply arrives after the read timeout is sent again by go-redis
// (as one script, or inside a pipeline with other channels' batches): every
// publication of it is still delivered once, at the offset its Publish
// returned, and no offset is spent twice.
func TestPublishBatchRetriedAfterReadTimeoutDeliversOnce(t *testing.T) {
	// Hold the reply to a request carrying several publications (one batch
	// of several, or a pipeline of several channels' batches).
	proxy, pub, sub, rec := slowPublisher(t, func(req []byte) bool { return strings.Count(string(req), `"retried-`) >= 2 })
	ctx := context.Background()
	keep := broker.PublishOptions{HistorySize: 100, HistoryTTL: time.Minute}
	channels := []string{"retried-a", "retried-b", "retried-c"}
	for _, ch := range channels {
		must(t, sub.Subscribe(ctx, ch))
		publish(t, pub, ch, `"warm"`, keep) // loads the script
	}
	wait.For(t, "the warm-up deliveries", 5*time.Second, func() bool {
		for _, ch := range channels {
			if len(rec.Pubs(ch)) != 1 {
				return false
			}
		}
		return true
	})
	type ack struct {
		pos broker.StreamPosition
		err error
	}
	acks := map[string]ack{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	proxy.armed.Store(true)
	for i := range 30 {
		ch := channels[i%len(channels)]
		wg.Go(func() {
			data := fmt.Sprintf(`"%s-%d"`, ch, i)
			pos, err := pub.Publish(ctx, ch, []byte(data), "", keep)
			mu.Lock()
			acks[data] = ack{pos, err}
			mu.Unlock()
		})
	}
	wg.Wait()
	if proxy.held.Load() != 1 {
		t.Fatalf("the proxy held %d replies, want 1 (test setup)", proxy.held.Load())
	}
	for _, ch := range channels {
		marker := publish(t, pub, ch, `"marker"`, keep)
		got := waitLast(t, 5*time.Second, rec, ch, `"marker"`)
		seen := map[string]bool{}
		for i, p := range got {
			if p.Offset != uint64(i+1) {
				t.Fatalf("%s: delivery %d at offset %d: an offset was skipped or spent twice", ch, i, p.Offset)
			}
			if seen[string(p.Data)] {
				t.Fatalf("%s: %s delivered twice", ch, p.Data)
			}
			seen[string(p.Data)] = true
			if a, ok := acks[string(p.Data)]; ok && a.err == nil && a.pos.Offset != p.Offset {
				t.Fatalf("%s: %s delivered at %d, Publish returned %d", ch, p.Data, p.Offset, a.pos.Offset)
			}
		}
		if marker.Offset != uint64(len(got)) {
			t.Fatalf("%s: marker at %d after %d deliveries", ch, marker.Offset, len(got))
		}
	}
	for data, a := range acks {
		if a.err != nil {
			t.Logf("%s: %v (allowed: not acked)", data, a.err)
		}
	}
}

// Calls waiting behind a stalled batch whose context ends leave the queue at
// once with the context's error; the channel keeps working afterwards, in
// order.
func TestPublishQueuedCallCancelled(t *testing.T) {
	srv := redistest.Start(t)
	pub, rec := runBroker(t, node(t, srv, "pub"), redis.BrokerOptions{})
	ctx := context.Background()
	keep := broker.PublishOptions{HistorySize: 100, HistoryTTL: time.Minute}
	const ch = "cancelled"
	must(t, pub.Subscribe(ctx, ch))
	publish(t, pub, ch, `"warm"`, keep)
	// Scripts stall from the moment CLIENT PAUSE answers (WRITE mode blocks
	// every EVAL/EVALSHA), so the leader's batch is certainly waiting for
	// Redis once Publishing says it is in flight: no sleeps to guess either.
	srv.Command("CLIENT PAUSE 800 WRITE")
	var leaderErr error
	leaderDone := make(chan struct{})
	go func() { // the batch in flight: it waits for Redis whatever its context
		defer close(leaderDone)
		_, leaderErr = pub.Publish(ctx, ch, []byte(`"leader"`), "", keep)
	}()
	wait.For(t, "the leader's batch in flight", 5*time.Second, func() bool { return pub.Publishing(ch) })
	var cancelled sync.WaitGroup
	for i := range 10 {
		cancelled.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			defer cancel()
			_, err := pub.Publish(cctx, ch, []byte(fmt.Sprintf(`"queued-%d"`, i)), "", keep)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("queued publish with an expired context: %v", err)
			}
			// Returned at its deadline, not when the batch ahead of it ended.
			select {
			case <-leaderDone:
				t.Errorf("queued publish returned only after the batch in flight (the 800 ms pause) ended")
			default:
			}
		})
	}
	cancelled.Wait()
	<-leaderDone
	pos := publish(t, pub, ch, `"after"`, keep)
	got := waitLast(t, 5*time.Second, rec, ch, `"after"`)
	for i, p := range got {
		if p.Offset != uint64(i+1) || strings.HasPrefix(string(p.Data), `"queued`) {
			t.Fatalf("delivery %d: %s at %d", i, p.Data, p.Offset)
		}
	}
	if want := uint64(len(got)); pos.Offset != want {
		t.Fatalf("after the stall: offset %d, want %d (leader: %v)", pos.Offset, want, leaderErr)
	}
}
