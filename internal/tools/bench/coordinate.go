package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"
)

// worker is one share of a run: the runner in this process, or a child.
type worker interface {
	prepare(ctx context.Context) error
	measure(ctx context.Context) (*Result, error)
	close() error
}

type localWorker struct{ r *runner }

func (w localWorker) prepare(ctx context.Context) error { return w.r.prepare(ctx) }
func (w localWorker) measure(ctx context.Context) (*Result, error) {
	return w.r.measure(ctx), nil
}
func (w localWorker) close() error { w.r.close(); return nil }

// setup validates, defaults and checks the target; it bounds the whole run.
func setup(ctx context.Context, o Options, procs int) (Options, context.Context, context.CancelFunc, error) {
	if err := o.Validate(); err != nil {
		return o, nil, nil, err
	}
	o = o.withDefaults()
	if err := o.CheckTarget(ctx); err != nil {
		return o, nil, nil, err
	}
	if procs < 1 || procs > 64 {
		return o, nil, nil, fmt.Errorf("procs %d out of range 1..64", procs)
	}
	if o.Mode != Handshake {
		per := (o.Conns+procs-1)/procs + 1 // +1: the fan-out publisher
		if max := MaxConnsPerProcess(); per > max {
			soft, _, _ := FileLimit()
			need := (o.Conns + max - 2) / (max - 1)
			return o, nil, nil, fmt.Errorf("%d connections in %d process(es) is %d per process, but one process here can open at most %d (RLIMIT_NOFILE %d, which even root cannot raise): use --procs %d or more",
				o.Conns, procs, per, max, soft, need)
		}
	}
	rampTime := time.Duration(float64(o.Conns)/o.Ramp*float64(time.Second)) * 2
	ctx, cancel := context.WithTimeout(ctx, o.Duration+rampTime+o.Settle+2*time.Minute)
	return o, ctx, cancel, nil
}

// Run measures in this process.
func Run(ctx context.Context, o Options) (*Result, error) {
	o, ctx, cancel, err := setup(ctx, o, 1)
	if err != nil {
		return nil, err
	}
	defer cancel()
	r, err := newRunner(o)
	if err != nil {
		return nil, err
	}
	return coordinate(ctx, o, []worker{localWorker{r}})
}

// RunProcs splits the connections over procs child processes, each started
// with argv (which must lead to ServeChild, e.g. [exe, "bench", "--child"]),
// samples the server between their phases and merges their results.
func RunProcs(ctx context.Context, o Options, procs int, argv []string) (*Result, error) {
	if procs == 1 {
		return Run(ctx, o)
	}
	o, ctx, cancel, err := setup(ctx, o, procs)
	if err != nil {
		return nil, err
	}
	defer cancel()
	if len(argv) == 0 {
		return nil, errors.New("bench: no child command")
	}
	var ws []worker
	offset, sourceOffset := 0, o.SourceOffset
	for i := 0; i < procs; i++ {
		co := o
		co.Conns = o.Conns / procs
		if i < o.Conns%procs {
			co.Conns++
		}
		if o.Mode == Handshake && co.Conns == 0 {
			continue
		}
		co.SubjectOffset = o.SubjectOffset + offset
		offset += co.Conns
		co.NoPublisher = i > 0
		co.ServerPID, co.ServerPIDs = 0, nil
		co.SourceOffset = sourceOffset
		if sourceOffset += sourceCount(co); sourceOffset+sourceCount(co) > maxSources {
			sourceOffset = 0 // more processes than addresses: share (ports may run out)
		}
		co.Count = 0
		if o.Count > 0 { // share the budget; the publisher alone counts publications
			switch {
			case o.Mode == Fanout && i == 0:
				co.Count = o.Count
			case o.Mode != Fanout:
				co.Count = max(1, o.Count/int64(procs))
			}
		}
		cw, err := startChild(ctx, co, argv)
		if err != nil {
			for _, w := range ws {
				_ = w.close()
			}
			return nil, err
		}
		ws = append(ws, cw)
	}
	return coordinate(ctx, o, ws)
}

func coordinate(ctx context.Context, o Options, ws []worker) (*Result, error) {
	pids := o.pids()
	var base, loaded, end []ProcSample
	sample := func(dst *[]ProcSample) error {
		*dst = make([]ProcSample, len(pids))
		for i, pid := range pids {
			s, err := SampleProc(pid)
			if err != nil {
				return err
			}
			(*dst)[i] = s
		}
		return nil
	}
	closeAll := func() {
		var wg sync.WaitGroup
		for _, w := range ws {
			wg.Go(func() { _ = w.close() })
		}
		wg.Wait()
	}
	if err := sample(&base); err != nil {
		closeAll()
		return nil, err
	}
	errs := make([]error, len(ws))
	results := make([]*Result, len(ws))
	parallel := func(fn func(i int, w worker)) {
		var wg sync.WaitGroup
		for i, w := range ws {
			wg.Go(func() { fn(i, w) })
		}
		wg.Wait()
	}
	parallel(func(i int, w worker) { errs[i] = w.prepare(ctx) })
	if err := errors.Join(errs...); err != nil {
		closeAll()
		return nil, err
	}
	if o.Mode == Idle || o.Mode == Fanout {
		sleepCtx(ctx, o.Settle)
	}
	if err := sample(&loaded); err != nil {
		closeAll()
		return nil, err
	}
	parallel(func(i int, w worker) { results[i], errs[i] = w.measure(ctx) })
	serr := sample(&end)
	closeAll()
	if err := errors.Join(append(errs, serr)...); err != nil {
		return nil, err
	}
	res := &Result{Mode: results[0].Mode, Target: results[0].Target, MaxConnsPerProc: results[0].MaxConnsPerProc}
	for _, r := range results {
		res.merge(r)
	}
	res.Requested = o.Conns
	res.Procs = len(ws)
	targets := o.targets()
	for i := range targets {
		targets[i] = safeURL(targets[i])
	}
	res.finish(pids, targets, base, loaded, end)
	if err := ctx.Err(); err != nil && !errors.Is(err, context.Canceled) {
		res.Notes = append(res.Notes, "the run hit its overall time bound")
	}
	return res, nil
}

// --- child processes ---

// childMsg is a line a child writes on stdout.
type childMsg struct {
	Ready  bool    `json:"ready,omitempty"`
	Error  string  `json:"error,omitempty"`
	Result *Result `json:"result,omitempty"`
}

type childWorker struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Reader
	mu    sync.Mutex
	ended bool
}

func startChild(ctx context.Context, o Options, argv []string) (*childWorker, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stderr = os.Stderr
	cmd.WaitDelay = 5 * time.Second
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("bench child: %w", err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("bench child: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench child: start %s: %w", argv[0], err)
	}
	c := &childWorker{cmd: cmd, in: in, out: bufio.NewReaderSize(out, 64<<10)}
	b, err := json.Marshal(o)
	if err == nil {
		_, err = c.in.Write(append(b, '\n'))
	}
	if err != nil {
		_ = c.close()
		return nil, fmt.Errorf("bench child: send options: %w", err)
	}
	return c, nil
}

func (c *childWorker) read() (childMsg, error) {
	var m childMsg
	line, err := c.out.ReadBytes('\n')
	if err != nil {
		return m, fmt.Errorf("bench child %d: %w", c.cmd.Process.Pid, err)
	}
	if err := json.Unmarshal(line, &m); err != nil {
		return m, fmt.Errorf("bench child %d: bad line: %w", c.cmd.Process.Pid, err)
	}
	if m.Error != "" {
		return m, fmt.Errorf("bench child %d: %s", c.cmd.Process.Pid, m.Error)
	}
	return m, nil
}

func (c *childWorker) prepare(context.Context) error {
	m, err := c.read()
	if err == nil && !m.Ready {
		err = fmt.Errorf("bench child %d: expected ready", c.cmd.Process.Pid)
	}
	return err
}

func (c *childWorker) measure(context.Context) (*Result, error) {
	if _, err := io.WriteString(c.in, "go\n"); err != nil {
		return nil, fmt.Errorf("bench child: %w", err)
	}
	m, err := c.read()
	if err == nil && m.Result == nil {
		err = fmt.Errorf("bench child %d: no result", c.cmd.Process.Pid)
	}
	return m.Result, err
}

func (c *childWorker) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		return nil
	}
	c.ended = true
	_, _ = io.WriteString(c.in, "close\n")
	_ = c.in.Close()
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(15 * time.Second):
		_ = c.cmd.Process.Kill()
		return <-done
	}
}

// ServeChild is the child side of RunProcs: options on the first line of in,
// then "go" and "close"; "ready" and the result are written to out as JSON
// lines. Progress (may be nil) receives the ramp progress.
func ServeChild(ctx context.Context, in io.Reader, out io.Writer, progress io.Writer) error {
	br := bufio.NewReaderSize(in, 64<<10)
	enc := json.NewEncoder(out)
	fail := func(err error) error {
		_ = enc.Encode(childMsg{Error: err.Error()})
		return err
	}
	line, err := br.ReadBytes('\n')
	if err != nil {
		return fail(fmt.Errorf("read options: %w", err))
	}
	var o Options
	if err := json.Unmarshal(line, &o); err != nil {
		return fail(fmt.Errorf("options: %w", err))
	}
	if err := o.Validate(); err != nil {
		return fail(err)
	}
	o = o.withDefaults()
	o.Progress = progress
	if err := o.CheckTarget(ctx); err != nil {
		return fail(err)
	}
	r, err := newRunner(o)
	if err != nil {
		return fail(err)
	}
	defer r.close()
	if err := r.prepare(ctx); err != nil {
		return fail(err)
	}
	if err := enc.Encode(childMsg{Ready: true}); err != nil {
		return err
	}
	if l, err := br.ReadString('\n'); err != nil || l != "go\n" {
		return fmt.Errorf("bench child: expected go, got %q (%v)", l, err)
	}
	if err := enc.Encode(childMsg{Result: r.measure(ctx)}); err != nil {
		return err
	}
	_, _ = br.ReadString('\n') // "close" or EOF
	return nil
}
