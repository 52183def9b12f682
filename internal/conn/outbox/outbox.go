package outbox

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/wsgate/wsgate/internal/conn/transport"
	"github.com/wsgate/wsgate/internal/defaults"
)

// Defaults applied by New for zero Options fields.
const (
	DefaultMaxMessages = 256
	DefaultMaxBytes    = 1 << 20 // 1 MiB
)

// keepSlots is the ring capacity an idle queue may keep; bigger rings grown by a
// burst are released when the queue empties, so idle memory stays small.
const keepSlots = 16

var (
	// ErrFull means the push would exceed MaxMessages or MaxBytes. The message was not
	// queued; the connection is a slow consumer and should be closed.
	ErrFull = errors.New("outbox: queue full")
	// ErrTooLarge means the message alone exceeds MaxBytes, so it can never be queued.
	// It usually means MaxBytes is configured below the largest outgoing message.
	ErrTooLarge = errors.New("outbox: message larger than queue byte limit")
	// ErrClosed means the queue was closed or stopped after a write error.
	ErrClosed = errors.New("outbox: queue closed")
	// errNilWrite is reported through onFail when New was given no write function.
	errNilWrite = errors.New("outbox: no write function")
)

// Options bounds one Queue. Zero fields take the defaults.
type Options struct {
	// MaxMessages is the most messages queued, including the one being written.
	// Default 256.
	MaxMessages int
	// MaxBytes is the most payload bytes queued, including the message being
	// written. Default 1 MiB.
	MaxBytes int
}

// Validate reports options that cannot be defaulted.
func (o Options) Validate() error {
	if o.MaxMessages < 0 {
		return fmt.Errorf("outbox: max messages %d is negative", o.MaxMessages)
	}
	if o.MaxBytes < 0 {
		return fmt.Errorf("outbox: max bytes %d is negative", o.MaxBytes)
	}
	return nil
}

func (o Options) withDefaults() Options {
	defaults.Positive(&o.MaxMessages, DefaultMaxMessages)
	defaults.Positive(&o.MaxBytes, DefaultMaxBytes)
	return o
}

// Stats are the queue's lifetime counters.
type Stats struct {
	Written  uint64 // messages handed to write without error
	Rejected uint64 // pushes refused with ErrFull or ErrTooLarge
	Dropped  uint64 // queued messages discarded by Close or after a write error
}

// Queue is a bounded FIFO of encoded messages for one connection. All methods are
// safe for concurrent use.
type Queue struct {
	w    Writer
	opts Options

	mu sync.Mutex
	// ring holds queued messages; the message being written stays at ring[head]
	// until its write returns, so the bounds count it and Len reports it.
	ring  []entry
	head  int
	n     int
	bytes int
	// inl and inlBytes count a message PushOrWrite is writing inline: it is
	// in the bounds and in Len but not in the ring.
	inl, inlBytes int
	exited        chan struct{} // lazily made by Wait, closed when the drainer exits
	stats         Stats
	// The flags share one word (every connection has a Queue: 144 bytes,
	// not 160).
	running bool // the writer's role is taken: a drainer goroutine, or an inline PushOrWrite
	closed  bool // no more pushes; drainer must stop
	direct  bool // w's TryWrite may be used by Push (NewWriter, SetDirect)
}

// Writer is the connection a Queue writes to. A connection that implements
// it on itself (the session does) costs no closures; New and NewOp wrap
// plain functions.
type Writer interface {
	// WriteOp is the transport write: one message, which may block but must
	// return eventually (it carries the write deadline). It is called by one
	// goroutine at a time: the drainer, or the caller of PushOrWrite; the
	// Queue never retains or mutates the bytes after it returns.
	WriteOp(op transport.Opcode, b []byte) error
	// WriteFailed is called once, by that goroutine, with the first write
	// error; the queue is stopped by then.
	WriteFailed(err error)
	// TryWrite and FlushTail are Direct's Try and Flush; used only when the
	// queue was made with direct writes (NewWriter's direct, SetDirect).
	TryWrite(op transport.Opcode, b []byte) (transport.TryResult, error)
	FlushTail() error
}

// funcWriter is a Writer made of functions (New, NewOp, SetDirect).
type funcWriter struct {
	write  func(op transport.Opcode, b []byte) error
	onFail func(err error)
	direct Direct
}

func (f *funcWriter) WriteOp(op transport.Opcode, b []byte) error { return f.write(op, b) }
func (f *funcWriter) WriteFailed(err error) {
	if f.onFail != nil {
		f.onFail(err)
	}
}
func (f *funcWriter) TryWrite(op transport.Opcode, b []byte) (transport.TryResult, error) {
	return f.direct.Try(op, b)
}
func (f *funcWriter) FlushTail() error { return f.direct.Flush() }

// Direct is a connection's non-blocking writer (transport.Conn.TryWriteMessage
// and Flush, wrapped by the session for its counters). With it, a Push that
// finds the queue idle writes the message at once on the pushing goroutine
// without ever blocking it, sparing the drainer goroutine's start, wake-up and
// hand-off (what a fan-out to thousands of idle subscribers pays per message);
// a message the socket cannot take at once is queued as before.
type Direct struct {
	// Try writes b without blocking: all of it, nothing (TryBlocked: the
	// message is queued), or a part whose rest the connection keeps
	// (TryPartial: the drainer then calls Flush). An error fails the queue
	// like a failed write.
	Try func(op transport.Opcode, b []byte) (transport.TryResult, error)
	// Flush writes what a TryPartial left; it may block (write deadline).
	Flush func() error
}

// opFlush marks a queue entry that writes nothing but the rest of a partial
// direct write (Direct.Flush).
const opFlush transport.Opcode = 0xff

// entry is one queued message and the opcode it is written with.
type entry struct {
	b  []byte
	op transport.Opcode
}

// New returns a Queue of text messages; see NewOp.
func New(opts Options, write func(b []byte) error, onFail func(err error)) *Queue {
	if write == nil {
		return NewOp(opts, nil, onFail)
	}
	return NewOp(opts, func(_ transport.Opcode, b []byte) error { return write(b) }, onFail)
}

// NewOp returns an empty Queue that writes with write, one message at a time, from a
// drainer goroutine. Every message keeps the opcode it was pushed with (Push and
// PushOrWrite queue text, PushOp and PushOrWriteOp either), so a binary message
// relayed between text messages stays binary and in order. write is the transport write and must return eventually (it
// carries the write deadline); the Queue never retains or mutates the bytes after
// write returns. write is called by one goroutine at a time: the drainer, or the
// caller of PushOrWrite. onFail (may be nil) is called once, by that goroutine,
// with the first write error; the queue is stopped by then. Invalid options are
// defaulted.
func NewOp(opts Options, write func(op transport.Opcode, b []byte) error, onFail func(err error)) *Queue {
	if write == nil {
		write = func(transport.Opcode, []byte) error { return errNilWrite }
	}
	return &Queue{w: &funcWriter{write: write, onFail: onFail}, opts: opts.withDefaults()}
}

// NewWriter is NewOp with a Writer; direct makes Push write an idle queue's
// message with w.TryWrite (see Direct). Invalid options are defaulted.
func NewWriter(opts Options, w Writer, direct bool) *Queue {
	return &Queue{w: w, direct: direct, opts: opts.withDefaults()}
}

// Push queues b for writing and returns at once; it never waits for the writer.
// b is shared with other queues and must not be modified by anyone afterwards.
// It returns ErrFull when b would exceed a bound (nothing is queued: close the
// connection as a slow consumer), ErrTooLarge when b alone exceeds MaxBytes, and
// ErrClosed after Close or a write error.
func (q *Queue) Push(b []byte) error { return q.PushOp(transport.Text, b) }

// SetDirect installs a non-blocking writer used by Push and PushOp when the
// queue is idle, on a queue made by New or NewOp. Call it before the queue is
// used.
func (q *Queue) SetDirect(d Direct) {
	fw, ok := q.w.(*funcWriter)
	if !ok || d.Try == nil || d.Flush == nil {
		return
	}
	q.mu.Lock()
	fw.direct, q.direct = d, true
	q.mu.Unlock()
}

// PushOp is Push for a message written with opcode op.
func (q *Queue) PushOp(op transport.Opcode, b []byte) error {
	q.mu.Lock()
	if err := q.admitLocked(b); err != nil {
		q.mu.Unlock()
		return err
	}
	if q.direct && !q.running && q.n == 0 {
		return q.tryDirectLocked(op, b)
	}
	q.appendLocked(op, b)
	start := !q.running
	q.running = true
	q.mu.Unlock()
	if start {
		go q.drain()
	}
	return nil
}

// PushOrWrite is Push for a connection's replies to its own client, called by the
// goroutine that reads that connection (a pong, an error reply). When nothing is
// queued and nobody is writing, it takes the writer's role and writes b on the
// calling goroutine, sparing the hand-off to a drainer goroutine; otherwise it
// queues b behind what is there, exactly as Push. Order is kept either way: a
// message pushed while the inline write runs waits for it, and is then written by
// a drainer. It may block for one write (bounded by the transport's write
// deadline), so it must never be called by a goroutine serving other connections
// (a broadcaster): those use Push, or one slow client would stall them all.
//
// A nil error means b was written or queued; a write error is reported like a
// drainer's (the queue stops, onFail runs) and returned.
func (q *Queue) PushOrWrite(b []byte) error { return q.PushOrWriteOp(transport.Text, b) }

// PushOrWriteOp is PushOrWrite for a message written with opcode op. Besides a
// connection's reader, a goroutine that serves this one connection only (the
// upstream leg of a gateway connection) may call it: blocking it for one write
// is backpressure on that upstream alone.
func (q *Queue) PushOrWriteOp(op transport.Opcode, b []byte) error {
	_, err := q.pushOrWrite(op, b)
	return err
}

// PushOrWriteReuse is PushOrWrite for a caller that reuses its buffer: it
// also reports whether the queue is done with b (written, or refused), so
// that b may be overwritten, or still holds it (queued behind other
// messages), so that it must not be.
func (q *Queue) PushOrWriteReuse(b []byte) (reusable bool, err error) {
	return q.pushOrWrite(transport.Text, b)
}

func (q *Queue) pushOrWrite(op transport.Opcode, b []byte) (bool, error) {
	q.mu.Lock()
	if err := q.admitLocked(b); err != nil {
		q.mu.Unlock()
		return true, err
	}
	if q.running {
		// A drainer or another writer holds the role: b waits its turn.
		q.appendLocked(op, b)
		q.mu.Unlock()
		return false, nil
	}
	// Idle (nothing queued): b is written at once, counted in the bounds
	// while it is, but never put in the ring, so that a connection that only
	// ever gets inline replies never allocates one.
	q.running = true
	q.inl, q.inlBytes = 1, len(b)
	q.mu.Unlock()
	err := q.w.WriteOp(op, b)
	q.mu.Lock()
	if !q.finishInlineLocked(err) {
		if err != nil {
			return true, fmt.Errorf("outbox: write: %w", err)
		}
		return true, nil // written; Close came meanwhile
	}
	if q.n > 0 {
		// Pushes arrived during the write; a drainer takes over the role
		// (running stays true) so that this reader goes back to reading.
		q.mu.Unlock()
		go q.drain()
		return true, nil
	}
	q.exitLocked()
	q.mu.Unlock()
	return true, nil
}

// tryDirectLocked writes an admitted b with Direct.Try while holding the
// writer's role, so nothing else is written meanwhile; what the socket did not
// take goes to a drainer. Called with mu held; returns with it released.
func (q *Queue) tryDirectLocked(op transport.Opcode, b []byte) error {
	q.running = true
	q.inl, q.inlBytes = 1, len(b)
	q.mu.Unlock()
	res, err := q.w.TryWrite(op, b)
	q.mu.Lock()
	if err != nil || res == transport.TryWritten {
		if !q.finishInlineLocked(err) {
			return nil
		}
		if q.n > 0 {
			// Pushes arrived during the write and were queued behind it
			// (the role was taken): a drainer takes the role over, or they
			// would wait for the next push, and a reply pushed inline
			// would overtake them.
			q.mu.Unlock()
			go q.drain()
			return nil
		}
		q.exitLocked()
		q.mu.Unlock()
		return nil
	}
	q.inl, q.inlBytes = 0, 0
	if q.closed {
		q.exitLocked()
		q.mu.Unlock()
		return nil
	}
	if res == transport.TryPartial {
		// Counted as written when the flush succeeds.
		q.appendLocked(opFlush, nil)
	} else {
		q.appendLocked(op, b)
	}
	// The role passes to a drainer (running stays true).
	q.mu.Unlock()
	go q.drain()
	return nil
}

// writeEntry writes one queued entry.
func (q *Queue) writeEntry(e entry) error {
	if e.op == opFlush {
		return q.w.FlushTail()
	}
	return q.w.WriteOp(e.op, e.b)
}

// admitLocked checks b against the state and bounds, counting refusals. Called
// with mu held.
func (q *Queue) admitLocked(b []byte) error {
	if q.closed {
		return ErrClosed
	}
	if len(b) > q.opts.MaxBytes {
		q.stats.Rejected++
		return ErrTooLarge
	}
	if q.n+q.inl+1 > q.opts.MaxMessages || q.bytes+q.inlBytes+len(b) > q.opts.MaxBytes {
		q.stats.Rejected++
		return ErrFull
	}
	return nil
}

// appendLocked puts an admitted b at the tail of the ring. Called with mu held.
func (q *Queue) appendLocked(op transport.Opcode, b []byte) {
	if q.n == len(q.ring) {
		q.grow()
	}
	q.ring[(q.head+q.n)%len(q.ring)] = entry{b: b, op: op}
	q.n++
	q.bytes += len(b)
}

// grow doubles the ring, never beyond what MaxMessages can fill. Called with mu held.
func (q *Queue) grow() {
	size := 2 * len(q.ring)
	if size < 4 {
		size = 4
	}
	if size > q.opts.MaxMessages {
		size = q.opts.MaxMessages
	}
	ring := make([]entry, size)
	for i := 0; i < q.n; i++ {
		ring[i] = q.ring[(q.head+i)%len(q.ring)]
	}
	q.ring, q.head = ring, 0
}

// BatchWriter is a Writer that can write several queued messages of one
// opcode at once (transport.Conn.WriteMessages: one writev per socket
// wake-up). The drainer uses it when more than one message waits, so that a
// queue that built up behind a slow reader costs a system call per batch,
// not per message. WriteOps reports how many messages went out whole; an
// error fails the queue as WriteOp's does.
type BatchWriter interface {
	WriteOps(op transport.Opcode, bs [][]byte) (int, error)
}

// Bounds of one batch: transport.MaxBatch messages, and no more bytes than
// this (a batch is written, and waited for, as one write).
const maxBatchBytes = 256 << 10

// batches recycles the drainer's batch slices.
var batches = sync.Pool{New: func() any { b := make([][]byte, 0, transport.MaxBatch); return &b }}

// drain writes queued messages until the queue is empty, closed or a write fails.
func (q *Queue) drain() {
	bw, _ := q.w.(BatchWriter)
	q.mu.Lock()
	for !q.closed && q.n > 0 {
		e := q.ring[q.head]
		if bw != nil && q.n > 1 && e.op != opFlush {
			if !q.drainBatchLocked(bw, e.op) {
				return
			}
			continue
		}
		q.mu.Unlock()
		err := q.writeEntry(e)
		q.mu.Lock()
		if !q.finishLocked(e.b, err) {
			return
		}
	}
	q.exitLocked()
	q.mu.Unlock()
}

// drainBatchLocked writes the messages of opcode op at the head of the ring
// (up to transport.MaxBatch and maxBatchBytes; at least the head) with one
// WriteOps, and accounts for them as finishLocked does. Called with mu held
// and the writer's role; it reports whether the drainer may go on (false:
// mu released, role given up).
func (q *Queue) drainBatchLocked(bw BatchWriter, op transport.Opcode) bool {
	bp := batches.Get().(*[][]byte)
	bs, size := (*bp)[:0], 0
	for i := 0; i < q.n && len(bs) < transport.MaxBatch; i++ {
		e := q.ring[(q.head+i)%len(q.ring)]
		if e.op != op || (len(bs) > 0 && size+len(e.b) > maxBatchBytes) {
			break
		}
		bs = append(bs, e.b)
		size += len(e.b)
	}
	q.mu.Unlock()
	written, err := bw.WriteOps(op, bs)
	clear(bs)
	*bp = bs[:0]
	batches.Put(bp)
	q.mu.Lock()
	if q.closed {
		// Close already dropped everything, including the batch.
		q.exitLocked()
		q.mu.Unlock()
		return false
	}
	k := len(bs)
	for i := range k {
		q.ring[(q.head+i)%len(q.ring)] = entry{}
	}
	q.head = (q.head + k) % len(q.ring)
	q.n -= k
	q.bytes -= size
	q.stats.Written += uint64(written)
	if err != nil {
		if written < k {
			// As for a single write: the message that failed is neither
			// written nor dropped; the ones after it in the batch are
			// dropped with the rest of the queue.
			q.stats.Dropped += uint64(k - written - 1)
		}
		q.failLocked(err)
		return false
	}
	return true
}

// finishLocked accounts for the write of b, the head of the ring, that returned
// err; the caller holds the writer's role and mu. It reports whether the writer
// may go on. When it returns false, mu has been released and the role given up:
// Close dropped everything meanwhile, or the write failed, in which case the
// queue is stopped and onFail has run.
func (q *Queue) finishLocked(b []byte, err error) bool {
	if q.closed {
		// Close already dropped everything, including b.
		q.exitLocked()
		q.mu.Unlock()
		return false
	}
	q.ring[q.head] = entry{}
	q.head = (q.head + 1) % len(q.ring)
	q.n--
	q.bytes -= len(b)
	if err != nil {
		q.failLocked(err)
		return false
	}
	q.stats.Written++
	return true
}

// finishInlineLocked is finishLocked for a b written inline (not in the
// ring).
func (q *Queue) finishInlineLocked(err error) bool {
	q.inl, q.inlBytes = 0, 0
	if q.closed {
		q.exitLocked()
		q.mu.Unlock()
		return false
	}
	if err != nil {
		q.failLocked(err)
		return false
	}
	q.stats.Written++
	return true
}

// failLocked stops the queue after the write error err, gives up the writer's
// role, releases mu and reports to onFail. Called with mu held.
func (q *Queue) failLocked(err error) {
	q.closed = true
	q.dropLocked()
	q.exitLocked()
	q.mu.Unlock()
	q.w.WriteFailed(fmt.Errorf("outbox: write: %w", err))
}

// exitLocked marks the drainer gone and wakes waiters. Called with mu held.
func (q *Queue) exitLocked() {
	q.running = false
	if q.n == 0 && len(q.ring) > keepSlots {
		q.ring, q.head = nil, 0
	}
	if q.exited != nil {
		close(q.exited)
		q.exited = nil
	}
}

// dropLocked discards every queued message, releasing their memory. Called with mu held.
func (q *Queue) dropLocked() {
	q.stats.Dropped += uint64(q.n + q.inl)
	q.ring, q.head, q.n, q.bytes = nil, 0, 0, 0
	q.inl, q.inlBytes = 0, 0
}

// Close stops accepting pushes and drops queued messages. It returns promptly,
// without waiting for a write in progress: the drainer never calls write again and
// exits as soon as that write returns (bounded by the transport's write deadline,
// or at once when the caller closes the connection). Use Wait to wait for it.
// onFail is not called by Close. Close is idempotent and safe concurrently with Push.
func (q *Queue) Close() {
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		q.dropLocked()
	}
	q.mu.Unlock()
}

// Wait blocks until nobody is writing (no drainer, no inline PushOrWrite), or ctx ends. Before Close that means
// everything pushed so far has been written (a flush, useful before a graceful
// close frame); after Close it means the in-flight write, if any, has returned.
func (q *Queue) Wait(ctx context.Context) error {
	q.mu.Lock()
	if !q.running {
		q.mu.Unlock()
		return nil
	}
	if q.exited == nil {
		q.exited = make(chan struct{})
	}
	ch := q.exited
	q.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("outbox: wait for writer: %w", ctx.Err())
	}
}

// Len returns the queued messages and bytes, including a message being written.
func (q *Queue) Len() (msgs, bytes int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n + q.inl, q.bytes + q.inlBytes
}

// Closed reports whether the queue no longer accepts pushes (Close or write error).
func (q *Queue) Closed() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closed
}

// Stats returns the lifetime counters.
func (q *Queue) Stats() Stats {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.stats
}
