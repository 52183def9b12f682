package bench

import (
	"encoding/json"
	"testing"
)

// Server messages are untrusted input to the client: parsing must never panic.
func FuzzServerMessage(f *testing.F) {
	for _, s := range []string{`{"type":"pong","ref":1}`, `{"type":"message","payload":{"t":123}}`, `{"type":"welcome","conn_id":"c-1"}`, `"conn_id": "a\\"b"`, `{"type":"`, `"ref":-`, `"t":99999999999999999999999`, ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = msgType(b)
		_, _ = findInt(b, `"ref":`)
		_, _ = findInt(b, `"t":`)
		if v, ok := findString(b, `"conn_id":`); ok && len(v) > 256 {
			t.Fatalf("conn id of %d bytes", len(v))
		}
	})
}

// Child processes' output and /proc files are parsed too.
func FuzzParsers(f *testing.F) {
	f.Add([]byte(`{"max_ns":5,"buckets":{"3":1}}`))
	f.Add([]byte("1 (x) S 1 1 1 0 -1 0 0 0 0 0 1 2 0"))
	f.Add([]byte("VmRSS: 12 kB"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var h Histogram
		if json.Unmarshal(b, &h) == nil {
			_ = h.Quantile(0.99)
		}
		_, _ = parseStatCPU(b)
		_, _ = parseVmRSS(b)
		var m childMsg
		_ = json.Unmarshal(b, &m)
	})
}
