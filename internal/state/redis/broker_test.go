package redis_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/state/broker"
	"github.com/wsgate/wsgate/internal/state/broker/brokertest"
	"github.com/wsgate/wsgate/internal/state/redis"
	"github.com/wsgate/wsgate/internal/state/redis/redistest"
)

func TestBrokerConformance(t *testing.T) {
	srv := redistest.Start(t)
	brokertest.Run(t, func(t *testing.T) broker.Broker {
		b, err := node(t, srv, "n1").Broker(redis.BrokerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}

// TestBrokerHistoryTrimSlack: the stream is trimmed in steps (at most
// min(size, 100) entries beyond the history size), while History shows exactly
// the last size publications, also when the size changes.
func TestBrokerHistoryTrimSlack(t *testing.T) {
	srv := redistest.Start(t)
	c := node(t, srv, "n1")
	b, err := c.Broker(redis.BrokerOptions{})
	must(t, err)
	ctx := context.Background()
	stream := "test:" + t.Name() + ":ch:{slack}:h"
	for _, size := range []int{5, 300, 3} {
		opts := broker.PublishOptions{HistorySize: size, HistoryTTL: time.Hour}
		for i := range 2*size + 150 {
			pos := publish(t, b, "slack", strconv.Itoa(i), opts)
			n, err := c.Redis().XLen(ctx, stream).Result()
			must(t, err)
			if n > int64(size+min(size, 100)) {
				t.Fatalf("size %d: stream holds %d entries after offset %d", size, n, pos.Offset)
			}
			pubs, cur, err := b.History(ctx, "slack", nil, 0)
			must(t, err)
			if len(pubs) > size || pubs[len(pubs)-1].Offset != cur.Offset {
				t.Fatalf("size %d: history has %d publications ending at %d, current %d", size, len(pubs), pubs[len(pubs)-1].Offset, cur.Offset)
			}
			if i < size { // entries from before a larger size are gone
				continue
			}
			if len(pubs) != size {
				t.Fatalf("size %d: history has %d publications at offset %d", size, len(pubs), cur.Offset)
			}
			since := broker.StreamPosition{Epoch: cur.Epoch, Offset: cur.Offset - uint64(size)}
			if got, _, err := b.History(ctx, "slack", &since, 0); err != nil || len(got) != size {
				t.Fatalf("size %d: recovery from %d: %d publications, %v", size, since.Offset, len(got), err)
			}
			since.Offset--
			if _, _, err := b.History(ctx, "slack", &since, 0); !errors.Is(err, broker.ErrRecoveryFailed) {
				t.Fatalf("size %d: recovery from %d (before history): %v, want ErrRecoveryFailed", size, since.Offset, err)
			}
		}
	}
}

// TestBrokerDoneFieldsPruned: a channel's meta keeps one done field per
// publishing broker; those of brokers gone for longer than the dedup window
// are dropped once they pile up, those of live brokers stay.
func TestBrokerDoneFieldsPruned(t *testing.T) {
	srv := redistest.Start(t)
	c := node(t, srv, "n1")
	ctx := context.Background()
	keep := broker.PublishOptions{HistorySize: 10, HistoryTTL: time.Hour}
	b1, err := c.Broker(redis.BrokerOptions{})
	must(t, err)
	publish(t, b1, "prune", "1", keep)
	meta := "test:" + t.Name() + ":ch:{prune}:m"
	old := time.Now().Add(-time.Hour).UnixMilli()
	for i := range 40 {
		must(t, c.Redis().HSet(ctx, meta, "d:gone"+strconv.Itoa(i), "x,1,e,"+strconv.FormatInt(old, 10)).Err())
	}
	b2, err := c.Broker(redis.BrokerOptions{})
	must(t, err)
	publish(t, b2, "prune", "2", keep)
	fields, err := c.Redis().HKeys(ctx, meta).Result()
	must(t, err)
	var done int
	for _, f := range fields {
		if strings.HasPrefix(f, "d:") {
			done++
			if strings.HasPrefix(f, "d:gone") {
				t.Fatalf("stale field %s kept: %v", f, fields)
			}
		}
	}
	if done != 2 {
		t.Fatalf("%d done fields, want the two live brokers': %v", done, fields)
	}
}
