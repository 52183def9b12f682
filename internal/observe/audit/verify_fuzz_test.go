package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

// FuzzParseRecord feeds arbitrary lines to the verifier's line parser: it
// must never panic, and whatever it accepts must be a JSON object ending in
// exactly the suffix its fields describe.
func FuzzParseRecord(f *testing.F) {
	zero := strings.Repeat("0", 64)
	h := sha256.Sum256([]byte("x"))
	hx := hex.EncodeToString(h[:])
	f.Add([]byte(`{"ts":"2026-01-02T03:04:05Z","event":"chain_anchor","detail":{"reason":"genesis"},"seq":1,"prev":"` + zero + `"}`))
	f.Add([]byte(`{"ts":"2026-01-02T03:04:05Z","event":"kick","conn_id":"c1","seq":2,"prev":"` + hx + `"}`))
	f.Add([]byte(`{"ts":"t","event":"checkpoint","detail":{"seq":2,"hash":"` + hx + `","key_id":"0123456789abcdef","sig":"AAAA"},"seq":3,"prev":"` + hx + `"}`))
	f.Add([]byte(`{"seq":1,"prev":"` + zero + `"}`))
	f.Add([]byte(`{"seq":01,"prev":"` + zero + `"}`))
	f.Add([]byte(`{"seq":1,"seq":2,"prev":"` + zero + `"}`))
	f.Add([]byte(`{"a":"\"seq\":1,\"prev\":\"` + zero + `\"}","seq":1,"prev":"` + strings.ToUpper(hx) + `"}`))
	f.Add([]byte(`["seq":1,"prev":"` + zero + `"}`))
	f.Add([]byte(`{"seq":18446744073709551616,"prev":"` + zero + `"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := ParseRecord(line)
		if err != nil {
			return
		}
		if !json.Valid(line) || r.Seq == 0 {
			t.Fatalf("accepted %q (seq %d)", line, r.Seq)
		}
		suffix := `"seq":` + strconv.FormatUint(r.Seq, 10) + `,"prev":"` + hex.EncodeToString(r.Prev[:]) + `"}`
		if !bytes.HasSuffix(line, []byte(suffix)) {
			t.Fatalf("accepted %q but its suffix is not %s", line, suffix)
		}
	})
}

// FuzzVerify runs the whole verifier over an arbitrary file: no panic, and a
// file it passes has only chained lines.
func FuzzVerify(f *testing.F) {
	var buf bytes.Buffer
	l, err := New(Options{Output: &buf, Chain: true, CheckpointKey: testKey(f)}, nil)
	if err != nil {
		f.Fatal(err)
	}
	l.Log(Event{Event: Kick, ConnID: "c1"})
	l.Log(Event{Event: Ban, Reason: "abuse"})
	l.Close()
	f.Add(buf.Bytes())
	f.Add(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
	f.Add([]byte("\n\n"))
	f.Add([]byte(`{"ts":"t","event":"kick"}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, _ := newVerifier(VerifyOptions{})
		if err := v.scan("audit.log", bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		if rep := v.finish("audit.log"); rep.Problem != nil {
			return
		}
		for i, ln := range bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n")) {
			if _, err := ParseRecord(ln); err != nil {
				t.Fatalf("passed a file whose line %d is not chained: %v", i+1, err)
			}
		}
	})
}
