package encrypt_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/state/broker"
	"github.com/wsgate/wsgate/internal/state/broker/brokertest"
	"github.com/wsgate/wsgate/internal/state/encrypt"
	"github.com/wsgate/wsgate/internal/state/redis"
	"github.com/wsgate/wsgate/internal/state/redis/redistest"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/bgrun"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/wait"
)

func keyring(t testing.TB, keys ...encrypt.Key) *encrypt.Keyring {
	t.Helper()
	r, err := encrypt.NewKeyring(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func key(id string, fill byte) encrypt.Key {
	return encrypt.Key{ID: id, Secret: bytes.Repeat([]byte{fill}, 32)}
}

// The suite's channels are "brokertest:…": that namespace is sealed.
func suitePolicy(t testing.TB) *encrypt.Policy {
	return &encrypt.Policy{Keyring: keyring(t, key("k1", 1)), Namespaces: map[string]bool{"brokertest": true}}
}

func TestConformanceMemory(t *testing.T) {
	brokertest.Run(t, func(t *testing.T) broker.Broker {
		return encrypt.NewBroker(broker.NewMemory(broker.MemoryOptions{SweepInterval: 20 * time.Millisecond}), suitePolicy(t))
	})
}

func TestConformanceRedis(t *testing.T) {
	srv := redistest.Start(t)
	brokertest.Run(t, func(t *testing.T) broker.Broker {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := redis.New(ctx, redis.Options{Addrs: []string{srv.Addr()}, NodeID: "n1", Prefix: "test:" + t.Name() + ":"})
		if err != nil {
			t.Fatalf("redis.New: %v", err)
		}
		t.Cleanup(func() { _ = c.Close() })
		b, err := c.Broker(redis.BrokerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return encrypt.NewBroker(b, suitePolicy(t))
	})
}

var keep = broker.PublishOptions{HistorySize: 100, HistoryTTL: time.Hour}

func run(t *testing.T, b broker.Broker) *brokertest.Recorder {
	t.Helper()
	rec := brokertest.NewRecorder()
	bgrun.Start(t, func(ctx context.Context) error { return b.Run(ctx, rec) })
	return rec
}

// secNamespace is the encrypted namespace of the tests below.
var secNamespace = map[string]bool{"sec": true}

// sealedSec is an encrypting broker over a memory broker (returned too, to
// read or inject what the inner broker holds) that seals the "sec" namespace
// under key k1.
func sealedSec(t *testing.T) (*broker.Memory, *encrypt.Broker) {
	t.Helper()
	mem := broker.NewMemory(broker.MemoryOptions{})
	return mem, encrypt.NewBroker(mem, &encrypt.Policy{Keyring: keyring(t, key("k1", 1)), Namespaces: secNamespace})
}

func TestInnerHoldsOnlyCiphertext(t *testing.T) {
	ctx := context.Background()
	mem, b := sealedSec(t)
	secret := []byte(`{"order":"SECRET-ORDER-42"}`)
	if _, err := b.Publish(ctx, "sec:a", secret, "u1", keep); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Publish(ctx, "open:a", []byte(`{"plain":true}`), "u1", keep); err != nil {
		t.Fatal(err)
	}
	raw, _, err := mem.History(ctx, "sec:a", nil, 0)
	if err != nil || len(raw) != 1 {
		t.Fatalf("inner history: %v, %d", err, len(raw))
	}
	if bytes.Contains(raw[0].Data, []byte("SECRET")) || !encrypt.IsSealed(raw[0].Data) {
		t.Fatalf("inner broker holds %q", raw[0].Data)
	}
	rawOpen, _, _ := mem.History(ctx, "open:a", nil, 0)
	if string(rawOpen[0].Data) != `{"plain":true}` {
		t.Fatalf("unencrypted namespace was changed: %q", rawOpen[0].Data)
	}
	got, _, err := b.History(ctx, "sec:a", nil, 0)
	if err != nil || len(got) != 1 || !bytes.Equal(got[0].Data, secret) {
		t.Fatalf("decorated history = %v, %v", got, err)
	}
}

// A key removed from the configuration: recovery over what it sealed fails with
// ErrRecoveryFailed, the latest-history view skips it, nothing garbled comes out.
func TestKeyRemoved(t *testing.T) {
	ctx := context.Background()
	_, b := sealedSec(t)
	p1, err := b.Publish(ctx, "sec:a", []byte(`1`), "", keep)
	if err != nil {
		t.Fatal(err)
	}
	// Rotate: k2 seals, k1 still opens; nothing is lost.
	b.SetPolicy(&encrypt.Policy{Keyring: keyring(t, key("k2", 2), key("k1", 1)), Namespaces: secNamespace})
	if _, err := b.Publish(ctx, "sec:a", []byte(`2`), "", keep); err != nil {
		t.Fatal(err)
	}
	since := broker.StreamPosition{Epoch: p1.Epoch}
	got, _, err := b.History(ctx, "sec:a", &since, 0)
	if err != nil || len(got) != 2 || string(got[0].Data) != "1" || string(got[1].Data) != "2" {
		t.Fatalf("after rotation: %v, %v", got, err)
	}
	// Retire k1.
	b.SetPolicy(&encrypt.Policy{Keyring: keyring(t, key("k2", 2)), Namespaces: secNamespace})
	got, pos, err := b.History(ctx, "sec:a", &since, 0)
	if !errors.Is(err, broker.ErrRecoveryFailed) || got != nil {
		t.Fatalf("recovery over a removed key = %v, %v; want ErrRecoveryFailed", got, err)
	}
	if pos.Offset != 2 || pos.Epoch != p1.Epoch {
		t.Fatalf("ErrRecoveryFailed without the current position: %+v", pos)
	}
	// From offset 1 on, everything is under k2: recovery works.
	got, _, err = b.History(ctx, "sec:a", &broker.StreamPosition{Offset: 1, Epoch: p1.Epoch}, 0)
	if err != nil || len(got) != 1 || string(got[0].Data) != "2" {
		t.Fatalf("recovery after the retired entries: %v, %v", got, err)
	}
	got, _, err = b.History(ctx, "sec:a", nil, 0)
	if err != nil || len(got) != 1 || string(got[0].Data) != "2" {
		t.Fatalf("latest history with a retired key: %v, %v", got, err)
	}
}

// Deliveries that do not open (plaintext injected into an encrypted namespace,
// a key this node lacks) are dropped, not handed on.
func TestDeliveryRefusesWhatDoesNotOpen(t *testing.T) {
	ctx := context.Background()
	mem, b := sealedSec(t)
	rec := run(t, b)
	if err := b.Subscribe(ctx, "sec:a"); err != nil {
		t.Fatal(err)
	}
	// Run registers asynchronously: publish good messages until one arrives.
	wait.For(t, "the first delivery", 10*time.Second, func() bool {
		if _, err := b.Publish(ctx, "sec:a", []byte(`"probe"`), "", broker.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
		return len(rec.Pubs("sec:a")) > 0
	})
	before := b.Dropped()
	// Written behind the decorator's back, as a Redis writer could.
	if _, err := mem.Publish(ctx, "sec:a", []byte(`"injected"`), "", broker.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	foreign := keyring(t, key("k9", 9))
	env, _, _ := foreign.Seal("sec:a", []byte(`"foreign"`))
	if _, err := mem.Publish(ctx, "sec:a", env, "", broker.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Publish(ctx, "sec:a", []byte(`"last"`), "", broker.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	wait.For(t, "the last publication", 10*time.Second, func() bool {
		got := rec.Pubs("sec:a")
		return string(got[len(got)-1].Data) == `"last"`
	})
	for _, p := range rec.Pubs("sec:a") {
		if s := string(p.Data); s != `"probe"` && s != `"last"` {
			t.Errorf("handed on %q", p.Data)
		}
	}
	if d := b.Dropped() - before; d != 2 {
		t.Errorf("dropped %d, want 2", d)
	}
}

func BenchmarkPublish(b *testing.B) {
	payload := []byte(`{"symbol":"EURUSD","price":1.08421,"qty":250000,"side":"buy","trader":"t-1029","ts":1765000000000}`)
	for _, mode := range []string{"off", "at_rest"} {
		b.Run(mode, func(b *testing.B) {
			var br broker.Broker = broker.NewMemory(broker.MemoryOptions{})
			if mode == "at_rest" {
				br = encrypt.NewBroker(br, &encrypt.Policy{Keyring: keyring(b, key("k1", 1)), Namespaces: map[string]bool{"trades": true}})
			}
			ctx := context.Background()
			opts := broker.PublishOptions{HistorySize: 100, HistoryTTL: time.Minute}
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := br.Publish(ctx, "trades:eurusd", payload, "u1", opts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkPublishRedis(b *testing.B) {
	srv := redistest.Start(b)
	payload := []byte(`{"symbol":"EURUSD","price":1.08421,"qty":250000,"side":"buy","trader":"t-1029","ts":1765000000000}`)
	for _, mode := range []string{"off", "at_rest"} {
		b.Run(mode, func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			c, err := redis.New(ctx, redis.Options{Addrs: []string{srv.Addr()}, NodeID: "bench", Prefix: "bench:" + mode + ":"})
			cancel()
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			rb, err := c.Broker(redis.BrokerOptions{})
			if err != nil {
				b.Fatal(err)
			}
			var br broker.Broker = rb
			if mode == "at_rest" {
				br = encrypt.NewBroker(br, &encrypt.Policy{Keyring: keyring(b, key("k1", 1)), Namespaces: map[string]bool{"trades": true}})
			}
			opts := broker.PublishOptions{HistorySize: 100, HistoryTTL: time.Minute}
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := br.Publish(context.Background(), "trades:eurusd", payload, "u1", opts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	r := keyring(b, key("k1", 1))
	env, _, _ := r.Seal("trades:eurusd", []byte(`{"symbol":"EURUSD","price":1.08421,"qty":250000,"side":"buy","trader":"t-1029","ts":1765000000000}`))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := r.Open("trades:eurusd", env); err != nil {
			b.Fatal(err)
		}
	}
}
