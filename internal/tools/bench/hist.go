package bench

import (
	"encoding/json"
	"fmt"
	"math/bits"
	"strconv"
	"sync/atomic"
	"time"
)

// The histogram is log-linear: exact below 128 ns, then 64 buckets per power
// of two (relative error under 1.6 %). It is mergeable, so child processes can
// ship it to the parent and percentiles stay exact to the bucket.
const (
	histSub     = 64
	histBuckets = 64 * 36 // up to about 2^40 ns (18 minutes)
)

// Histogram counts durations. It is safe for concurrent use (atomic adds).
type Histogram struct {
	counts [histBuckets]atomic.Uint64
	max    atomic.Int64
}

func bucketOf(v int64) int {
	if v < 2*histSub {
		if v < 0 {
			return 0
		}
		return int(v)
	}
	e := bits.Len64(uint64(v)) - 7
	i := histSub*e + int(v>>uint(e))
	if i >= histBuckets {
		return histBuckets - 1
	}
	return i
}

// bucketValue is the middle of bucket i in nanoseconds.
func bucketValue(i int) int64 {
	if i < 2*histSub {
		return int64(i)
	}
	e := i/histSub - 1
	m := int64(i - histSub*e)
	lo := m << uint(e)
	return lo + (int64(1)<<uint(e))/2
}

// Record adds one duration.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	h.counts[bucketOf(v)].Add(1)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// Count is the number of recorded durations.
func (h *Histogram) Count() uint64 {
	var n uint64
	for i := range h.counts {
		n += h.counts[i].Load()
	}
	return n
}

// Merge adds o's counts to h.
func (h *Histogram) Merge(o *Histogram) {
	for i := range o.counts {
		if c := o.counts[i].Load(); c != 0 {
			h.counts[i].Add(c)
		}
	}
	if m := o.max.Load(); m > h.max.Load() {
		h.max.Store(m)
	}
}

// Quantile returns the duration below which a fraction q of the values lie.
func (h *Histogram) Quantile(q float64) time.Duration {
	n := h.Count()
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n) + 0.5)
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			v := bucketValue(i)
			if m := h.max.Load(); v > m {
				v = m
			}
			return time.Duration(v)
		}
	}
	return time.Duration(h.max.Load())
}

// Max is the largest recorded duration.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

type histJSON struct {
	Max    int64             `json:"max_ns"`
	Counts map[string]uint64 `json:"buckets"`
}

// MarshalJSON writes the non-empty buckets (index → count).
func (h *Histogram) MarshalJSON() ([]byte, error) {
	out := histJSON{Max: h.max.Load(), Counts: map[string]uint64{}}
	for i := range h.counts {
		if c := h.counts[i].Load(); c != 0 {
			out.Counts[strconv.Itoa(i)] = c
		}
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads what MarshalJSON wrote; out-of-range buckets are errors.
func (h *Histogram) UnmarshalJSON(b []byte) error {
	var in histJSON
	if err := json.Unmarshal(b, &in); err != nil {
		return fmt.Errorf("histogram: %w", err)
	}
	for k, c := range in.Counts {
		i, err := strconv.Atoi(k)
		if err != nil || i < 0 || i >= histBuckets {
			return fmt.Errorf("histogram: bad bucket %q", k)
		}
		h.counts[i].Store(c)
	}
	if in.Max < 0 {
		return fmt.Errorf("histogram: negative max %d", in.Max)
	}
	h.max.Store(in.Max)
	return nil
}
