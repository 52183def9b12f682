package audit

import (
	"path/filepath"
	"testing"

	"github.com/wsgate/wsgate/internal/redact"
)

// BenchmarkAuditEvent is the whole cost of one audited event on one
// goroutine: redaction, JSON encoding, (chain: seq/prev suffix and SHA-256;
// signed: its share of a checkpoint every DefaultCheckpointEvery records),
// and the buffered write to a real file, flushed every 64 events as the
// writer does for a burst. Rotation is off (100 MiB files, rotated as
// needed). Compare the sub-benchmarks of one run: docs/benchmarks.md.
func BenchmarkAuditEvent(b *testing.B) {
	r := redact.New(redact.Options{})
	r.Add("tkt-0123456789abcdef")
	ev := Event{Event: HandshakeRejected, ConnID: "c-0123456789", IP: "203.0.113.9", User: "alice",
		Route: "/ws", Reason: "origin", Status: 403, Detail: map[string]any{"origin": "https://evil.example"}}
	for _, bc := range []struct {
		name string
		o    Options
	}{
		{"chain=off", Options{}},
		{"chain=on", Options{Chain: true}},
		{"chain=signed", Options{Chain: true, CheckpointKey: testKey(b), CheckpointInterval: -1}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			o := bc.o
			o.Path = filepath.Join(b.TempDir(), "audit.log")
			l, err := newLogger(o, r)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				line, err := l.encode(ev)
				if err != nil {
					b.Fatal(err)
				}
				l.write(line)
				if i++; i%64 == 0 {
					l.flush()
				}
			}
			b.StopTimer()
			l.flush()
			if s := l.Stats(); s.Errors != 0 || s.Written != uint64(i) {
				b.Fatalf("stats %+v after %d events", s, i)
			}
			_ = l.file.Close()
		})
	}
}

// BenchmarkChainLink is the chain's own work per record in isolation: the
// seq/prev suffix and one SHA-256 over a typical 230-byte line.
func BenchmarkChainLink(b *testing.B) {
	line := []byte(`{"ts":"2026-01-02T03:04:05.000006Z","event":"handshake_rejected","conn_id":"c-0123456789","ip":"203.0.113.9","user":"alice","route":"/ws","reason":"origin","status":403,"detail":{"origin":"https://evil.example"}}` + "\n")
	c := &chain{}
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		if _, err := c.link(line); err != nil {
			b.Fatal(err)
		}
	}
}
