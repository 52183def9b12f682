package session

import (
	"context"
	"net/netip"
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

func (o benchObserver) Message(_ *Session, typ string, data []byte, rej *protocol.Error, took time.Duration) {
	o.m.BytesReceived(len(data))
	o.m.ObservePipeline(took)
	if rej == nil {
		o.m.Message(typ, "accepted")
		return
	}
	o.m.Message(typ, rej.Code)
}
func (o benchObserver) Sent(_ *Session, n int)        { o.m.BytesSent(n) }
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
	lim := limit.NewMemory(limit.MemoryOptions{SweepInterval: -1})
	defer lim.Close()
	big := limit.Limit{Rate: 1e12, Burst: 1 << 40}
	p, err := pipeline.New(pipeline.Options{Limiter: lim, Verifier: benchVerifier{}, Tiers: map[string]pipeline.Tier{
		pipeline.DefaultTierName: {Messages: big, Bytes: big, UserMessages: big, UserBytes: big, IPMessages: big, IPBytes: big}}})
	if err != nil {
		b.Fatal(err)
	}
	m := metrics.New()
	m.SetKnownTypes(protocol.ClientTypes)
	s := New(Params{ID: NewID(), IP: netip.MustParseAddr("127.0.0.1"), Route: "/ws", Identity: auth.Identity{Subject: "bench-1"}},
		Options{}, Deps{Pipeline: p, Observer: benchObserver{m}})
	// As Attach's writer, less the socket.
	s.out = outbox.NewOp(outbox.Options{}, func(_ transport.Opcode, b []byte) error { s.sent(len(b)); return nil }, nil)
	msg := []byte(`{"type":"ping","id":12345}`)
	b.ReportAllocs()
	for b.Loop() {
		s.OnMessage(nil, transport.Text, msg)
	}
	if st := s.Stats(); st.MessagesOut != st.MessagesIn {
		b.Fatalf("%d pongs for %d pings", st.MessagesOut, st.MessagesIn)
	}
}
