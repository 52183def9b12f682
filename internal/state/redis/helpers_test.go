package redis_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wsgate/wsgate/internal/state/broker"
	"github.com/wsgate/wsgate/internal/state/broker/brokertest"
	"github.com/wsgate/wsgate/internal/state/redis"
	"github.com/wsgate/wsgate/internal/state/redis/redistest"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/wait"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// node connects a Client named id to srv and closes it when t ends.
func node(t testing.TB, srv *redistest.Server, id string, mod ...func(*redis.Options)) *redis.Client {
	t.Helper()
	opts := redis.Options{Addrs: []string{srv.Addr()}, NodeID: id, Prefix: "test:" + t.Name() + ":"}
	for _, f := range mod {
		f(&opts)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := redis.New(ctx, opts)
	if err != nil {
		t.Fatalf("redis.New: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// waitLast waits up to d until the last publication rec got on ch carries data
// (a marker published after what a test checks: once it is in, everything
// before it is) and returns every publication rec got on ch.
func waitLast(t testing.TB, d time.Duration, rec *brokertest.Recorder, ch, data string) []broker.Publication {
	t.Helper()
	wait.For(t, data+" last on "+ch, d, func() bool {
		got := rec.Pubs(ch)
		return len(got) > 0 && string(got[len(got)-1].Data) == data
	})
	return rec.Pubs(ch)
}

// admit acquires one connection of key on q under max, failing t unless it is
// granted.
func admit(t testing.TB, q *redis.QuotaStore, key string, max int) {
	t.Helper()
	if ok, err := q.Acquire(context.Background(), key, max); !ok || err != nil {
		t.Fatal(ok, err)
	}
}

// publish publishes data on ch through b, failing t on an error, and returns
// the acked position.
func publish(t testing.TB, b broker.Broker, ch, data string, keep broker.PublishOptions) broker.StreamPosition {
	t.Helper()
	pos, err := b.Publish(context.Background(), ch, []byte(data), "", keep)
	must(t, err)
	return pos
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
