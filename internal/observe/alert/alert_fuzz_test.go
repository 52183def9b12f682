package alert

import (
	"encoding/json"
	"testing"
	"time"
)

// FuzzObserve drives the engine with client-influenced strings (IP as
// derived from headers, event names) and arbitrary clock jumps.
func FuzzObserve(f *testing.F) {
	f.Add("auth_failure", "203.0.113.7", int64(1))
	f.Add("", "", int64(-1<<62))
	f.Add("oversize", "\xff::1%eth0", int64(1<<62))
	f.Fuzz(func(t *testing.T, event, ip string, step int64) {
		clk := newClock()
		e, err := New(Options{Now: clk.Now, MaxIPs: 32, Rules: []Rule{
			{Name: "a", Event: EventAuthFailure, Threshold: 2, PerIP: true},
			{Name: "b", Event: EventOversize, Threshold: 2},
		}})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			e.Observe(event, ip)
			e.Observe(EventAuthFailure, ip+string(rune('a'+i)))
			clk.Advance(time.Duration(step))
		}
		for _, a := range e.Recent(10) {
			if _, err := json.Marshal(a); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func BenchmarkObserve(b *testing.B) {
	e, _ := New(Options{Rules: []Rule{
		{Name: "a", Event: EventAuthFailure, Threshold: 1 << 30, PerIP: true},
		{Name: "b", Event: EventAuthFailure, Threshold: 1 << 30},
	}})
	ips := []string{"203.0.113.1", "203.0.113.2", "198.51.100.7", "192.0.2.44"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			e.Observe(EventAuthFailure, ips[i%len(ips)])
			i++
		}
	})
}
