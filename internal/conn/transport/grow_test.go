package transport

import "testing"

// TestGrowIsAmortized: assembling a message from many small fragments
// reallocates a logarithmic number of times, never past the message bound
// while the bound is enough, and keeps what was assembled.
func TestGrowIsAmortized(t *testing.T) {
	const frag, n, limit = 64, 20480, 20480 * 64
	var msg []byte
	grows := 0
	for i := range n {
		if cap(msg)-len(msg) < frag {
			msg = grow(msg, frag, limit)
			grows++
		}
		start := len(msg)
		msg = msg[:start+frag]
		for j := range frag {
			msg[start+j] = byte(i + j)
		}
	}
	if len(msg) != n*frag || cap(msg) > limit {
		t.Fatalf("len %d cap %d, want %d and cap <= %d", len(msg), cap(msg), n*frag, limit)
	}
	if grows > 20 {
		t.Fatalf("%d reallocations for %d fragments: growth is not amortized", grows, n)
	}
	for i := range n {
		if msg[i*frag] != byte(i) {
			t.Fatalf("fragment %d lost: %d", i, msg[i*frag])
		}
	}
	// Without a bound (limit 0), and when the bound is less than needed.
	if m := grow(make([]byte, 10), 5, 0); len(m) != 10 || cap(m) < 20 {
		t.Fatalf("unbounded grow: len %d cap %d", len(m), cap(m))
	}
	if m := grow(make([]byte, 10), 5, 12); cap(m) < 15 {
		t.Fatalf("grow below need: cap %d", cap(m))
	}
}
