package redis

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/wsgate/wsgate/internal/state/broker"
)

// Defaults for BrokerOptions.
const (
	DefaultMaxHistorySize   = 1000
	DefaultMaxHistoryTTL    = 24 * time.Hour
	DefaultMetaTTL          = time.Hour
	DefaultSubscribeTimeout = 5 * time.Second
	DefaultMaxPublishing    = 1024

	// publishDedupWindow is how long Redis keeps a stopped broker's done
	// field in a channel's meta (see publishScript; a live broker's field is
	// replaced by each of its batches). A retry by go-redis follows its failed
	// attempt within one read timeout and a backoff (well under a second); the
	// window is generous for a paused node.
	publishDedupWindow = time.Minute

	// maxResubscribeWait caps the pub/sub reconnect backoff.
	maxResubscribeWait = 500 * time.Millisecond
)

// BrokerOptions configures Client.Broker. Zero fields take the defaults.
type BrokerOptions struct {
	// MaxHistorySize and MaxHistoryTTL cap PublishOptions (defaults 1000, 24h).
	// History expires as a whole HistoryTTL after the channel's last publication
	// (a Redis key TTL), so entries may outlive their own TTL while the channel
	// stays busy; recovery is then possible for longer, never wrongly.
	MaxHistorySize int
	MaxHistoryTTL  time.Duration
	// MetaTTL is how long a channel's epoch and offset outlive its last
	// publication (default 1h, and never less than its history TTL). After that
	// the stream restarts in a new epoch and old positions fail recovery.
	MetaTTL time.Duration
	// PresenceTTL is how long a presence entry outlives the last heartbeat of
	// the node that added it (default Options.LeaseTTL).
	PresenceTTL time.Duration
	// SubscribeTimeout bounds how long Subscribe waits for Redis to confirm a
	// new subscription (default 5s).
	SubscribeTimeout time.Duration
	// MaxPublishing bounds the publications of this node waiting for Redis
	// (default 1024); beyond it Publish fails at once rather than queueing
	// behind a slow Redis. While Redis is unreachable Publish fails at once
	// anyway (ErrUnavailable).
	MaxPublishing int
}

// Validate reports negative options.
func (o BrokerOptions) Validate() error {
	if o.MaxHistorySize < 0 || o.MaxHistoryTTL < 0 || o.MetaTTL < 0 || o.PresenceTTL < 0 || o.SubscribeTimeout < 0 || o.MaxPublishing < 0 {
		return errors.New("redis broker: negative option")
	}
	return nil
}

// Broker is a broker.Broker shared by all nodes through Redis.
//
// Publish runs one script that assigns the offset, appends to history and
// PUBLISHes to every node. Subscribe is a node-level SUBSCRIBE, reference
// counted per channel. One goroutine (owned by the Broker, stopped by
// Client.Close) reads pub/sub and delivers to the handler of Run in offset
// order; when it sees an offset skipped (a pub/sub reconnect loses messages), a
// new epoch that does not start at offset 1, or its subscription re-established,
// it fetches the missing publications from history, also across an epoch
// change, so only what history no longer holds can be lost, and that shows as
// a jump the handler turns into recovery_failed (and a warning here).
type Broker struct {
	rdb   goredis.UniversalClient
	c     *Client
	opts  BrokerOptions
	topic string // prefix of pub/sub topics
	ps    *goredis.PubSub

	inflight  chan struct{} // one token per Publish waiting for Redis
	capWarned atomic.Bool   // a publication asked for more history than the caps
	pubSeq    atomic.Uint64 // numbers this broker's publish batches (batch ids)
	doneField string        // "d:" and a random id per broker: see scriptArgs

	qmu    sync.Mutex
	queues map[string]*pubQueue // channels with a batch in flight (see Publish)
	// Batches of different channels ready while maxFlights pipelines are in
	// flight wait here and go together in the next pipeline (see send).
	flights int
	ready   []*pubBatch
	scripts atomic.Uint64 // publish scripts run (tests: batching happened)

	mu       sync.Mutex
	subs     map[string]*brokerSub
	presence map[string]map[string]string // channel -> conn -> user added by this node

	handler   atomic.Pointer[handlerBox]
	deliverMu sync.Mutex
	running   atomic.Bool

	stop     chan struct{}
	loopDone chan struct{}
	beatDone chan struct{}
	once     sync.Once
}

type handlerBox struct{ h broker.EventHandler }

// brokerSub is one channel this node subscribed to. epoch and last are touched
// only by the receive loop.
type brokerSub struct {
	refs      int
	ready     chan struct{} // closed when Redis confirmed the subscription
	confirmed bool
	epoch     string
	last      uint64
}

// Broker returns a new broker; its goroutines stop on Client.Close.
func (c *Client) Broker(opts BrokerOptions) (*Broker, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts.MaxHistorySize = cmp.Or(opts.MaxHistorySize, DefaultMaxHistorySize)
	opts.MaxHistoryTTL = cmp.Or(opts.MaxHistoryTTL, DefaultMaxHistoryTTL)
	opts.MetaTTL = cmp.Or(opts.MetaTTL, DefaultMetaTTL)
	opts.PresenceTTL = cmp.Or(opts.PresenceTTL, c.opts.LeaseTTL)
	opts.SubscribeTimeout = cmp.Or(opts.SubscribeTimeout, DefaultSubscribeTimeout)
	opts.MaxPublishing = cmp.Or(opts.MaxPublishing, DefaultMaxPublishing)
	b := &Broker{
		rdb:       c.rdb,
		c:         c,
		opts:      opts,
		topic:     c.key("ps:"),
		ps:        c.rdb.Subscribe(context.Background()),
		subs:      make(map[string]*brokerSub),
		queues:    make(map[string]*pubQueue),
		presence:  make(map[string]map[string]string),
		inflight:  make(chan struct{}, opts.MaxPublishing),
		doneField: "d:" + rand.Text(),
		stop:      make(chan struct{}),
		loopDone:  make(chan struct{}),
		beatDone:  make(chan struct{}),
	}
	if !c.onClose(b.close) {
		_ = b.ps.Close()
		return nil, errClosed
	}
	go b.receiveLoop()
	go b.presenceLoop(opts.PresenceTTL / 3)
	return b, nil
}

func (b *Broker) key(channel, suffix string) string {
	return b.c.key("ch:{", channel, "}:", suffix)
}

func checkArgs(ctx context.Context, op, channel string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("redis broker: %s %q: %w", op, channel, err)
	}
	if channel == "" {
		return fmt.Errorf("redis broker: %s: empty channel name", op)
	}
	return nil
}

// Run implements broker.Broker: it registers h and returns nil when ctx ends
// (or the client closes), once no handler call is in progress. Only one Run may
// be active. h is called from one goroutine; it must not block.
func (b *Broker) Run(ctx context.Context, h broker.EventHandler) error {
	if h == nil {
		return errors.New("redis broker: run: nil handler")
	}
	if !b.running.CompareAndSwap(false, true) {
		return broker.ErrAlreadyRunning
	}
	defer b.running.Store(false)
	b.handler.Store(&handlerBox{h: h})
	select {
	case <-ctx.Done():
	case <-b.stop:
	}
	b.handler.Store(nil)
	// A delivery holds deliverMu for its whole call: taking it waits for the one
	// in progress, after which no call sees the old handler.
	b.deliverMu.Lock()
	defer b.deliverMu.Unlock()
	return nil
}

func (b *Broker) deliver(fn func(h broker.EventHandler)) {
	b.deliverMu.Lock()
	defer b.deliverMu.Unlock()
	if hb := b.handler.Load(); hb != nil {
		fn(hb.h)
	}
}

// errPublishBusy: more publications wait for Redis than MaxPublishing.
var errPublishBusy = errors.New("too many publications waiting for Redis")

// Batch bounds: one script call carries at most this many publications of one
// channel, and (beyond its first) at most this many bytes of payload, so that
// one script never holds Redis for long.
const (
	maxBatch      = 128
	maxBatchBytes = 512 << 10
)

// pubReq is one Publish call on its way to Redis.
type pubReq struct {
	data  []byte
	from  string
	size  int
	ttlMS int64
	// done is closed when pos and err are set, or when lead is: lead hands the
	// call the next batch of its channel to run (it is lead[0]).
	done chan struct{}
	lead []*pubReq
	pos  broker.StreamPosition
	err  error
	// queued: still in its queue's waiting list (guarded by Broker.qmu).
	queued bool
}

// pubQueue orders one channel's publications on this node. While a batch is
// in flight, calls wait here; when it returns, everything waiting goes to
// Redis together as the next batch (one script, one round trip, one pub/sub
// message), run by the goroutine of the batch's first call. So a channel has
// at most one batch in flight per node (its order is Redis' order of the
// batches), while several channels run in parallel; with one publication in
// flight nothing waits and nothing changes hands.
type pubQueue struct {
	waiting []*pubReq
}

// Publish implements broker.Broker. When Redis cannot answer it returns the
// error and nothing is delivered; while Redis is known unreachable, or
// MaxPublishing publications already wait for it, it fails at once. It returns
// once the script that assigned the offset, appended to history and published
// has run: the publication is then in Redis (as durable as Redis makes it)
// and recoverable from history.
func (b *Broker) Publish(ctx context.Context, channel string, data []byte, from string, opts broker.PublishOptions) (broker.StreamPosition, error) {
	if err := checkArgs(ctx, "publish", channel); err != nil {
		return broker.StreamPosition{}, err
	}
	if b.c.brk.Open() {
		return broker.StreamPosition{}, fmt.Errorf("redis broker: publish %q: %w", channel, ErrUnavailable)
	}
	select {
	case b.inflight <- struct{}{}:
		defer func() { <-b.inflight }()
	default:
		return broker.StreamPosition{}, fmt.Errorf("redis broker: publish %q: %w", channel, errPublishBusy)
	}
	size := min(opts.HistorySize, b.opts.MaxHistorySize)
	ttl := min(opts.HistoryTTL, b.opts.MaxHistoryTTL)
	if (size < opts.HistorySize || ttl < opts.HistoryTTL) && b.capWarned.CompareAndSwap(false, true) {
		b.c.opts.Logger.Warn("redis broker: history capped (logged once)", "channel", channel,
			"history_size", opts.HistorySize, "max_history_size", b.opts.MaxHistorySize,
			"history_ttl", opts.HistoryTTL, "max_history_ttl", b.opts.MaxHistoryTTL)
	}
	if size <= 0 || ttl <= 0 {
		size, ttl = 0, 0
	}
	ttlMS := int64(0)
	if ttl > 0 {
		ttlMS = max(ttl.Milliseconds(), 1)
	}
	req := &pubReq{data: data, from: from, size: size, ttlMS: ttlMS, done: make(chan struct{})}
	b.qmu.Lock()
	q, busy := b.queues[channel]
	if !busy {
		b.queues[channel] = &pubQueue{}
		b.qmu.Unlock()
		b.runBatch(ctx, channel, []*pubReq{req})
		return req.pos, req.err
	}
	req.queued = true
	q.waiting = append(q.waiting, req)
	b.qmu.Unlock()
	select {
	case <-req.done:
	case <-ctx.Done():
		b.qmu.Lock()
		if req.queued {
			q.waiting = slices.DeleteFunc(q.waiting, func(r *pubReq) bool { return r == req })
			b.qmu.Unlock()
			return broker.StreamPosition{}, fmt.Errorf("redis broker: publish %q: %w", channel, ctx.Err())
		}
		lead := req.lead != nil
		b.qmu.Unlock()
		if !lead {
			// In a batch in flight: it may or may not be published; like a call
			// cancelled while Redis runs it, the caller gets the error.
			return broker.StreamPosition{}, fmt.Errorf("redis broker: publish %q: %w", channel, ctx.Err())
		}
		<-req.done // closed right after lead was set
	}
	if req.lead != nil {
		b.runBatch(ctx, channel, req.lead)
	}
	return req.pos, req.err
}

// runBatch publishes batch (its first call is the caller's), then hands the
// channel's next batch, if any, to that batch's first call, and wakes the
// others of this batch.
func (b *Broker) runBatch(ctx context.Context, channel string, batch []*pubReq) {
	// Not cancelled with the caller: the batch carries other calls too. go-redis'
	// timeouts bound it.
	b.send(context.WithoutCancel(ctx), &pubBatch{channel: channel, reqs: batch})
	b.qmu.Lock()
	q := b.queues[channel]
	var next []*pubReq
	if len(q.waiting) == 0 {
		delete(b.queues, channel)
	} else {
		n, bytes := 1, len(q.waiting[0].data)
		for ; n < len(q.waiting) && n < maxBatch; n++ {
			r := q.waiting[n]
			if r.size != q.waiting[0].size || r.ttlMS != q.waiting[0].ttlMS || bytes+len(r.data) > maxBatchBytes {
				break
			}
			bytes += len(r.data)
		}
		next = slices.Clone(q.waiting[:n])
		q.waiting = slices.Delete(q.waiting, 0, n)
		for _, r := range next {
			r.queued = false
		}
		next[0].lead = next
	}
	b.qmu.Unlock()
	wake(next, batch, func(r *pubReq) chan struct{} { return r.done })
}

// wake starts the next group's leader (next[0]) and tells the followers of
// the group that ran (ran[1:]; ran[0] is the caller) that their results are in.
func wake[T any](next, ran []T, done func(T) chan struct{}) {
	if len(next) > 0 {
		close(done(next[0]))
	}
	for _, x := range ran[1:] {
		close(done(x))
	}
}

// maxFlights bounds the pipelines of publish batches one node has in flight;
// batches of other channels ready meanwhile go together in the next one, at
// most maxPipeline of them.
const (
	maxFlights  = 2
	maxPipeline = 64
)

// pubBatch is one channel's batch on its way to Redis (see send).
type pubBatch struct {
	channel string
	reqs    []*pubReq
	// done is closed when the batch ran, or when lead is set: lead hands the
	// batch's goroutine the next pipeline to run (it is lead[0]).
	done chan struct{}
	lead []*pubBatch
}

// send runs pb's script, sharing a pipeline with other channels' batches when
// the node has maxFlights pipelines in flight already: the same hand-over as a
// channel's queue (runBatch), one level up, so that many channels with one
// publication each still cost few round trips.
func (b *Broker) send(ctx context.Context, pb *pubBatch) {
	b.qmu.Lock()
	if b.flights < maxFlights {
		b.flights++
		b.qmu.Unlock()
		b.runPipeline(ctx, []*pubBatch{pb})
		return
	}
	pb.done = make(chan struct{})
	b.ready = append(b.ready, pb)
	b.qmu.Unlock()
	<-pb.done
	if pb.lead != nil {
		b.runPipeline(ctx, pb.lead)
	}
}

// runPipeline runs batches, then hands the batches ready meanwhile to the
// first of them, and wakes the others of this pipeline.
func (b *Broker) runPipeline(ctx context.Context, batches []*pubBatch) {
	b.publishBatches(ctx, batches)
	b.qmu.Lock()
	var next []*pubBatch
	if len(b.ready) == 0 {
		b.flights--
	} else {
		n := min(len(b.ready), maxPipeline)
		next = slices.Clone(b.ready[:n])
		b.ready = slices.Delete(b.ready, 0, n)
		next[0].lead = next
	}
	b.qmu.Unlock()
	wake(next, batches, func(pb *pubBatch) chan struct{} { return pb.done })
}

// publishBatches runs publishScript for each batch (one pipeline for several)
// and sets every call's result.
func (b *Broker) publishBatches(ctx context.Context, batches []*pubBatch) {
	if b.c.brk.Open() { // Redis went away while these waited
		for _, pb := range batches {
			pb.fail(ErrUnavailable)
		}
		return
	}
	b.scripts.Add(uint64(len(batches)))
	keys := make([][]string, len(batches))
	args := make([][]any, len(batches))
	for i, pb := range batches {
		keys[i], args[i] = b.scriptArgs(pb)
	}
	if len(batches) == 1 {
		res, err := publishScript.Run(ctx, b.rdb, keys[0], args[0]...).Slice()
		b.c.brk.observe(err)
		b.finish(batches[0], res, err)
		return
	}
	pipe := b.rdb.Pipeline()
	cmds := make([]*goredis.Cmd, len(batches))
	for i := range batches {
		cmds[i] = publishScript.EvalSha(ctx, pipe, keys[i], args[i]...)
	}
	_, err := pipe.Exec(ctx)
	b.c.brk.observe(err)
	for i, pb := range batches {
		res, err := cmds[i].Slice()
		if err != nil && goredis.HasErrorPrefix(err, "NOSCRIPT") {
			// Redis lost its script cache (a restart): the script did not run.
			res, err = publishScript.Run(ctx, b.rdb, keys[i], args[i]...).Slice()
			b.c.brk.observe(err)
		}
		b.finish(pb, res, err)
	}
}

// scriptArgs returns publishScript's keys and arguments for pb.
func (b *Broker) scriptArgs(pb *pubBatch) ([]string, []any) {
	// The done field (random per broker, not the node id: a restarted node may
	// reuse a configured one within the dedup window) and a counter name this
	// batch: go-redis may send the script twice (see publishScript).
	args := make([]any, 0, 7+2*len(pb.reqs))
	args = append(args, pb.reqs[0].size, pb.reqs[0].ttlMS, b.opts.MetaTTL.Milliseconds(), rand.Text()[:8],
		b.topic+pb.channel, b.doneField)
	for _, r := range pb.reqs {
		args = append(args, r.data, r.from)
	}
	args = append(args, strconv.FormatUint(b.pubSeq.Add(1), 36))
	return []string{b.key(pb.channel, "m"), b.key(pb.channel, "h")}, args
}

// finish sets the results of pb's calls from the script's reply.
func (b *Broker) finish(pb *pubBatch, res []any, err error) {
	if err == nil && len(res) != 4 {
		err = errors.New("unexpected reply")
	}
	var first int64
	var epoch string
	if err == nil {
		var ok1, ok2 bool
		first, ok1 = res[0].(int64)
		epoch, ok2 = res[1].(string)
		if !ok1 || !ok2 || first <= 0 {
			err = errors.New("unexpected reply")
		}
	}
	if err != nil {
		pb.fail(err)
		return
	}
	b.logReplaced(pb.channel, res[3], epoch)
	for i, r := range pb.reqs {
		r.pos = broker.StreamPosition{Offset: uint64(first) + uint64(i), Epoch: epoch}
	}
}

// fail fails every call of pb with err.
func (pb *pubBatch) fail(err error) {
	for _, r := range pb.reqs {
		r.err = fmt.Errorf("redis broker: publish %q: %w", pb.channel, err)
	}
}

// Subscribe implements broker.Broker. It returns once Redis confirmed the
// subscription, so every publication whose Publish starts afterwards is
// delivered.
func (b *Broker) Subscribe(ctx context.Context, channel string) error {
	if err := checkArgs(ctx, "subscribe", channel); err != nil {
		return err
	}
	b.mu.Lock()
	s := b.subs[channel]
	if s == nil {
		s = &brokerSub{ready: make(chan struct{})}
		b.subs[channel] = s
		// Held across the SUBSCRIBE so that subscribe and unsubscribe commands
		// of one channel reach Redis in the order of the reference counts.
		if err := b.ps.Subscribe(ctx, b.topic+channel); err != nil {
			delete(b.subs, channel)
			_ = b.ps.Unsubscribe(context.WithoutCancel(ctx), b.topic+channel)
			b.mu.Unlock()
			return fmt.Errorf("redis broker: subscribe %q: %w", channel, err)
		}
	}
	s.refs++
	b.mu.Unlock()
	t := time.NewTimer(b.opts.SubscribeTimeout)
	defer t.Stop()
	var err error
	select {
	case <-s.ready:
		return nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-t.C:
		err = fmt.Errorf("not confirmed within %v", b.opts.SubscribeTimeout)
	case <-b.stop:
		err = errClosed
	}
	_ = b.Unsubscribe(context.WithoutCancel(ctx), channel)
	return fmt.Errorf("redis broker: subscribe %q: %w", channel, err)
}

// Unsubscribe implements broker.Broker; extra calls are ignored.
func (b *Broker) Unsubscribe(ctx context.Context, channel string) error {
	if err := checkArgs(ctx, "unsubscribe", channel); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.subs[channel]
	if s == nil {
		return nil
	}
	if s.refs--; s.refs > 0 {
		return nil
	}
	delete(b.subs, channel)
	// go-redis forgets the channel even when the command fails, so a reconnect
	// does not resubscribe it.
	if err := b.ps.Unsubscribe(ctx, b.topic+channel); err != nil {
		return fmt.Errorf("redis broker: unsubscribe %q: %w", channel, err)
	}
	return nil
}

// History implements broker.Broker. Any Redis error is reported as
// ErrRecoveryFailed (wrapping the cause): the broker cannot vouch for a replay.
func (b *Broker) History(ctx context.Context, channel string, since *broker.StreamPosition, limit int) ([]broker.Publication, broker.StreamPosition, error) {
	if err := checkArgs(ctx, "history", channel); err != nil {
		return nil, broker.StreamPosition{}, err
	}
	if limit < 0 {
		return nil, broker.StreamPosition{}, fmt.Errorf("redis broker: history %q: negative limit %d", channel, limit)
	}
	mode, first := "l", uint64(0)
	if since != nil {
		mode, first = "s", since.Offset+1
	}
	res, err := historyScript.Run(ctx, b.rdb, []string{b.key(channel, "m"), b.key(channel, "h")}, mode, first, limit,
		rand.Text()[:8], b.opts.MetaTTL.Milliseconds()).Slice()
	if err != nil {
		return nil, broker.StreamPosition{}, fmt.Errorf("redis broker: history %q: %w: %w", channel, broker.ErrRecoveryFailed, err)
	}
	if len(res) == 0 { // no stream
		if since != nil && *since != (broker.StreamPosition{}) {
			return nil, broker.StreamPosition{}, fmt.Errorf("redis broker: history %q: stream gone: %w", channel, broker.ErrRecoveryFailed)
		}
		return nil, broker.StreamPosition{}, nil
	}
	cur, raw, err := parseHistory(res)
	if err != nil {
		return nil, broker.StreamPosition{}, fmt.Errorf("redis broker: history %q: %w: %w", channel, broker.ErrRecoveryFailed, err)
	}
	b.logReplaced(channel, res[3], cur.Epoch)
	pubs, err := parseEntries(channel, cur.Epoch, raw)
	if err != nil {
		return nil, cur, fmt.Errorf("redis broker: history %q: %w: %w", channel, broker.ErrRecoveryFailed, err)
	}
	if since == nil {
		slices.Reverse(pubs) // XREVRANGE: newest first
		return pubs, cur, nil
	}
	switch {
	case since.Epoch != cur.Epoch:
		return nil, cur, fmt.Errorf("redis broker: history %q: epoch %q is not current %q: %w", channel, since.Epoch, cur.Epoch, broker.ErrRecoveryFailed)
	case since.Offset > cur.Offset:
		return nil, cur, fmt.Errorf("redis broker: history %q: offset %d is ahead of %d: %w", channel, since.Offset, cur.Offset, broker.ErrRecoveryFailed)
	case since.Offset == cur.Offset:
		return nil, cur, nil
	case len(pubs) == 0 || pubs[0].Offset != since.Offset+1:
		return nil, cur, fmt.Errorf("redis broker: history %q: offset %d is older than retained history: %w", channel, since.Offset, broker.ErrRecoveryFailed)
	}
	return pubs, cur, nil
}

// logReplaced reports a stream the scripts restarted because the Redis that
// holds it is not the one that wrote it (see streamMeta): publications acked
// after the last save or replication may be lost, and every subscriber of the
// channel gets recovery_failed when the new epoch reaches it.
func (b *Broker) logReplaced(channel string, replaced any, epoch string) {
	r, _ := replaced.(string)
	if r == "" {
		return
	}
	old, offs, _ := strings.Cut(r, ":")
	b.c.opts.Logger.Warn("redis broker: Redis restarted or failed over; stream restarts in a new epoch, publications acked after its last save may be lost",
		"channel", channel, "old_epoch", old, "old_offset_in_redis", offs, "new_epoch", epoch)
}

func parseHistory(res []any) (broker.StreamPosition, []any, error) {
	if len(res) != 4 {
		return broker.StreamPosition{}, nil, errBadEvent
	}
	epoch, ok1 := res[0].(string)
	offs, ok2 := res[1].(string)
	raw, ok3 := res[2].([]any)
	off, err := strconv.ParseUint(offs, 10, 64)
	if !ok1 || !ok2 || !ok3 || err != nil {
		return broker.StreamPosition{}, nil, errBadEvent
	}
	return broker.StreamPosition{Offset: off, Epoch: epoch}, raw, nil
}

// parseEntries decodes stream entries [id, [field, value, ...]].
func parseEntries(channel, epoch string, raw []any) ([]broker.Publication, error) {
	pubs := make([]broker.Publication, 0, len(raw))
	for _, r := range raw {
		e, ok := r.([]any)
		if !ok || len(e) != 2 {
			return nil, errBadEvent
		}
		id, _ := e[0].(string)
		fields, _ := e[1].([]any)
		offs, _, _ := strings.Cut(id, "-")
		off, err := strconv.ParseUint(offs, 10, 64)
		if err != nil {
			return nil, errBadEvent
		}
		p := broker.Publication{Channel: channel, Offset: off, Epoch: epoch}
		for i := 0; i+1 < len(fields); i += 2 {
			k, _ := fields[i].(string)
			v, _ := fields[i+1].(string)
			switch k {
			case "d":
				p.Data = []byte(v)
			case "f":
				p.From = v
			case "t":
				ms, _ := strconv.ParseInt(v, 10, 64)
				p.Time = time.UnixMilli(ms)
			}
		}
		pubs = append(pubs, p)
	}
	return pubs, nil
}

// AddPresence implements broker.Broker; the entry lives while this node
// heartbeats (PresenceTTL).
func (b *Broker) AddPresence(ctx context.Context, channel string, info broker.ClientInfo) error {
	if err := checkArgs(ctx, "add presence", channel); err != nil {
		return err
	}
	if info.ConnID == "" {
		return fmt.Errorf("redis broker: add presence %q: empty conn id", channel)
	}
	err := presenceAddScript.Run(ctx, b.rdb, []string{b.key(channel, "p"), b.key(channel, "z")},
		b.topic+channel, b.opts.PresenceTTL.Milliseconds(), info.ConnID, info.User).Err()
	if err != nil {
		return fmt.Errorf("redis broker: add presence %q: %w", channel, err)
	}
	b.mu.Lock()
	m := b.presence[channel]
	if m == nil {
		m = make(map[string]string)
		b.presence[channel] = m
	}
	m[info.ConnID] = info.User
	b.mu.Unlock()
	return nil
}

// RemovePresence implements broker.Broker.
func (b *Broker) RemovePresence(ctx context.Context, channel string, connID string) error {
	if err := checkArgs(ctx, "remove presence", channel); err != nil {
		return err
	}
	b.mu.Lock()
	if m := b.presence[channel]; m != nil {
		delete(m, connID)
		if len(m) == 0 {
			delete(b.presence, channel)
		}
	}
	b.mu.Unlock()
	err := presenceRemoveScript.Run(ctx, b.rdb, []string{b.key(channel, "p"), b.key(channel, "z")},
		b.topic+channel, connID).Err()
	if err != nil {
		return fmt.Errorf("redis broker: remove presence %q: %w", channel, err)
	}
	return nil
}

// Presence implements broker.Broker: live entries of all nodes, sorted by ConnID.
func (b *Broker) Presence(ctx context.Context, channel string) ([]broker.ClientInfo, error) {
	if err := checkArgs(ctx, "presence", channel); err != nil {
		return nil, err
	}
	flat, err := presenceGetScript.Run(ctx, b.rdb, []string{b.key(channel, "p"), b.key(channel, "z")}, b.topic+channel).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("redis broker: presence %q: %w", channel, err)
	}
	out := make([]broker.ClientInfo, 0, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		out = append(out, broker.ClientInfo{ConnID: flat[i], User: flat[i+1]})
	}
	slices.SortFunc(out, func(a, b broker.ClientInfo) int { return strings.Compare(a.ConnID, b.ConnID) })
	return out, nil
}

// presenceLoop renews this node's presence entries until close.
func (b *Broker) presenceLoop(every time.Duration) {
	defer close(b.beatDone)
	for backoff(b.stop, every) {
		b.mu.Lock()
		snap := make(map[string][]any, len(b.presence))
		for ch, m := range b.presence {
			args := []any{b.topic + ch, b.opts.PresenceTTL.Milliseconds()}
			for conn, user := range m {
				args = append(args, conn, user)
			}
			snap[ch] = args
		}
		b.mu.Unlock()
		if len(snap) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), every)
		err := presenceAddScript.Load(ctx, b.rdb).Err()
		if err == nil {
			pipe := b.rdb.Pipeline()
			for ch, args := range snap {
				presenceAddScript.EvalSha(ctx, pipe, []string{b.key(ch, "p"), b.key(ch, "z")}, args...)
			}
			_, err = pipe.Exec(ctx)
		}
		cancel()
		if err != nil {
			b.c.opts.Logger.Warn("redis broker presence heartbeat failed", "err", err)
		}
	}
}

// receiveLoop reads pub/sub until close; see Broker.
func (b *Broker) receiveLoop() {
	defer close(b.loopDone)
	ctx := context.Background()
	wait := 50 * time.Millisecond
	for {
		msg, err := b.ps.ReceiveTimeout(ctx, 10*time.Second)
		select {
		case <-b.stop:
			return
		default:
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				_ = b.ps.Ping(ctx) // keep a silent connection honest
				continue
			}
			if !backoff(b.stop, wait) {
				return
			}
			// Capped low: while this node is not subscribed, publications of
			// other nodes reach it only through history, which is bounded.
			wait = min(wait*2, maxResubscribeWait)
			continue
		}
		wait = 50 * time.Millisecond
		switch m := msg.(type) {
		case *goredis.Subscription:
			if m.Kind == "subscribe" {
				b.onSubscribed(strings.TrimPrefix(m.Channel, b.topic))
			}
		case *goredis.Message:
			b.onMessage(strings.TrimPrefix(m.Channel, b.topic), m.Payload)
		}
	}
}

func (b *Broker) lookup(channel string) *brokerSub {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.subs[channel]
}

// onSubscribed confirms a new subscription, or catches up after a reconnect:
// whatever was published while this node was not subscribed is in history
// (as far as history reaches), possibly in a new epoch.
func (b *Broker) onSubscribed(channel string) {
	b.mu.Lock()
	s := b.subs[channel]
	first := s != nil && !s.confirmed
	if first {
		s.confirmed = true
		close(s.ready)
	}
	b.mu.Unlock()
	if s != nil && !first {
		b.catchUp(channel, s, nil)
	}
}

func (b *Broker) onMessage(channel, payload string) {
	s := b.lookup(channel)
	if s == nil {
		return
	}
	ev, err := decodeEvent(channel, payload)
	if err != nil {
		b.c.opts.Logger.Warn("redis broker: dropping malformed event", "channel", channel)
		return
	}
	switch ev.kind {
	case evJoin:
		b.deliver(func(h broker.EventHandler) { h.HandleJoin(channel, ev.info) })
	case evLeave:
		b.deliver(func(h broker.EventHandler) { h.HandleLeave(channel, ev.info) })
	case evPublication, evBatch:
		for _, p := range ev.pubs {
			b.onPublication(channel, s, p)
		}
	}
}

// onPublication delivers p after whatever this node missed before it.
func (b *Broker) onPublication(channel string, s *brokerSub, p broker.Publication) {
	if s.epoch != "" {
		switch {
		case p.Epoch == s.epoch && p.Offset <= s.last:
			return // already delivered (by a catch-up)
		case p.Epoch == s.epoch && p.Offset == s.last+1:
		case p.Epoch != s.epoch && p.Offset == 1:
			// A new epoch from its start; subscribers learn of the change
			// (and of a possible loss in the old one) from the epoch itself.
		default:
			b.catchUp(channel, s, &p)
			if p.Epoch == s.epoch && p.Offset <= s.last {
				return
			}
		}
	}
	s.epoch, s.last = p.Epoch, p.Offset
	b.deliver(func(h broker.EventHandler) { h.HandlePublication(p) })
}

// catchUp delivers, from history, the publications after s's position and
// before upto (nil: up to the current offset). When history cannot replay from
// s's position (the epoch changed because Redis lost or rewound data, or the
// entries were trimmed) it delivers everything retained in the current epoch:
// the handler drops what each subscriber already has and turns the rest of the
// jump into recovery_failed (room does). What history no longer holds is
// logged at warn with a count.
func (b *Broker) catchUp(channel string, s *brokerSub, upto *broker.Publication) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var (
		pubs []broker.Publication
		cur  broker.StreamPosition
		err  error
	)
	if s.epoch != "" {
		pubs, cur, err = b.History(ctx, channel, &broker.StreamPosition{Offset: s.last, Epoch: s.epoch}, 0)
	}
	if s.epoch == "" || (errors.Is(err, broker.ErrRecoveryFailed) && cur.Epoch != "") {
		pubs, cur, err = b.History(ctx, channel, nil, 0)
	}
	if err != nil {
		b.c.opts.Logger.Warn("redis broker: cannot read history to fill a gap; subscribers will see it as recovery_failed",
			"channel", channel, "epoch", s.epoch, "offset", s.last, "err", err)
		return
	}
	end := cur
	if upto != nil {
		end = broker.StreamPosition{Epoch: upto.Epoch, Offset: upto.Offset - 1}
	}
	fromEpoch, fromOff := s.epoch, s.last
	var missing uint64
	for _, p := range pubs {
		if p.Epoch == end.Epoch && p.Offset > end.Offset {
			break
		}
		if p.Epoch == s.epoch && p.Offset <= s.last {
			continue
		}
		if s.epoch != "" {
			missing += skipped(s.epoch, s.last, p.Epoch, p.Offset)
		}
		s.epoch, s.last = p.Epoch, p.Offset
		b.deliver(func(h broker.EventHandler) { h.HandlePublication(p) })
	}
	if s.epoch != "" && upto != nil {
		missing += skipped(s.epoch, s.last, upto.Epoch, upto.Offset)
	} else if s.epoch != "" && end.Epoch != "" && (end.Epoch != s.epoch || end.Offset > s.last) {
		missing += skipped(s.epoch, s.last, end.Epoch, end.Offset+1)
	}
	switch {
	case missing > 0:
		b.c.opts.Logger.Warn("redis broker: publications not recoverable from history; subscribers get recovery_failed",
			"channel", channel, "from_epoch", fromEpoch, "from_offset", fromOff,
			"to_epoch", end.Epoch, "to_offset", end.Offset, "missing", missing, "epoch_changed", end.Epoch != fromEpoch)
	case fromEpoch != "" && end.Epoch != "" && end.Epoch != fromEpoch:
		b.c.opts.Logger.Warn("redis broker: channel moved to a new epoch while this node was not subscribed; subscribers get recovery_failed",
			"channel", channel, "from_epoch", fromEpoch, "from_offset", fromOff, "to_epoch", end.Epoch, "to_offset", end.Offset)
	}
}

// skipped counts the publications between a delivered position and the next
// delivered publication: those of the same epoch in between, or, across an
// epoch change, those of the new epoch before it (what the old epoch lost is
// unknown, and reported by the change itself).
func skipped(epoch string, last uint64, nextEpoch string, next uint64) uint64 {
	if nextEpoch == epoch {
		if next > last+1 {
			return next - last - 1
		}
		return 0
	}
	if next > 1 {
		return next - 1
	}
	return 0
}

// close stops the goroutines; Run returns.
func (b *Broker) close() {
	b.once.Do(func() { close(b.stop) })
	_ = b.ps.Close() // unblocks Receive
	<-b.loopDone
	<-b.beatDone
}

// Interface guard.
var _ broker.Broker = (*Broker)(nil)
