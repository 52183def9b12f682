package audit

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/internal/defaults"
	"github.com/wsgate/wsgate/internal/observe/offer"
	"github.com/wsgate/wsgate/internal/observe/redact"
	"github.com/wsgate/wsgate/internal/truncate"
)

// Defaults applied by New to zero Options fields.
const (
	DefaultMaxBytes        = 100 << 20
	DefaultMaxFiles        = 5
	DefaultQueueSize       = 4096
	DefaultMessageMaxBytes = 256
)

// Options configures a Logger.
type Options struct {
	// Path of the audit file: "" disables auditing, "-" writes to stderr
	// (no rotation). The file is created 0600 and opened O_APPEND.
	Path string
	// Output, when set, receives the lines instead of Path (no rotation,
	// never closed). Meant for tests and for embedding.
	Output io.Writer
	// MaxBytes rotates the file before a line would take it past this size.
	// Default DefaultMaxBytes (100 MiB).
	MaxBytes int64
	// MaxFiles is how many rotated files (path.1 … path.N) are kept.
	// Default DefaultMaxFiles (5).
	MaxFiles int
	// QueueSize bounds the lines waiting for the writer; beyond it events
	// are dropped and counted. Default DefaultQueueSize.
	QueueSize int
	// MessageSampleRate is the fraction (0..1) of messages LogMessage
	// records. Default 0: message logging off.
	MessageSampleRate float64
	// MessageMaxBytes truncates logged message bodies. Default 256.
	MessageMaxBytes int
	// Now is the clock for Event.Time; default time.Now.
	Now func() time.Time

	// Chain makes the log tamper-evident: every line gets "seq" and "prev"
	// (the SHA-256 of the line before it), every file starts with a
	// chain_anchor record continuing the previous file, and a restart
	// continues from the last line of the existing file. See docs/audit.md.
	Chain bool
	// CheckpointKey, when set (Chain must be on), signs checkpoint records
	// over the chain head: every CheckpointEvery records, every
	// CheckpointInterval when records were written, before each rotation
	// and on Close.
	CheckpointKey ed25519.PrivateKey
	// CheckpointInterval defaults to DefaultCheckpointInterval; negative
	// disables the timer.
	CheckpointInterval time.Duration
	// CheckpointEvery defaults to DefaultCheckpointEvery; negative disables
	// the count.
	CheckpointEvery int
	// OnCheckpoint, when set, is called on the writer goroutine with each
	// checkpoint once its line is buffered for the file; it must not block
	// (Shipper.Send queues). File is the file's name when it was written.
	OnCheckpoint func(CheckpointInfo)
}

// Validate reports options that cannot be right.
func (o Options) Validate() error {
	switch {
	case o.MaxBytes < 0:
		return fmt.Errorf("audit: max_bytes %d is negative", o.MaxBytes)
	case o.MaxFiles < 0:
		return fmt.Errorf("audit: max_files %d is negative", o.MaxFiles)
	case o.QueueSize < 0:
		return fmt.Errorf("audit: queue_size %d is negative", o.QueueSize)
	case o.MessageSampleRate < 0 || o.MessageSampleRate > 1 || o.MessageSampleRate != o.MessageSampleRate:
		return fmt.Errorf("audit: message_sample_rate %v is outside [0,1]", o.MessageSampleRate)
	case o.MessageMaxBytes < 0:
		return fmt.Errorf("audit: message_max_bytes %d is negative", o.MessageMaxBytes)
	case o.CheckpointKey != nil && !o.Chain:
		return errors.New("audit: a checkpoint key needs the chain on")
	case o.CheckpointKey != nil && len(o.CheckpointKey) != ed25519.PrivateKeySize:
		return fmt.Errorf("audit: checkpoint key is %d bytes, want %d", len(o.CheckpointKey), ed25519.PrivateKeySize)
	}
	return nil
}

func (o *Options) defaults() {
	o.MaxBytes = cmp.Or(o.MaxBytes, DefaultMaxBytes)
	o.MaxFiles = cmp.Or(o.MaxFiles, DefaultMaxFiles)
	o.QueueSize = cmp.Or(o.QueueSize, DefaultQueueSize)
	o.MessageMaxBytes = cmp.Or(o.MessageMaxBytes, DefaultMessageMaxBytes)
	defaults.Now(&o.Now)
	o.CheckpointInterval = cmp.Or(o.CheckpointInterval, DefaultCheckpointInterval)
	o.CheckpointEvery = cmp.Or(o.CheckpointEvery, DefaultCheckpointEvery)
}

// Stats counts what happened to events.
type Stats struct {
	Written uint64 // lines handed to the file
	Dropped uint64 // events lost to a full queue or a closed logger
	Errors  uint64 // write, rotate or encode failures
	// Checkpoints counts signed checkpoint records written (they, and chain
	// anchors, are not counted in Written).
	Checkpoints uint64
}

// Logger writes audit events. A nil or disabled Logger accepts every call
// and does nothing, so callers need no checks.
type Logger struct {
	opts   Options
	r      *redact.Redactor
	sample func() float64

	ch        chan []byte
	stop      chan struct{}
	done      chan struct{}
	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error

	written, dropped, errs, checkpoints atomic.Uint64

	// Owned by the writer goroutine.
	file *os.File
	out  io.Writer
	bw   *bufio.Writer
	size int64
	ch2  *chain // nil when Options.Chain is off
}

// New opens the audit destination and starts the writer. r may be nil (JWTs
// and URL queries are still masked).
func New(opts Options, r *redact.Redactor) (*Logger, error) {
	l, err := newLogger(opts, r)
	if err != nil || !l.Enabled() {
		return l, err
	}
	go l.run()
	return l, nil
}

// newLogger is New without starting the writer (benchmarks drive write
// directly to measure the whole per-event cost on one goroutine).
func newLogger(opts Options, r *redact.Redactor) (*Logger, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts.defaults()
	l := &Logger{opts: opts, r: r, sample: rand.Float64}
	if opts.Path == "" && opts.Output == nil {
		return l, nil // disabled: no goroutine, every call a no-op
	}
	switch {
	case opts.Output != nil:
		l.out = opts.Output
	case opts.Path == "-":
		l.out = os.Stderr
	default:
		if err := l.open(); err != nil {
			return nil, err
		}
	}
	l.bw = bufio.NewWriterSize(l.out, 64<<10)
	if opts.Chain {
		if err := l.startChain(); err != nil {
			if l.file != nil {
				_ = l.file.Close()
			}
			return nil, err
		}
	}
	l.ch = make(chan []byte, opts.QueueSize)
	l.stop = make(chan struct{})
	l.done = make(chan struct{})
	return l, nil
}

// Enabled reports whether events are written anywhere.
func (l *Logger) Enabled() bool { return l != nil && l.ch != nil }

// Stats returns the event counters.
func (l *Logger) Stats() Stats {
	if l == nil {
		return Stats{}
	}
	return Stats{Written: l.written.Load(), Dropped: l.dropped.Load(), Errors: l.errs.Load(),
		Checkpoints: l.checkpoints.Load()}
}

// Log records e without blocking: the line is encoded here and queued for the
// writer; if the queue is full the event is dropped and counted. Every string
// is redacted first.
func (l *Logger) Log(e Event) {
	if !l.Enabled() {
		return
	}
	if l.closed.Load() {
		l.dropped.Add(1)
		return
	}
	b, err := l.encode(e)
	if err != nil {
		l.errs.Add(1)
		return
	}
	offer.Send(l.ch, b, false, &l.dropped) // closed was checked before the encoding
}

// LogMessage records a client message if it falls in the sample. The body is
// redacted before it is truncated (so a secret cut in half cannot slip
// through); a JSON body also has values under sensitive keys masked.
func (l *Logger) LogMessage(connID, user, typ string, data []byte) {
	if l.SampleMessage() {
		l.LogSampledMessage(connID, user, typ, data)
	}
}

// SampleMessage draws whether the current message falls in the sample; a caller
// that must look at a message before choosing how to record it draws first, then
// calls LogSampledMessage or LogSealedMessage.
func (l *Logger) SampleMessage() bool {
	if !l.Enabled() || l.opts.MessageSampleRate <= 0 {
		return false
	}
	return l.opts.MessageSampleRate >= 1 || l.sample() < l.opts.MessageSampleRate
}

// LogSealedMessage records a sampled message whose body must not be kept (a
// publication into an encrypted namespace): its size, channel and the id of the
// key that seals it, never the body or the key.
func (l *Logger) LogSealedMessage(connID, user, typ, channel, keyID string, size int) {
	l.Log(Event{
		Event:  Message,
		ConnID: connID,
		User:   user,
		Detail: map[string]any{"type": typ, "size": size, "channel": channel, "sealed": true, "sealed_by": keyID},
	})
}

// LogSampledMessage records a message already drawn by SampleMessage.
func (l *Logger) LogSampledMessage(connID, user, typ string, data []byte) {
	body := l.redactBody(data)
	truncated := false
	if len(body) > l.opts.MessageMaxBytes {
		body = truncate.UTF8(body, l.opts.MessageMaxBytes)
		truncated = true
	}
	l.Log(Event{
		Event:  Message,
		ConnID: connID,
		User:   user,
		Detail: map[string]any{"type": typ, "size": len(data), "data": body, "truncated": truncated},
	})
}

func (l *Logger) redactBody(data []byte) string {
	if json.Valid(data) {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var tree any
		if dec.Decode(&tree) == nil {
			if b, err := json.Marshal(l.r.Value(plainNumbers(tree, 0))); err == nil {
				return string(b)
			}
		}
	}
	return l.r.String(string(data))
}

// plainNumbers turns json.Number leaves into int64 or float64 so redaction
// (which knows only plain types) keeps them as numbers; deep trees are cut off.
func plainNumbers(x any, depth int) any {
	if depth > 32 {
		return redact.Mask
	}
	switch t := x.(type) {
	case json.Number:
		if n, err := t.Int64(); err == nil {
			return n
		}
		if f, err := t.Float64(); err == nil {
			return f
		}
		return t.String()
	case map[string]any:
		for k, v := range t {
			t[k] = plainNumbers(v, depth+1)
		}
	case []any:
		for i, v := range t {
			t[i] = plainNumbers(v, depth+1)
		}
	}
	return x
}

func (l *Logger) encode(e Event) ([]byte, error) {
	ts := e.Time
	if ts.IsZero() {
		ts = l.opts.Now()
	}
	ln := line{
		TS:     ts.UTC().Format(time.RFC3339Nano),
		Event:  l.r.String(e.Event),
		ConnID: l.r.String(e.ConnID),
		IP:     l.r.String(e.IP),
		User:   l.r.String(e.User),
		Route:  l.r.URL(e.Route),
		Reason: l.r.String(e.Reason),
		Status: e.Status,
		Code:   e.Code,
	}
	if len(e.Detail) > 0 {
		if d, ok := l.r.Value(e.Detail).(map[string]any); ok {
			ln.Detail = d
		}
	}
	b, err := json.Marshal(ln)
	if err != nil {
		// A detail value JSON cannot carry (NaN, a channel): keep the event.
		ln.Detail = map[string]any{"error": "detail not encodable"}
		if b, err = json.Marshal(ln); err != nil {
			return nil, fmt.Errorf("audit: encode %s: %w", e.Event, err)
		}
	}
	return append(b, '\n'), nil
}

// Close stops accepting events, writes every queued line, syncs and closes
// the file. Safe to call more than once. Events logged concurrently with
// Close may be lost (they are counted as dropped when detected).
func (l *Logger) Close() error {
	if !l.Enabled() {
		return nil
	}
	l.closeOnce.Do(func() {
		l.closed.Store(true)
		close(l.stop)
		<-l.done
	})
	return l.closeErr
}

func (l *Logger) run() {
	defer close(l.done)
	var tick <-chan time.Time
	if l.signs() && l.opts.CheckpointInterval > 0 {
		t := time.NewTicker(l.opts.CheckpointInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case b := <-l.ch:
			l.write(b)
			l.drain()
			l.flush()
		case <-tick:
			if l.ch2.since > 0 {
				l.checkpoint()
				l.flush()
			}
		case <-l.stop:
			l.drain()
			if l.signs() && l.ch2.since > 0 {
				l.checkpoint()
			}
			l.flush()
			if l.file != nil {
				if err := l.file.Sync(); err != nil {
					l.closeErr = fmt.Errorf("audit: sync %s: %w", l.opts.Path, err)
				}
				if err := l.file.Close(); err != nil && l.closeErr == nil {
					l.closeErr = fmt.Errorf("audit: close %s: %w", l.opts.Path, err)
				}
				l.file = nil
			}
			return
		}
	}
}

// drain writes what is already queued, so one flush covers a burst.
func (l *Logger) drain() {
	for {
		select {
		case b := <-l.ch:
			l.write(b)
		default:
			return
		}
	}
}

func (l *Logger) flush() {
	if err := l.bw.Flush(); err != nil {
		l.errs.Add(1)
		// bufio keeps a failed buffer forever; start afresh so later lines
		// can still reach a recovered file.
		l.bw.Reset(l.currentOut())
	}
}

func (l *Logger) currentOut() io.Writer {
	if l.out != nil {
		return l.out
	}
	return io.Discard
}

func (l *Logger) rotates() bool { return l.opts.Output == nil && l.opts.Path != "-" }

func (l *Logger) write(b []byte) {
	if l.rotates() {
		if l.file == nil {
			if err := l.open(); err != nil {
				l.errs.Add(1)
				l.dropped.Add(1)
				return
			}
			l.bw.Reset(l.out)
			l.anchorIfNew(AnchorRotate)
		}
		if l.size > 0 && l.size+int64(len(b))+l.reserve() > l.opts.MaxBytes {
			if l.signs() && l.ch2.since > 0 {
				l.checkpoint() // sign each file up to its last record
			}
			if err := l.rotate(); err != nil {
				l.errs.Add(1)
			}
			if l.file == nil {
				l.dropped.Add(1)
				return
			}
			l.anchorIfNew(AnchorRotate)
		}
	}
	if !l.emit(b) {
		return
	}
	l.written.Add(1)
	if l.signs() && l.opts.CheckpointEvery > 0 && l.ch2.since >= l.opts.CheckpointEvery {
		l.checkpoint()
	}
}

// emit writes one line, chained when the chain is on.
func (l *Logger) emit(b []byte) bool {
	if l.ch2 != nil {
		var err error
		if b, err = l.ch2.link(b); err != nil {
			l.errs.Add(1)
			return false
		}
	}
	n, err := l.bw.Write(b)
	l.size += int64(n)
	if err != nil {
		l.errs.Add(1)
		return false
	}
	return true
}

func (l *Logger) open() error {
	f, err := os.OpenFile(l.opts.Path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("audit: open %s: %w", l.opts.Path, err)
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("audit: stat %s: %w", l.opts.Path, err)
	}
	l.file, l.out, l.size = f, f, st.Size()
	return nil
}

// rotate shifts path.N-1 → path.N … path → path.1 and reopens path. On
// failure the current file is kept if it is still open.
func (l *Logger) rotate() error {
	if err := l.bw.Flush(); err != nil {
		return fmt.Errorf("audit: flush before rotate: %w", err)
	}
	if err := l.file.Close(); err != nil {
		return fmt.Errorf("audit: close before rotate: %w", err)
	}
	l.file, l.out = nil, nil
	var errs []error
	for i := l.opts.MaxFiles - 1; i >= 1; i-- {
		if err := os.Rename(l.name(i), l.name(i+1)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := os.Rename(l.opts.Path, l.name(1)); err != nil {
		errs = append(errs, err)
	}
	if err := l.open(); err != nil {
		errs = append(errs, err)
	} else {
		l.bw.Reset(l.out)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("audit: rotate %s: %w", l.opts.Path, err)
	}
	return nil
}

func (l *Logger) name(i int) string { return l.opts.Path + "." + strconv.Itoa(i) }
