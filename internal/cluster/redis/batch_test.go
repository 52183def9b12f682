package redis_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/broker"
	"github.com/wsgate/wsgate/internal/cluster/redis"
	"github.com/wsgate/wsgate/internal/cluster/redis/redistest"
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
		waitFor(t, 10*time.Second, "every publication of "+channel, func() bool { return len(rec.got(channel)) >= total })
		got := rec.got(channel)
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
