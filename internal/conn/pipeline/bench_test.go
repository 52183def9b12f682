package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/conn/protocol"
	"github.com/wsgate/wsgate/internal/state/limit"
)

func BenchmarkProcessChat1K(b *testing.B) {
	benchProcessChat1K(b, Options{})
}

// benchProcessChat1K measures Process on a 1 KiB chat message through a
// pipeline built with opts.
func benchProcessChat1K(b *testing.B, opts Options) {
	p := newTestPipeline(b, opts)
	st := &ConnState{ConnID: "c1", User: "u1", IP: "192.0.2.1"}
	msg := []byte(chatMessage(1024))
	ctx := context.Background()
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, rej := p.Process(ctx, st, msg); rej != nil {
			b.Fatal(rej)
		}
	}
}

func BenchmarkProcessChat1KRateLimited(b *testing.B) {
	// Budgets high enough never to refuse: the benchmark measures their cost. (The
	// default tier's 40-message connection burst used to end it with rate_limited.)
	benchProcessChat1K(b, Options{Limiter: &fakeLimiter{allow: map[string]int{"pl:": 1 << 62}}, Tiers: neverLimited()})
}

// neverLimited is a default tier whose budgets are high enough never to refuse.
func neverLimited() map[string]Tier {
	big := limit.Limit{Rate: 1e12, Burst: 1 << 40}
	return map[string]Tier{DefaultTierName: {Messages: big, Bytes: big, UserMessages: big, UserBytes: big, IPMessages: big, IPBytes: big}}
}

func BenchmarkScanChat1K(b *testing.B) { benchScan(b, chatMessage(1024)) }

func BenchmarkScanNested(b *testing.B) {
	benchScan(b, `{"type":"publish","channel":"a","payload":{"items":[`+strings.Repeat(`{"k":"v","n":12.5,"ok":true},`, 30)+`null],"meta":{"a":{"b":{"c":[1,2,3]}}}}}`)
}

// benchScan measures the structure scan of msg, which must pass.
func benchScan(b *testing.B, msg string) {
	s := newScanner(testLimits)
	data := []byte(msg)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, f, _ := s.scan(data); f != scanOK {
			b.Fatal(f)
		}
	}
}

// BenchmarkDeepReject: 20,000 bytes of '[' (inside a 32 KiB route limit) refused by
// the depth limit.
func BenchmarkDeepReject(b *testing.B) {
	p := newTestPipeline(b, Options{MaxBytes: 32 << 10})
	st := &ConnState{ConnID: "c1"}
	msg := bytes.Repeat([]byte("["), 20000)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, rej := p.Process(ctx, st, msg); rej == nil || rej.Code != protocol.CodeLimitExceeded {
			b.Fatal(rej)
		}
	}
}

func BenchmarkDecodeChat1K(b *testing.B) {
	msg := []byte(chatMessage(1024))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeValue(msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeChat1KEncodingJSON is the alternative decodeValue replaces.
func BenchmarkDecodeChat1KEncodingJSON(b *testing.B) {
	msg := []byte(chatMessage(1024))
	b.ReportAllocs()
	for b.Loop() {
		d := json.NewDecoder(bytes.NewReader(msg))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeError(b *testing.B) {
	r := &protocol.Error{Code: protocol.CodeInvalidMessage, Message: "expected string, got number", Path: "/payload/text"}
	ref := []byte(`"req-1"`)
	b.ReportAllocs()
	for b.Loop() {
		EncodeError(r, ref)
	}
}

// BenchmarkFastValidateChat1K is the schema stage alone on the fast path.
func BenchmarkFastValidateChat1K(b *testing.B) {
	reg := newTestPipeline(b, Options{}).Registry()
	sch, _ := reg.Lookup("chat")
	msg := []byte(chatMessage(1024))
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if !sch.Accepts(msg) {
			b.Fatal("not accepted")
		}
	}
}

// nopVerifier is the server's Verifier for a connection without integrity state
// and an unsigned message: it looks and lets the message through.
type nopVerifier struct{}

func (nopVerifier) Open(context.Context, *ConnState, *Message) error { return nil }

// BenchmarkProcessPing is the pipeline as the server runs it for a ping
// (bench/wsgate-bench.yaml; see pingPath). The goal is no allocation.
func BenchmarkProcessPing(b *testing.B) {
	ping := pingPath(b)
	b.ReportAllocs()
	for b.Loop() {
		ping()
	}
}

// pingPath returns a func that runs one accepted ping through a pipeline built
// as the server builds it (shared in-memory limiter whose budgets never refuse,
// a Verifier, the owner's clock read in st.Now).
func pingPath(tb testing.TB) func() {
	lim := limit.NewMemory(limit.MemoryOptions{SweepInterval: -1})
	tb.Cleanup(func() { _ = lim.Close() })
	p := newTestPipeline(tb, Options{Limiter: lim, Tiers: neverLimited(), Verifier: nopVerifier{}})
	st := &ConnState{ConnID: "c1", User: "bench-1", IP: "127.0.0.1"}
	msg := []byte(`{"type":"ping","id":12345}`)
	ctx := context.Background()
	return func() {
		st.Now = time.Now()
		if _, rej := p.Process(ctx, st, msg); rej != nil {
			tb.Fatal(rej)
		}
	}
}

// TestProcessPingNoAlloc: an accepted ping through the pipeline as the server
// builds it (shared limiter, a Verifier) allocates nothing.
func TestProcessPingNoAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector")
	}
	ping := pingPath(t)
	ping() // the limiter's keys, built once per connection
	if n := testing.AllocsPerRun(1000, ping); n != 0 {
		t.Errorf("an accepted ping allocates %.1f times", n)
	}
}
