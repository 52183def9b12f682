package audit

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/observe/redact"
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
			cpu0 := processCPU(b)
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
			l.flush()
			b.StopTimer()
			// The machine is shared: CPU time per event is steadier than
			// wall time, which includes waiting for a core.
			b.ReportMetric(float64(processCPU(b)-cpu0)/float64(i), "cpu-ns/op")
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
	cpu0 := processCPU(b)
	for b.Loop() {
		if _, err := c.link(line); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(processCPU(b)-cpu0)/float64(c.seq), "cpu-ns/op")
}

// BenchmarkCheckpoint is one signed checkpoint record (Ed25519 signature
// and encoding); it is paid once per CheckpointEvery records or interval.
func BenchmarkCheckpoint(b *testing.B) {
	c := &chain{key: testKey(b)}
	c.keyID = KeyID(pub(c.key))
	now := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	b.ReportAllocs()
	cpu0 := processCPU(b)
	n := 0
	for b.Loop() {
		if _, _, err := c.checkpointRecord(now); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(processCPU(b)-cpu0)/float64(n), "cpu-ns/op")
}

// processCPU is the process's user+system CPU time.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkVerify is the verifier's throughput over a signed 10,000-record
// file (what `wsgate audit verify` costs per MiB of log).
func BenchmarkVerify(b *testing.B) {
	key := testKey(b)
	path := filepath.Join(b.TempDir(), "audit.log")
	l, err := New(Options{Path: path, Chain: true, CheckpointKey: key, CheckpointEvery: 1000, QueueSize: 20000}, nil)
	if err != nil {
		b.Fatal(err)
	}
	for range 10000 {
		l.Log(Event{Event: HandshakeRejected, ConnID: "c-0123456789", IP: "203.0.113.9", User: "alice",
			Route: "/ws", Reason: "origin", Status: 403, Detail: map[string]any{"origin": "https://evil.example"}})
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(st.Size())
	cpu0 := processCPU(b)
	records, runs := 0, 0
	for b.Loop() {
		rep, err := Verify([]string{path}, VerifyOptions{PublicKeys: []ed25519.PublicKey{pub(key)}})
		if err != nil || rep.Problem != nil || rep.Records < 10000 {
			b.Fatalf("verify: %v %+v", err, rep)
		}
		records += rep.Records
		runs++
	}
	cpu := processCPU(b) - cpu0
	b.ReportMetric(float64(cpu)/float64(records), "cpu-ns/record")
	b.ReportMetric(float64(st.Size())*float64(runs)/cpu.Seconds()/1e6, "cpu-MB/s")
}
