package session

import (
	"context"
	"net/netip"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/conn/outbox"
	"github.com/wsgate/wsgate/internal/conn/pipeline"
	"github.com/wsgate/wsgate/internal/conn/protocol"
	"github.com/wsgate/wsgate/internal/conn/transport"
	"github.com/wsgate/wsgate/internal/edge/auth"
	"github.com/wsgate/wsgate/internal/observe/metrics"
	"github.com/wsgate/wsgate/internal/state/limit"
)

// benchObserver does for a message what the server's observer does for an
// accepted one (internal/server/observe.go, audit off): the metrics.
type benchObserver struct{ m *metrics.Metrics }

func (o benchObserver) Message(s *Session, typ string, data []byte, rej *protocol.Error, took time.Duration) {
	if rej == nil {
		o.m.ClientMessage(s.ID(), typ, "accepted", len(data), took)
		return
	}
	o.m.ClientMessage(s.ID(), typ, rej.Code, len(data), took)
}
func (o benchObserver) Sent(s *Session, n int)        { o.m.SentTo(s.ID(), n) }
func (benchObserver) Strike(*Session, string, bool)   {}
func (benchObserver) Closed(*Session, uint16, string) {}

// benchVerifier is the server's Verifier for a connection without integrity
// state: the server always has one.
type benchVerifier struct{}

func (benchVerifier) Open(context.Context, *pipeline.ConnState, *pipeline.Message) error { return nil }

// BenchmarkOnMessagePing is the session's per-message path for a ping with
// the full pipeline as bench/wsgate-bench.yaml configures it (shared in-memory
// limiter with budgets that never refuse, a Verifier, the metrics observer)
// and the pong written inline, to a writer that drops it: everything but the
// transport. The goal is no allocation.
func BenchmarkOnMessagePing(b *testing.B) {
	newPing := pingSessions(b)
	ping := newPing()
	b.ReportAllocs()
	for b.Loop() {
		ping()
	}
}

// BenchmarkOnMessagePingParallel is BenchmarkOnMessagePing on every core at
// once, one session per goroutine (distinct users, one IP, as bench/compare.sh
// connects): what is shared between connections (limiter, metrics) shows up.
// CPU per message is ns/op × GOMAXPROCS.
func BenchmarkOnMessagePingParallel(b *testing.B) {
	newPing := pingSessions(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ping := newPing()
		for pb.Next() {
			ping()
		}
	})
}

// pingSessions returns a constructor of sessions sharing one pipeline and one
// metrics registry; each comes as a func that hands it one ping.
func pingSessions(b *testing.B) func() func() {
	lim := limit.NewMemory(limit.MemoryOptions{SweepInterval: -1})
	b.Cleanup(func() { _ = lim.Close() })
	big := limit.Limit{Rate: 1e12, Burst: 1 << 40}
	p, err := pipeline.New(pipeline.Options{Limiter: lim, Verifier: benchVerifier{}, Tiers: map[string]pipeline.Tier{
		pipeline.DefaultTierName: {Messages: big, Bytes: big, UserMessages: big, UserBytes: big, IPMessages: big, IPBytes: big}}})
	if err != nil {
		b.Fatal(err)
	}
	m := metrics.New()
	m.SetKnownTypes(protocol.ClientTypes)
	var n atomic.Int64
	return func() func() {
		s := New(Params{ID: NewID(), IP: netip.MustParseAddr("127.0.0.1"),
			Identity: auth.Identity{Subject: "bench-" + strconv.FormatInt(n.Add(1), 10)}},
			&Options{}, &Deps{Pipeline: p, Observer: benchObserver{m}})
		// As Attach's writer, less the socket.
		s.out = outbox.NewOp(outbox.Options{}, func(_ transport.Opcode, b []byte) error { s.sent(len(b)); return nil }, nil)
		msg := []byte(`{"type":"ping","id":12345}`)
		b.Cleanup(func() {
			if st := s.Stats(); st.MessagesOut != st.MessagesIn {
				b.Errorf("%d pongs for %d pings", st.MessagesOut, st.MessagesIn)
			}
		})
		return func() { s.OnMessage(nil, transport.Text, msg) }
	}
}
