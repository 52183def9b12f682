package room

import (
	"hash/maphash"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/wsgate/wsgate/internal/state/shardmap"
)

// parallelFanout is the subscriber count from which one publication is
// delivered by several goroutines (one per core, the caller's included): each
// delivery is a write system call when the subscriber is idle, so a
// channel of 10,000 would otherwise keep one core busy for the whole
// publication while the others wait.
const parallelFanout = 1024

// snapshots recycles the subscriber lists of large fan-outs.
var snapshots = sync.Pool{New: func() any { return new([]*subscription) }}

// fanout calls fn for every subscription of ch, split over the cores when
// there are many, and returns once every call has returned (so that the next
// publication of the channel starts after this one: per-channel order holds).
// fn must not block. It returns how many calls reported true.
func (h *hub) fanout(ch string, fn func(*subscription) bool) int {
	workers := runtime.GOMAXPROCS(0)
	if workers < 2 || h.count(ch) < parallelFanout {
		n := 0
		h.each(ch, func(sub *subscription) {
			if fn(sub) {
				n++
			}
		})
		return n
	}
	bp := snapshots.Get().(*[]*subscription)
	subs := h.snapshot(ch, (*bp)[:0])
	var hits atomic.Int64
	run := func(part []*subscription) {
		n := int64(0)
		for _, sub := range part {
			if fn(sub) {
				n++
			}
		}
		hits.Add(n)
	}
	chunk := (len(subs) + workers - 1) / workers
	var wg sync.WaitGroup
	for lo := chunk; lo < len(subs); lo += chunk {
		part := subs[lo:min(lo+chunk, len(subs))]
		wg.Add(1)
		go func() { // owned here: waited for below
			defer wg.Done()
			run(part)
		}()
	}
	run(subs[:min(chunk, len(subs))])
	wg.Wait()
	clear(subs)
	*bp = subs[:0]
	snapshots.Put(bp)
	return int(hits.Load())
}

const (
	hubShards   = 64
	lockStripes = 1024
)

var hashSeed = maphash.MakeSeed() // read-only after init: a seed, not shared state

// hub maps channel → local subscriptions (conn id → subscription), on the
// project's sharded map: sharded by channel name so fan-out on one channel and
// subscribe on another do not contend.
type hub struct {
	m *shardmap.Map[string, *channelSubs]
}

// channelSubs is one channel's local subscriptions. Its name is the one copy
// of the channel's name that every subscription to it shares (each
// subscribe decodes its own, 16 B more per subscriber if kept).
type channelSubs struct {
	name string
	m    map[string]*subscription
}

func newHub() *hub {
	return &hub{m: shardmap.New[string, *channelSubs](shardmap.Options{Shards: hubShards})}
}

// subsOf returns ch's subscriptions (nil when it has none); the shard's lock is held.
func subsOf(s *shardmap.Shard[string, *channelSubs], ch string) map[string]*subscription {
	if cs, _ := s.Get(ch); cs != nil {
		return cs.m
	}
	return nil
}

func (h *hub) count(ch string) int {
	s := h.m.For(ch)
	s.RLock()
	n := len(subsOf(s, ch))
	s.RUnlock()
	return n
}

// add adds sub to its channel and points sub.channel at the channel's shared
// name.
func (h *hub) add(sub *subscription) {
	s := h.m.For(sub.channel)
	s.Lock()
	cs, _ := s.Get(sub.channel)
	if cs == nil {
		cs = &channelSubs{name: sub.channel, m: make(map[string]*subscription)}
		s.Set(sub.channel, cs)
	}
	sub.channel = cs.name
	cs.m[sub.client.ConnID()] = sub
	s.Unlock()
}

// remove drops sub (only that very subscription) and returns how many remain.
func (h *hub) remove(sub *subscription) int {
	s := h.m.For(sub.channel)
	s.Lock()
	defer s.Unlock()
	m := subsOf(s, sub.channel)
	if cur, ok := m[sub.client.ConnID()]; ok && cur == sub {
		delete(m, sub.client.ConnID())
	}
	if len(m) == 0 {
		s.Delete(sub.channel)
		return 0
	}
	return len(m)
}

// each calls fn for every subscription of ch under the shard's read lock; fn must
// not block (it only hands bytes to bounded queues).
func (h *hub) each(ch string, fn func(*subscription)) {
	s := h.m.For(ch)
	s.RLock()
	for _, sub := range subsOf(s, ch) {
		fn(sub)
	}
	s.RUnlock()
}

// snapshot appends the subscriptions of ch to buf under the shard's read lock,
// so that they can be delivered to without holding it (in parallel).
func (h *hub) snapshot(ch string, buf []*subscription) []*subscription {
	s := h.m.For(ch)
	s.RLock()
	for _, sub := range subsOf(s, ch) {
		buf = append(buf, sub)
	}
	s.RUnlock()
	return buf
}

// subscription is one client in one channel. Until live, deliveries are buffered
// so that the subscribe ack and any history replay reach the client first.
type subscription struct {
	client  Client
	channel string

	mu    sync.Mutex
	live  bool
	buf   *[]pending // deliveries held until live; nil when none (a pointer: 16 B less per subscription)
	last  uint64     // last offset delivered (or covered by the ack/replay)
	epoch string     // epoch of last
}

type pending struct {
	offset    uint64
	epoch     string
	msg       []byte
	unordered bool // join/leave events: no offset, always delivered
}

// deliver hands one encoded publication to the client, dropping duplicates of what
// the replay already covered. limit bounds the pre-live buffer. A publication that
// does not continue the client's stream (a skipped offset, or a new epoch, in which
// the old epoch's tail may be lost) is preceded by recovery_failed with the
// position from which delivery is gap-free again; deliver reports that case.
func (s *subscription) deliver(offset uint64, epoch string, msg []byte, limit int) (gap bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.live {
		s.bufferLocked(pending{offset: offset, epoch: epoch, msg: msg}, limit)
		return false
	}
	if epoch == s.epoch && offset <= s.last {
		return false
	}
	if gap = s.gapLocked(offset, epoch); gap {
		_ = s.client.Send(encodeRecoveryFailed(s.channel, offset-1, epoch, nil))
	}
	s.last, s.epoch = offset, epoch
	// Send never blocks; its error means the session is closing this client as a
	// slow consumer, which is the session's business, not the other subscribers'.
	_ = s.client.Send(msg)
	return gap
}

// gapLocked reports whether offset/epoch does not directly follow what the
// client has: every offset of an epoch is delivered in turn, and the first
// message of a stream the client saw no position of yet (empty epoch) is 1.
func (s *subscription) gapLocked(offset uint64, epoch string) bool {
	if epoch == s.epoch {
		return offset != s.last+1
	}
	return s.epoch != "" || offset != 1
}

func (s *subscription) deliverEvent(msg []byte, limit int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.live {
		s.bufferLocked(pending{msg: msg, unordered: true}, limit)
		return
	}
	_ = s.client.Send(msg)
}

func (s *subscription) bufferLocked(p pending, limit int) {
	if s.buf == nil {
		s.buf = new([]pending)
	}
	b := *s.buf
	if len(b) >= limit {
		// Keep the newest: losing the oldest is reported as recovery_failed with
		// the position from which delivery is gap-free again.
		b = append(b[:0], b[1:]...)
	}
	*s.buf = append(b, p)
}

// goLive records that the client has everything up to pos, sends what was buffered
// after it (in order, without duplicates) and switches to direct delivery. Where the
// buffered stream does not continue from pos (entries lost to the buffer bound, or
// never delivered to this node), failed is called with the position from which
// delivery is gap-free, before the rest.
func (s *subscription) goLive(pos posLike, failed func(offset uint64, epoch string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last, s.epoch = pos.offset, pos.epoch
	var held []pending
	if s.buf != nil {
		held = *s.buf
	}
	for _, p := range held {
		switch {
		case p.unordered:
		case p.epoch == s.epoch && p.offset <= s.last:
			continue
		default:
			if s.gapLocked(p.offset, p.epoch) {
				failed(p.offset-1, p.epoch)
			}
			s.last, s.epoch = p.offset, p.epoch
		}
		_ = s.client.Send(p.msg)
	}
	s.buf, s.live = nil, true
}

type posLike struct {
	offset uint64
	epoch  string
}
