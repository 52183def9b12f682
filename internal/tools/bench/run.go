package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/wsgate/wsgate/internal/conn/transport"
)

// maxInFlight bounds concurrent handshakes during the ramp.
const maxInFlight = 128

// runner is one process's share of a run.
type runner struct {
	o Options
	d *dialer

	hist        Histogram
	delivered   atomic.Int64
	closing     atomic.Bool
	closedEarly atomic.Int64

	mu        sync.Mutex
	clients   []*client
	perTarget []int // clients opened per endpoint (URL, Nodes...)
	pub       *client
	errs      errCounts
	// closeCodes counts close codes of tracked connections the server
	// closed during the run.
	closeCodes errCounts
	failed     int
	fdFull     int // connections open when the file limit was hit, -1 if not
	serving    sync.WaitGroup
}

func newRunner(o Options) (*runner, error) {
	d, err := newDialer(o)
	if err != nil {
		return nil, err
	}
	return &runner{o: o, d: d, errs: errCounts{}, closeCodes: errCounts{}, fdFull: -1, perTarget: make([]int, 1+len(o.Nodes))}, nil
}

// await receives from ch (a closed ch counts as received), failing with
// errClosed when the server closes c, late when t fires, or ctx's error.
func await[T any](ctx context.Context, t *time.Timer, c *client, ch <-chan T, late error) (T, error) {
	var zero T
	select {
	case v := <-ch:
		return v, nil
	case <-c.done:
		return zero, errClosed
	case <-t.C:
		return zero, late
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// open dials connection n, starts its reader, waits for the welcome and, for
// fan-out subscribers, subscribes.
func (r *runner) open(ctx context.Context, n int, subscriber bool) (*client, error) {
	c := newClient(r, n, subscriber)
	c.tracked = true
	var kid string
	var key []byte
	if r.o.Sign != "" {
		var err error
		if kid, key, err = r.d.hmacKey(ctx, n); err != nil {
			return nil, err
		}
	}
	conn, err := r.d.dial(ctx, n, c)
	if err != nil {
		return nil, err
	}
	c.conn = conn
	r.serving.Go(conn.Serve)
	fail := func(err error) (*client, error) {
		_ = conn.Close()
		<-c.done
		return nil, err
	}
	t := time.NewTimer(r.o.Timeout)
	defer t.Stop()
	if !r.o.NoWelcome {
		if _, err := await(ctx, t, c, c.first, errNoWelcome); err != nil {
			return fail(err)
		}
	}
	if r.o.Sign != "" {
		if c.signer, err = r.d.newSigner(n, kid, key, c.connID); err != nil {
			return fail(err)
		}
	}
	if subscriber && !r.o.Broadcast {
		msg := `{"type":"subscribe","channel":` + strconv.Quote(r.o.Channel) + `,"id":` + strconv.Itoa(n) + `}`
		if err := conn.WriteMessage(transport.Text, []byte(msg)); err != nil {
			return fail(err)
		}
		t.Reset(r.o.Timeout)
		for {
			rep, err := await(ctx, t, c, c.replies, errSubscribe)
			switch {
			case err != nil:
				return fail(err)
			case rep.typ == "ack":
				return c, nil
			case rep.typ == "error":
				return fail(errSubscribe)
			}
		}
	}
	return c, nil
}

// prepare ramps the connections up at a bounded rate.
func (r *runner) prepare(ctx context.Context) error {
	switch r.o.Mode {
	case Handshake:
		return nil
	case Fanout:
		if !r.o.NoPublisher {
			c, err := r.open(ctx, r.o.Conns, false)
			if err != nil {
				return fmt.Errorf("publisher connection: %w", err)
			}
			r.pub = c
		}
	}
	r.ramp(ctx, r.o.Conns, r.o.Mode == Fanout)
	return nil
}

func (r *runner) ramp(ctx context.Context, n int, subscriber bool) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	progress := r.startProgress(n)
	defer progress()
	interval := time.Duration(float64(time.Second) / r.o.Ramp)
	sem := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < n; i++ {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := r.open(ctx, i, subscriber)
			r.mu.Lock()
			defer r.mu.Unlock()
			if err != nil {
				if ctx.Err() != nil && errors.Is(err, context.Canceled) {
					return
				}
				r.failed++
				r.errs.add(errorKind(err))
				if (errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)) && r.fdFull < 0 {
					r.fdFull = len(r.clients)
					cancel() // more dials can only fail the same way
				}
				return
			}
			r.clients = append(r.clients, c)
			r.perTarget[r.d.target(i)]++
		}(i)
	}
	wg.Wait()
}

// startProgress prints "ramp: open/total" on Progress until the returned
// func is called.
func (r *runner) startProgress(total int) func() {
	if r.o.Progress == nil {
		return func() {}
	}
	stop, done := make(chan struct{}), make(chan struct{})
	show := func(end string) {
		r.mu.Lock()
		open, failed := len(r.clients), r.failed
		r.mu.Unlock()
		fmt.Fprintf(r.o.Progress, "\rramp %s: %d/%d open, %d failed%s", r.o.Mode, open, total, failed, end)
	}
	go func() {
		defer close(done)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				show("")
			case <-stop:
				show("\n")
				return
			}
		}
	}()
	return func() { close(stop); <-done }
}

// budget hands out the Count limit across goroutines (0 = unlimited).
type budget struct {
	limit int64
	used  atomic.Int64
}

func (b *budget) take() bool { return b.limit == 0 || b.used.Add(1) <= b.limit }

// measure runs the measured phase and returns this process's result.
func (r *runner) measure(ctx context.Context) *Result {
	res := r.baseResult()
	ctx, cancel := context.WithTimeout(ctx, r.o.Duration)
	defer cancel()
	start := time.Now()
	var ops, replyErrs, timeouts atomic.Int64
	b := &budget{limit: r.o.Count}
	var wg sync.WaitGroup
	switch r.o.Mode {
	case Echo:
		for _, c := range r.clients {
			wg.Go(func() {
				r.echoLoop(ctx, c, b, &ops, &replyErrs, &timeouts)
			})
		}
		wg.Wait()
	case Idle:
		<-ctx.Done()
	case Handshake:
		for w := 0; w < r.o.Conns; w++ {
			wg.Go(func() {
				r.handshakeLoop(ctx, w, b, &ops, &replyErrs, &timeouts)
			})
		}
		wg.Wait()
	case Fanout:
		window := r.o.Duration
		if r.o.Count > 0 {
			if w := time.Duration(float64(r.o.Count) / r.o.Rate * float64(time.Second)); w < window {
				window = w
			}
		}
		if r.pub != nil {
			res.Published = r.publish(ctx, window, b, &replyErrs)
		} else {
			t := time.NewTimer(window)
			select {
			case <-t.C:
			case <-ctx.Done():
			}
			t.Stop()
		}
		res.Seconds = window.Seconds()
		r.drain()
	}
	res.Seconds = cmp.Or(res.Seconds, time.Since(start).Seconds())
	if r.o.Mode == Fanout {
		res.Ops = r.delivered.Load()
	} else {
		res.Ops = ops.Load()
	}
	res.ReplyErrors, res.Timeouts = replyErrs.Load(), timeouts.Load()
	r.mu.Lock()
	res.Failed, res.Errors, res.CloseCodes = r.failed, r.errs.clone(), r.closeCodes.clone()
	r.mu.Unlock()
	res.ClosedEarly = int(r.closedEarly.Load())
	res.Hist = &r.hist
	return res
}

func (r *runner) baseResult() *Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := &Result{Mode: r.o.Mode, Target: safeURL(r.o.URL), Procs: 1, Requested: r.o.Conns, Opened: len(r.clients),
		MaxConnsPerProc: MaxConnsPerProcess()}
	if len(r.perTarget) > 1 {
		res.OpenedPerTarget = append([]int(nil), r.perTarget...)
	}
	if r.o.Mode == Handshake {
		res.Opened = 0
	}
	if r.fdFull >= 0 {
		res.FileLimitHit = true
		soft, _, _ := FileLimit()
		res.Notes = append(res.Notes, fmt.Sprintf(
			"this process ran out of file descriptors with %d connections open (RLIMIT_NOFILE %d): one process holds at most about %d connections here; split the run with --procs",
			r.fdFull, soft, MaxConnsPerProcess()))
	}
	return res
}

func (r *runner) echoLoop(ctx context.Context, c *client, b *budget, ops, replyErrs, timeouts *atomic.Int64) {
	buf := make([]byte, 0, 64)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for id := int64(1); ctx.Err() == nil && b.take(); id++ {
		buf = append(strconv.AppendInt(append(buf[:0], `{"type":"ping","id":`...), id, 10), '}')
		start := time.Now()
		frame := buf
		if c.signer != nil {
			var err error
			if frame, err = c.signer.Seal(buf); err != nil {
				replyErrs.Add(1)
				return
			}
		}
		if err := c.conn.WriteMessage(transport.Text, frame); err != nil {
			return
		}
		t.Reset(r.o.Timeout)
	wait:
		for {
			select {
			case rep := <-c.replies:
				if rep.hasRef && rep.ref != id {
					continue // a late answer to a ping that timed out
				}
				if rep.typ == "pong" {
					r.hist.Record(time.Since(start))
					ops.Add(1)
				} else {
					replyErrs.Add(1)
				}
				break wait
			case <-t.C:
				timeouts.Add(1)
				break wait
			case <-c.done:
				return
			case <-ctx.Done():
				return
			}
		}
	}
}

func (r *runner) handshakeLoop(ctx context.Context, w int, b *budget, ops, replyErrs, timeouts *atomic.Int64) {
	for ctx.Err() == nil && b.take() {
		start := time.Now()
		c := newClient(r, w, false)
		conn, err := r.d.dial(ctx, w, c)
		if err != nil {
			if ended(ctx) {
				return
			}
			r.mu.Lock()
			r.failed++
			r.errs.add(errorKind(err))
			r.mu.Unlock()
			sleepCtx(ctx, 10*time.Millisecond) // a refusing server must not spin us
			continue
		}
		c.conn = conn
		go conn.Serve() // ends below: by the close handshake or Close
		t := time.NewTimer(r.o.Timeout)
		select {
		case <-c.first:
			r.hist.Record(time.Since(start))
			ops.Add(1)
		case <-c.done:
			replyErrs.Add(1)
		case <-t.C:
			timeouts.Add(1)
		case <-ctx.Done():
		}
		t.Stop()
		_ = conn.WriteClose(transport.StatusNormal, "bench")
		t = time.NewTimer(3 * time.Second)
		select {
		case <-c.done:
		case <-t.C:
			_ = conn.Close()
			<-c.done
		}
		t.Stop()
	}
}

func (r *runner) publish(ctx context.Context, window time.Duration, b *budget, replyErrs *atomic.Int64) int64 {
	interval := time.Duration(float64(time.Second) / r.o.Rate)
	prefix := `{"type":"publish","channel":` + strconv.Quote(r.o.Channel) + `,"payload":{"t":`
	if r.o.Broadcast {
		prefix = `{"type":"data","payload":{"t":`
	}
	buf := make([]byte, 0, 128)
	start := time.Now()
	var seq int64
	for ctx.Err() == nil && time.Since(start) < window && b.take() {
		if wait := time.Until(start.Add(time.Duration(seq) * interval)); wait > 0 {
			sleepCtx(ctx, wait)
			if ctx.Err() != nil || time.Since(start) >= window {
				break
			}
		}
		seq++
		buf = append(buf[:0], prefix...)
		buf = strconv.AppendInt(buf, time.Now().UnixNano(), 10)
		buf = append(buf, `,"seq":`...)
		buf = append(strconv.AppendInt(buf, seq, 10), "}}"...)
		if err := r.pub.conn.WriteMessage(transport.Text, buf); err != nil {
			seq--
			break
		}
		for drained := false; !drained; { // count refused publishes, never block
			select {
			case rep := <-r.pub.replies:
				if rep.typ == "error" {
					replyErrs.Add(1)
				}
			default:
				drained = true
			}
		}
	}
	return seq
}

// drain waits until deliveries stop arriving: 500 ms of quiet once some
// arrived (a process without the publisher may see the first one late), at
// most max(5 s, Timeout).
func (r *runner) drain() {
	deadline := time.Now().Add(max(5*time.Second, r.o.Timeout))
	last := r.delivered.Load()
	for time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
		n := r.delivered.Load()
		if n == last && n > 0 {
			return
		}
		last = n
	}
}

// close ends every connection with a closing handshake, bounded in time.
func (r *runner) close() {
	r.closing.Store(true)
	r.mu.Lock()
	all := append([]*client(nil), r.clients...)
	if r.pub != nil {
		all = append(all, r.pub)
	}
	r.mu.Unlock()
	for _, c := range all {
		_ = c.conn.WriteClose(transport.StatusNormal, "bench done")
	}
	if r.d.http != nil {
		defer r.d.http.CloseIdleConnections()
	}
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	for _, c := range all {
		select {
		case <-c.done:
		case <-deadline.C:
			for _, c := range all {
				_ = c.conn.Close()
			}
		}
	}
	r.serving.Wait()
}

// ended reports whether ctx is done or past its deadline: a dial can fail
// with the deadline's "i/o timeout" a moment before ctx.Err is set.
func ended(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// errCounts counts errors by kind; errorKind keeps the keys few.
type errCounts map[string]int

func (e errCounts) add(kind string) { e[kind]++ }

func (e errCounts) clone() map[string]int {
	if len(e) == 0 {
		return nil
	}
	m := make(map[string]int, len(e))
	for k, v := range e {
		m[k] = v
	}
	return m
}
