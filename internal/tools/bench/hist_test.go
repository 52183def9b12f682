package bench

import (
	"encoding/json"
	"math"
	"testing"
	"time"
)

func TestHistogramQuantiles(t *testing.T) {
	var h Histogram
	for i := 1; i <= 10000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	for _, q := range []float64{0.5, 0.9, 0.99} {
		got, want := float64(h.Quantile(q)), q*10000*float64(time.Microsecond)
		if math.Abs(got-want)/want > 0.02 {
			t.Errorf("q%.2f = %v, want about %v", q, time.Duration(got), time.Duration(want))
		}
	}
	if h.Max() != 10*time.Millisecond || h.Count() != 10000 {
		t.Fatalf("max %v count %d", h.Max(), h.Count())
	}
	for v := int64(0); v < 1<<20; v = v*5/4 + 1 { // bucket middles stay inside their bucket
		if b := bucketOf(bucketValue(bucketOf(v))); b != bucketOf(v) {
			t.Fatalf("v %d bucket %d middle %d in bucket %d", v, bucketOf(v), bucketValue(bucketOf(v)), b)
		}
	}
	h.Record(-time.Second)
	h.Record(time.Duration(math.MaxInt64))
	if h.Count() != 10002 {
		t.Fatal("extreme values lost")
	}
}

func TestHistogramJSONAndMerge(t *testing.T) {
	var a, b Histogram
	a.Record(time.Millisecond)
	b.Record(3 * time.Millisecond)
	b.Record(5 * time.Millisecond)
	raw, err := json.Marshal(&b)
	if err != nil {
		t.Fatal(err)
	}
	var c Histogram
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	a.Merge(&c)
	if a.Count() != 3 || a.Max() != 5*time.Millisecond || a.Quantile(0.5) < 2900*time.Microsecond {
		t.Fatalf("merged count %d max %v p50 %v", a.Count(), a.Max(), a.Quantile(0.5))
	}
	for _, bad := range []string{`{"buckets":{"99999":1}}`, `{"buckets":{"x":1}}`, `{"max_ns":-1}`, `[]`} {
		var h Histogram
		if err := json.Unmarshal([]byte(bad), &h); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func TestProcParsers(t *testing.T) {
	stat := []byte("4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 12 0 100 0 0\n")
	if cpu, err := parseStatCPU(stat); err != nil || cpu != 3.25 {
		t.Fatalf("cpu %v %v", cpu, err)
	}
	if rss, err := parseVmRSS([]byte("Name:\tx\nVmRSS:\t   12345 kB\nThreads: 3\n")); err != nil || rss != 12345 {
		t.Fatalf("rss %v %v", rss, err)
	}
	if s, err := SampleProc(1 << 30); err == nil {
		t.Fatalf("missing pid sampled: %+v", s)
	}
}

func TestMessageParsing(t *testing.T) {
	if msgType([]byte(`{"type":"pong","ref":7}`)) != "pong" || msgType([]byte(`{ "type" : "ack" }`)) != "ack" || msgType([]byte(`x`)) != "" {
		t.Fatal("msgType")
	}
	if v, ok := findInt([]byte(`{"type":"pong","ref": 42}`), `"ref":`); !ok || v != 42 {
		t.Fatal("ref")
	}
	if _, ok := findInt([]byte(`{"ref":"a"}`), `"ref":`); ok {
		t.Fatal("string ref read as a number")
	}
	if v, ok := findInt([]byte(`{"payload":{"t":-5,"seq":1},"timestamp":9}`), `"t":`); !ok || v != -5 {
		t.Fatal("t")
	}
}
