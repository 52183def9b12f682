package broker

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/internal/defaults"
	"github.com/wsgate/wsgate/internal/state/shardmap"
)

// Defaults applied by NewMemory for zero MemoryOptions fields.
const (
	DefaultMaxChannels     = 100000
	DefaultMaxHistorySize  = 1000
	DefaultMaxHistoryTTL   = 24 * time.Hour
	DefaultSweepInterval   = time.Second
	DefaultMaxHistoryBytes = 256 << 20
)

const shardCount = 64

var (
	// ErrTooManyChannels means the broker already tracks MaxChannels channels.
	ErrTooManyChannels = errors.New("broker: too many channels")
	// ErrAlreadyRunning means Run was called while another Run is active.
	ErrAlreadyRunning = errors.New("broker: already running")
	errEmptyChannel   = errors.New("broker: empty channel name")
)

// MemoryOptions bounds a Memory broker. Zero fields take the defaults.
type MemoryOptions struct {
	// MaxChannels caps channels tracked at once (with history, subscribers or
	// presence); Publish, Subscribe and AddPresence on a new channel fail with
	// ErrTooManyChannels beyond it. Default 100000.
	MaxChannels int
	// MaxHistorySize caps PublishOptions.HistorySize per channel. Default 1000.
	MaxHistorySize int
	// MaxHistoryTTL caps PublishOptions.HistoryTTL. Default 24h.
	MaxHistoryTTL time.Duration
	// MaxHistoryBytes caps the memory of all retained history (payload, sender and
	// about 128 bytes per entry). A publication that would exceed it trims its own
	// channel's oldest entries, or keeps no history for that channel, so recovery
	// fails cleanly rather than growing memory. Default 256 MiB.
	MaxHistoryBytes int64
	// SweepInterval is how often Run drops expired history and empty channels that
	// nobody touches. Default 1s.
	SweepInterval time.Duration
	// Now replaces time.Now; for tests.
	Now func() time.Time
}

// Validate reports options that cannot be defaulted.
func (o MemoryOptions) Validate() error {
	switch {
	case o.MaxChannels < 0:
		return fmt.Errorf("broker: max channels %d is negative", o.MaxChannels)
	case o.MaxHistorySize < 0:
		return fmt.Errorf("broker: max history size %d is negative", o.MaxHistorySize)
	case o.MaxHistoryTTL < 0:
		return fmt.Errorf("broker: max history ttl %v is negative", o.MaxHistoryTTL)
	case o.MaxHistoryBytes < 0:
		return fmt.Errorf("broker: max history bytes %d is negative", o.MaxHistoryBytes)
	case o.SweepInterval < 0:
		return fmt.Errorf("broker: sweep interval %v is negative", o.SweepInterval)
	}
	return nil
}

func (o MemoryOptions) withDefaults() MemoryOptions {
	defaults.Positive(&o.MaxChannels, DefaultMaxChannels)
	defaults.Positive(&o.MaxHistorySize, DefaultMaxHistorySize)
	defaults.Positive(&o.MaxHistoryTTL, DefaultMaxHistoryTTL)
	defaults.Positive(&o.MaxHistoryBytes, DefaultMaxHistoryBytes)
	defaults.Positive(&o.SweepInterval, DefaultSweepInterval)
	defaults.Now(&o.Now)
	return o
}

// Memory is the single-node Broker. Lock order: shard.mu, then channel.mu, then
// channel.deliverMu.
type Memory struct {
	opts     MemoryOptions
	channels *shardmap.Map[string, *channel]
	count    atomic.Int64 // channels tracked, for MaxChannels
	bytes    atomic.Int64 // cost of all retained history, for MaxHistoryBytes

	handler  atomic.Pointer[handlerBox]
	inflight atomic.Int64  // handler calls in progress
	idle     chan struct{} // nudged when inflight drops to zero while stopping
}

type handlerBox struct{ h EventHandler }

type shard = shardmap.Shard[string, *channel]

// channel is one stream. It lives while it has history, local subscribers or
// presence; once removed, a later use creates a new stream with a new epoch.
type channel struct {
	name string
	mu   sync.Mutex
	// deliverMu is taken under mu right after an offset is assigned and held while
	// the handler runs, so deliveries happen in offset order, one at a time,
	// without holding mu during the callback.
	deliverMu sync.Mutex
	removed   bool
	epoch     string
	offset    uint64
	hist      ring
	subs      int
	presence  map[string]ClientInfo
}

func (c *channel) emptyLocked() bool {
	return c.hist.n == 0 && c.subs == 0 && len(c.presence) == 0
}

// NewMemory returns an in-memory Broker. It owns no goroutine until Run is called.
// Invalid options are defaulted; call Validate first to reject them.
func NewMemory(opts MemoryOptions) *Memory {
	return &Memory{
		opts:     opts.withDefaults(),
		channels: shardmap.New[string, *channel](shardmap.Options{Shards: shardCount}),
		idle:     make(chan struct{}, 1),
	}
}

// newEpoch returns 8 random characters. Epochs only need to differ between
// incarnations of a stream; 40 random bits make a collision practically impossible.
func newEpoch() string { return rand.Text()[:8] }

func (m *Memory) nowNano() int64 { return m.opts.Now().UnixNano() }

// Channels returns how many channels are tracked (for metrics).
func (m *Memory) Channels() int { return int(m.count.Load()) }

// lockChannel returns name's channel, locked, creating it when create is set. It
// returns nil when the channel does not exist and create is false.
func (m *Memory) lockChannel(name string, create bool) (*channel, error) {
	s := m.channels.For(name)
	for {
		s.Lock()
		c, _ := s.Get(name)
		if c == nil {
			if !create {
				s.Unlock()
				return nil, nil
			}
			if !m.reserve() {
				// Reclaim this shard's expired channels before refusing.
				m.sweepShardLocked(s, m.nowNano())
				if !m.reserve() {
					s.Unlock()
					return nil, fmt.Errorf("%w (limit %d)", ErrTooManyChannels, m.opts.MaxChannels)
				}
			}
			c = &channel{name: name, epoch: newEpoch()}
			s.Set(name, c)
		}
		s.Unlock()
		c.mu.Lock()
		if !c.removed {
			return c, nil
		}
		// Removed between the map lookup and the lock: look again.
		c.mu.Unlock()
	}
}

func (m *Memory) reserve() bool {
	for {
		n := m.count.Load()
		if n >= int64(m.opts.MaxChannels) {
			return false
		}
		if m.count.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// removeIfEmpty forgets c if it is still empty. Called without c.mu held.
func (m *Memory) removeIfEmpty(c *channel) {
	s := m.channels.For(c.name)
	s.Lock()
	c.mu.Lock()
	if cur, _ := s.Get(c.name); !c.removed && c.emptyLocked() && cur == c {
		c.removed = true
		s.Delete(c.name)
		m.count.Add(-1)
	}
	c.mu.Unlock()
	s.Unlock()
}

// trimExpiredLocked drops c's expired history. Called with c.mu held.
func (m *Memory) trimExpiredLocked(c *channel, now int64) {
	before := c.hist.bytes
	c.hist.trimExpired(now)
	m.bytes.Add(c.hist.bytes - before)
}

// appendLocked adds e to c's history within the channel's size and the broker's
// byte budget. History may only lose entries at its front (offsets stay
// contiguous), so when the budget cannot fit e even after trimming c, c keeps no
// history at all. Called with c.mu held.
func (m *Memory) appendLocked(c *channel, e entry, size int) {
	before := c.hist.bytes
	defer func() { m.bytes.Add(c.hist.bytes - before) }()
	if size <= 0 {
		c.hist.clear()
		return
	}
	for c.hist.n >= size {
		c.hist.popFront()
	}
	cost := e.cost()
	// Others' history counts too: the budget is shared.
	for c.hist.n > 0 && m.bytes.Load()+(c.hist.bytes-before)+cost > m.opts.MaxHistoryBytes {
		c.hist.popFront()
	}
	if m.bytes.Load()+(c.hist.bytes-before)+cost > m.opts.MaxHistoryBytes {
		c.hist.clear()
		return
	}
	c.hist.push(e, size)
}

// HistoryBytes returns the approximate memory held by retained history (for metrics).
func (m *Memory) HistoryBytes() int64 { return m.bytes.Load() }

// sweepShardLocked drops expired history and empty channels. Called with s locked.
func (m *Memory) sweepShardLocked(s *shard, now int64) {
	s.DeleteFunc(func(_ string, c *channel) bool { return m.trimChannel(c, now) })
}

// trimChannel drops c's expired history and reports whether c is now empty,
// marking it removed; its shard is locked.
func (m *Memory) trimChannel(c *channel, now int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	m.trimExpiredLocked(c, now)
	if !c.emptyLocked() {
		return false
	}
	c.removed = true
	m.count.Add(-1)
	return true
}

func (m *Memory) sweep() {
	now := m.nowNano()
	m.channels.Sweep(func(_ string, c *channel) bool { return m.trimChannel(c, now) })
}

// deliver calls fn with the registered handler, if any. The in-flight count lets
// Run return only once no call is in progress, without a lock a handler could
// re-enter.
func (m *Memory) deliver(fn func(h EventHandler)) {
	m.inflight.Add(1)
	if b := m.handler.Load(); b != nil {
		fn(b.h)
	}
	if m.inflight.Add(-1) == 0 && m.handler.Load() == nil {
		select {
		case m.idle <- struct{}{}:
		default:
		}
	}
}

// Run registers h and sweeps expired history until ctx ends, then unregisters h
// and returns nil once no handler call is in progress. Only one Run may be active.
//
// h is called synchronously from Publish, AddPresence and RemovePresence, with the
// channel's delivery lock held: it must be quick and must not block (push to
// outboxes, never wait on a client). It may call the broker for other channels,
// but calling Publish or presence methods for the same channel from inside h
// deadlocks.
func (m *Memory) Run(ctx context.Context, h EventHandler) error {
	if h == nil {
		return errors.New("broker: run: nil handler")
	}
	if !m.handler.CompareAndSwap(nil, &handlerBox{h: h}) {
		return ErrAlreadyRunning
	}
	t := time.NewTicker(m.opts.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			m.sweep()
		case <-ctx.Done():
			m.handler.Store(nil)
			for m.inflight.Load() != 0 {
				select {
				case <-m.idle:
				case <-time.After(10 * time.Millisecond): // in case a nudge raced
				}
			}
			return nil
		}
	}
}

func checkArgs(ctx context.Context, op, channel string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("broker: %s %q: %w", op, channel, err)
	}
	if channel == "" {
		return fmt.Errorf("broker: %s: %w", op, errEmptyChannel)
	}
	return nil
}

// Publish assigns the next offset in channel, appends to history as opts ask
// (capped by MaxHistorySize and MaxHistoryTTL) and, if this node subscribed,
// delivers to the handler before returning. data is retained, not copied: the
// caller must not modify it afterwards.
func (m *Memory) Publish(ctx context.Context, channel string, data []byte, from string, opts PublishOptions) (StreamPosition, error) {
	if err := checkArgs(ctx, "publish", channel); err != nil {
		return StreamPosition{}, err
	}
	size := min(opts.HistorySize, m.opts.MaxHistorySize)
	ttl := min(opts.HistoryTTL, m.opts.MaxHistoryTTL)
	c, err := m.lockChannel(channel, true)
	if err != nil {
		return StreamPosition{}, fmt.Errorf("broker: publish %q: %w", channel, err)
	}
	now := m.opts.Now().Round(0) // no monotonic reading in stored times
	m.trimExpiredLocked(c, now.UnixNano())
	c.offset++
	pub := Publication{Channel: channel, Offset: c.offset, Epoch: c.epoch, Data: data, From: from, Time: now}
	if ttl <= 0 {
		size = 0
	}
	m.appendLocked(c, entry{pub: pub, expire: now.Add(ttl).UnixNano()}, size)
	subscribed := c.subs > 0
	if subscribed {
		c.deliverMu.Lock()
	}
	empty := c.emptyLocked()
	c.mu.Unlock()
	if subscribed {
		m.deliver(func(h EventHandler) { h.HandlePublication(pub) })
		c.deliverMu.Unlock()
	}
	if empty {
		m.removeIfEmpty(c)
	}
	return StreamPosition{Offset: pub.Offset, Epoch: pub.Epoch}, nil
}

// Subscribe makes Publish deliver channel's events to the handler. Calls are
// reference counted: each Subscribe needs one Unsubscribe. Every publication whose
// Publish starts after Subscribe returns is delivered.
func (m *Memory) Subscribe(ctx context.Context, channel string) error {
	if err := checkArgs(ctx, "subscribe", channel); err != nil {
		return err
	}
	c, err := m.lockChannel(channel, true)
	if err != nil {
		return fmt.Errorf("broker: subscribe %q: %w", channel, err)
	}
	c.subs++
	c.mu.Unlock()
	return nil
}

// Unsubscribe drops one Subscribe reference; extra calls are ignored.
func (m *Memory) Unsubscribe(ctx context.Context, channel string) error {
	if err := checkArgs(ctx, "unsubscribe", channel); err != nil {
		return err
	}
	c, _ := m.lockChannel(channel, false)
	if c == nil {
		return nil
	}
	if c.subs > 0 {
		c.subs--
	}
	empty := c.emptyLocked()
	c.mu.Unlock()
	if empty {
		m.removeIfEmpty(c)
	}
	return nil
}

// History implements Broker.History. A channel without a stream (never published,
// or forgotten after its history expired) reports the zero StreamPosition, and
// recovery from any non-zero position in it fails.
func (m *Memory) History(ctx context.Context, channel string, since *StreamPosition, limit int) ([]Publication, StreamPosition, error) {
	if err := checkArgs(ctx, "history", channel); err != nil {
		return nil, StreamPosition{}, err
	}
	if limit < 0 {
		return nil, StreamPosition{}, fmt.Errorf("broker: history %q: negative limit %d", channel, limit)
	}
	c, _ := m.lockChannel(channel, false)
	if c != nil {
		m.trimExpiredLocked(c, m.nowNano())
		if c.emptyLocked() {
			c.mu.Unlock()
			m.removeIfEmpty(c)
			c = nil
		}
	}
	if c == nil {
		if since != nil && *since != (StreamPosition{}) {
			return nil, StreamPosition{}, fmt.Errorf("broker: history %q: stream gone: %w", channel, ErrRecoveryFailed)
		}
		return nil, StreamPosition{}, nil
	}
	defer c.mu.Unlock()
	cur := StreamPosition{Offset: c.offset, Epoch: c.epoch}
	start := 0 // index in hist of the first publication to return
	if since == nil {
		if limit > 0 && c.hist.n > limit {
			start = c.hist.n - limit
		}
	} else {
		switch {
		case since.Epoch != c.epoch:
			return nil, cur, fmt.Errorf("broker: history %q: epoch %q is not current %q: %w", channel, since.Epoch, c.epoch, ErrRecoveryFailed)
		case since.Offset > c.offset:
			return nil, cur, fmt.Errorf("broker: history %q: offset %d is ahead of %d: %w", channel, since.Offset, c.offset, ErrRecoveryFailed)
		case since.Offset == c.offset:
			return nil, cur, nil
		}
		oldest := c.offset + 1 // what the stream starts with when nothing is retained
		if c.hist.n > 0 {
			oldest = c.hist.front().pub.Offset
		}
		if since.Offset+1 < oldest {
			return nil, cur, fmt.Errorf("broker: history %q: offset %d is older than retained %d: %w", channel, since.Offset, oldest, ErrRecoveryFailed)
		}
		start = int(since.Offset + 1 - oldest)
	}
	n := c.hist.n - start
	if limit > 0 && n > limit {
		n = limit
	}
	if n <= 0 {
		return nil, cur, nil
	}
	pubs := make([]Publication, n)
	for i := range pubs {
		pubs[i] = c.hist.at(start + i).pub
	}
	return pubs, cur, nil
}

// AddPresence records info in channel; a connection not yet present is announced
// to the handler with HandleJoin if this node subscribed. Re-adding updates info
// silently.
func (m *Memory) AddPresence(ctx context.Context, channel string, info ClientInfo) error {
	if err := checkArgs(ctx, "add presence", channel); err != nil {
		return err
	}
	if info.ConnID == "" {
		return fmt.Errorf("broker: add presence %q: empty conn id", channel)
	}
	c, err := m.lockChannel(channel, true)
	if err != nil {
		return fmt.Errorf("broker: add presence %q: %w", channel, err)
	}
	if c.presence == nil {
		c.presence = make(map[string]ClientInfo)
	}
	_, existed := c.presence[info.ConnID]
	c.presence[info.ConnID] = info
	announce := !existed && c.subs > 0
	if announce {
		c.deliverMu.Lock()
	}
	c.mu.Unlock()
	if announce {
		m.deliver(func(h EventHandler) { h.HandleJoin(channel, info) })
		c.deliverMu.Unlock()
	}
	return nil
}

// RemovePresence forgets connID in channel and announces HandleLeave if it was
// present and this node subscribed. Unknown connections are ignored.
func (m *Memory) RemovePresence(ctx context.Context, channel string, connID string) error {
	if err := checkArgs(ctx, "remove presence", channel); err != nil {
		return err
	}
	c, _ := m.lockChannel(channel, false)
	if c == nil {
		return nil
	}
	info, ok := c.presence[connID]
	delete(c.presence, connID)
	if len(c.presence) == 0 {
		c.presence = nil // let the map's memory go
	}
	announce := ok && c.subs > 0
	if announce {
		c.deliverMu.Lock()
	}
	empty := c.emptyLocked()
	c.mu.Unlock()
	if announce {
		m.deliver(func(h EventHandler) { h.HandleLeave(channel, info) })
		c.deliverMu.Unlock()
	}
	if empty {
		m.removeIfEmpty(c)
	}
	return nil
}

// Presence returns the connections present in channel, sorted by ConnID.
func (m *Memory) Presence(ctx context.Context, channel string) ([]ClientInfo, error) {
	if err := checkArgs(ctx, "presence", channel); err != nil {
		return nil, err
	}
	c, _ := m.lockChannel(channel, false)
	if c == nil {
		return nil, nil
	}
	out := make([]ClientInfo, 0, len(c.presence))
	for _, info := range c.presence {
		out = append(out, info)
	}
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b ClientInfo) int { return strings.Compare(a.ConnID, b.ConnID) })
	return out, nil
}

// Interface guard.
var _ Broker = (*Memory)(nil)
