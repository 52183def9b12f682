package shardmap_test

import (
	"strconv"
	"sync"
	"testing"
	"time"
	"unsafe"

	"go.uber.org/goleak"

	"github.com/wsgate/wsgate/internal/state/shardmap"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/wait"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// set stores v under the string key k, as a store does: under the shard's lock.
func set(m *shardmap.Map[string, int], k string, v int) {
	s := m.For(k)
	s.Lock()
	s.Set(k, v)
	s.Unlock()
}

func TestShardCountAndBound(t *testing.T) {
	for _, tc := range []struct {
		opts        shardmap.Options
		shards, per int
	}{
		{shardmap.Options{}, 1, 0},
		{shardmap.Options{Shards: 64}, 64, 0},
		{shardmap.Options{Shards: 48}, 32, 0}, // rounded down to a power of two
		{shardmap.Options{MaxKeys: 1_000_000, Shards: 64, MinPerShard: 64}, 64, 15625},
		{shardmap.Options{MaxKeys: 100, Shards: 64, MinPerShard: 64}, 1, 100},
		{shardmap.Options{MaxKeys: 1000, Shards: 64, MinPerShard: 64}, 8, 125},
		{shardmap.Options{MaxKeys: 10, Shards: 16}, 16, 1}, // rounded up per shard
	} {
		m := shardmap.New[string, int](tc.opts)
		if m.Shards() != tc.shards || m.PerShard() != tc.per {
			t.Errorf("%+v: %d shards of %d, want %d of %d", tc.opts, m.Shards(), m.PerShard(), tc.shards, tc.per)
		}
	}
}

func TestSetGetDeleteLen(t *testing.T) {
	m := shardmap.New[string, int](shardmap.Options{MaxKeys: 2, Shards: 1})
	s := m.For("a")
	s.Lock()
	if s.Full() {
		t.Fatal("empty shard full")
	}
	s.Set("a", 1)
	s.Set("b", 2)
	if !s.Full() {
		t.Fatal("shard of 2 with 2 keys not full")
	}
	if v, ok := s.Get("b"); !ok || v != 2 {
		t.Fatalf("Get(b) = %v, %v", v, ok)
	}
	s.Delete("a")
	s.Unlock()
	if m.Len() != 1 {
		t.Fatalf("Len = %d, want 1", m.Len())
	}
	m.Clear()
	if m.Len() != 0 {
		t.Fatalf("Len after Clear = %d", m.Len())
	}
}

func TestSweepDropsAndShrinks(t *testing.T) {
	m := shardmap.New[int, int](shardmap.Options{})
	s := m.Shard(0)
	s.Lock()
	for i := range 4000 {
		s.Set(i, i)
	}
	s.Unlock()
	m.Sweep(func(k, _ int) bool { return k >= 10 })
	if m.Len() != 10 {
		t.Fatalf("Len after sweep = %d, want 10", m.Len())
	}
	// After the rebuild the peak is the new size: a second spike to 4000 is
	// needed before another rebuild; entries survive the rebuild.
	s.Lock()
	for k := range 10 {
		if _, ok := s.Get(k); !ok {
			t.Fatalf("key %d lost in the rebuild", k)
		}
	}
	s.Unlock()
}

func TestAllSamplesAndDeletes(t *testing.T) {
	m := shardmap.New[string, int](shardmap.Options{})
	s := m.For("")
	s.Lock()
	defer s.Unlock()
	for i := range 100 {
		s.Set(strconv.Itoa(i), i)
	}
	seen := 0
	for k := range s.All() {
		s.Delete(k)
		if seen++; seen == 8 {
			break
		}
	}
	if s.Len() != 92 {
		t.Fatalf("Len = %d after deleting a sample of 8", s.Len())
	}
	if n := s.DeleteFunc(func(_ string, v int) bool { return v%2 == 0 }); n == 0 || s.Len() != 92-n {
		t.Fatalf("DeleteFunc removed %d, Len %d", n, s.Len())
	}
}

func TestConcurrent(t *testing.T) {
	m := shardmap.New[string, int](shardmap.Options{Shards: 8})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				set(m, strconv.Itoa(g*1000+i), i)
			}
		})
	}
	wg.Go(func() {
		for range 100 {
			_ = m.Len()
		}
	})
	wg.Wait()
	if m.Len() != 8000 {
		t.Fatalf("Len = %d, want 8000", m.Len())
	}
}

func TestSweeperOwnedAndClosed(t *testing.T) {
	m := shardmap.New[int, int](shardmap.Options{})
	s := m.Shard(0)
	s.Lock()
	s.Set(1, 1)
	s.Unlock()
	m.StartSweeper(time.Millisecond, func() func(int, int) bool { return func(int, int) bool { return true } })
	wait.For(t, "the sweeper to sweep", 5*time.Second, func() bool { return m.Len() == 0 })
	m.Close()
	m.Close()
	goleak.VerifyNone(t)
	shardmap.New[int, int](shardmap.Options{}).Close() // no sweeper: Close is a no-op
}

func TestEvictSample(t *testing.T) {
	m := shardmap.New[string, int](shardmap.Options{MaxKeys: 4})
	s := m.Shard(0)
	s.Lock()
	defer s.Unlock()
	for k, v := range map[string]int{"a": 5, "b": 2, "c": 9, "d": 7} {
		s.Set(k, v)
	}
	rank := func(v int) int64 { return int64(v) }
	// Nothing stale in a sample of the whole shard: the lowest rank goes.
	if !s.EvictSample(4, func(string, int) bool { return false }, rank) {
		t.Fatal("no live entry evicted")
	}
	if _, ok := s.Get("b"); ok || s.Len() != 3 {
		t.Fatalf("evicted the wrong entry: b present %v, Len %d", ok, s.Len())
	}
	// Stale entries go first, and then no live one does.
	if s.EvictSample(4, func(_ string, v int) bool { return v > 6 }, rank) {
		t.Fatal("a live entry evicted although stale ones were found")
	}
	if _, ok := s.Get("a"); !ok || s.Len() != 1 {
		t.Fatalf("after dropping stale entries: a present %v, Len %d", ok, s.Len())
	}
}

func TestRangeAndReadLock(t *testing.T) {
	m := shardmap.New[string, int](shardmap.Options{Shards: 4})
	for i := range 100 {
		set(m, strconv.Itoa(i), i)
	}
	s := m.For("7")
	s.RLock()
	if v, ok := s.Get("7"); !ok || v != 7 {
		t.Fatalf("Get(7) under RLock = %v, %v", v, ok)
	}
	s.RUnlock()
	sum, seen := 0, 0
	m.Range(func(k string, v int) bool {
		// f runs unlocked: it may lock the entry's shard.
		sh := m.For(k)
		sh.Lock()
		sh.Delete(k)
		sh.Unlock()
		sum += v
		seen++
		return true
	})
	if seen != 100 || sum != 99*100/2 || m.Len() != 0 {
		t.Fatalf("Range saw %d entries summing to %d, Len after %d", seen, sum, m.Len())
	}
	m.Clear()
	for _, k := range []string{"a", "b", "c"} {
		set(m, k, 1)
	}
	seen = 0
	m.Range(func(string, int) bool { seen++; return false })
	if seen != 1 {
		t.Fatalf("Range went on after f returned false: %d calls", seen)
	}
}

func TestShardSize(t *testing.T) {
	// Shards sit in a slice: one shard a cache line keeps shards' locks from
	// sharing one.
	if n := unsafe.Sizeof(shardmap.Shard[string, int]{}); n != 64 {
		t.Fatalf("Shard is %d bytes, want 64", n)
	}
}
