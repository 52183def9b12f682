//go:build linux

package transport

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"
)

// parkingSupported: the parked reader needs epoll.
const parkingSupported = true

// Events a parked socket is registered for, once, for its whole life:
// edge-triggered, so that parking costs no system call (the edge of bytes
// that arrive while the reader runs marks it parkNotified instead).
// (syscall.EPOLLET is a negative int: its bit is spelled out.)
const parkEvents uint32 = syscall.EPOLLIN | syscall.EPOLLRDHUP | 1<<31

// workerIdle is how long a worker with nothing to run waits before it exits.
var workerIdle = time.Second

// registration is a parked connection's socket in one poller's epoll set.
// The socket is in Go's netpoller too only once a use had to wait there
// (fdConn.waitFile), or when it could not be detached: an epoll set of our
// own does not disturb it (readiness is reported to each set), and our reads
// never wait in Go's netpoller.
// It is kept in the connection's parking (the socket is the connection's
// RawConn, c.wire.rc).
type registration struct {
	p     *poller
	fd    int32
	added bool
}

// add puts the socket in its poller's set and its connection in the
// poller's table. Owner only, once.
func (r *registration) add(c *Conn) error {
	rc := c.wire.rc
	fd := -1
	if err := rc.Control(func(f uintptr) { fd = int(f) }); err != nil {
		return fmt.Errorf("transport: park: %w", err)
	}
	p, err := pollerFor(fd)
	if err != nil {
		return err
	}
	p.insert(fd, c)
	var cerr error
	err = rc.Control(func(f uintptr) {
		ev := syscall.EpollEvent{Events: parkEvents, Fd: int32(f)}
		cerr = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, int(f), &ev)
	})
	if err == nil {
		err = cerr
	}
	if err != nil {
		p.delete(fd, c)
		return fmt.Errorf("transport: park: epoll add: %w", err)
	}
	r.p, r.fd, r.added = p, int32(fd), true
	return nil
}

// remove takes the socket out of its poller (the connection ends). A socket
// closed already left the epoll set with its close.
func (r *registration) remove(c *Conn) {
	if !r.added {
		return
	}
	r.added = false
	_ = c.wire.rc.Control(func(f uintptr) {
		_ = syscall.EpollCtl(r.p.epfd, syscall.EPOLL_CTL_DEL, int(f), nil)
	})
	r.p.delete(int(r.fd), c)
}

// poller waits on one epoll set (one per core) and hands ready connections
// to the workers. Its goroutine runs only while connections are registered:
// it is started by the first and exits after the last is removed.
type poller struct {
	epfd int
	ep   syscall.RawConn // epfd in Go's netpoller (nil: wait in epoll_wait)
	epf  *os.File        // keeps ep's file open (never closed, like epfd)

	// wait's state (the poller goroutine only): its callback, made once.
	collect func(uintptr) bool
	events  []syscall.EpollEvent
	n       int
	werr    error

	wakeR  int // pipe: written when the last connection leaves
	wakeW  int
	mu     sync.Mutex
	conns  []*Conn // by socket fd
	count  int
	active bool // the goroutine runs
}

var pollers struct {
	once sync.Once
	ps   []*poller
	err  error
}

// pollerFor returns the poller of socket fd (the epoll sets are made on
// first use, one per GOMAXPROCS).
func pollerFor(fd int) (*poller, error) {
	pollers.once.Do(func() {
		for range max(1, runtime.GOMAXPROCS(0)) {
			p, err := newPoller()
			if err != nil {
				pollers.err = err
				return
			}
			pollers.ps = append(pollers.ps, p)
		}
	})
	if pollers.err != nil {
		return nil, pollers.err
	}
	return pollers.ps[fd%len(pollers.ps)], nil
}

func newPoller() (*poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("transport: epoll create: %w", err)
	}
	var pipe [2]int
	if err := syscall.Pipe2(pipe[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		_ = syscall.Close(epfd)
		return nil, fmt.Errorf("transport: poller pipe: %w", err)
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(pipe[0])}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, pipe[0], &ev); err != nil {
		_ = syscall.Close(epfd)
		_ = syscall.Close(pipe[0])
		_ = syscall.Close(pipe[1])
		return nil, fmt.Errorf("transport: poller pipe: %w", err)
	}
	p := &poller{epfd: epfd, wakeR: pipe[0], wakeW: pipe[1]}
	// An epoll set is itself pollable: registered in Go's netpoller, the
	// poller goroutine waits there like any socket reader (no thread blocked
	// in epoll_wait, wake-ups go through the scheduler) and collects events
	// with a non-blocking epoll_wait.
	if syscall.SetNonblock(epfd, true) == nil {
		if f := os.NewFile(uintptr(epfd), "wsgate-epoll"); f != nil {
			if rc, err := f.SyscallConn(); err == nil {
				p.ep, p.epf = rc, f
			}
		}
	}
	return p, nil
}

// wait fills events with what is ready, waiting until something is.
func (p *poller) wait(events []syscall.EpollEvent) (int, error) {
	if p.ep == nil {
		return syscall.EpollWait(p.epfd, events, -1)
	}
	if p.collect == nil {
		p.collect = p.collectReady
	}
	p.events = events
	err := p.ep.Read(p.collect)
	n, werr := p.n, p.werr
	p.events, p.werr = nil, nil
	if err != nil {
		// The netpoller cannot wait on it after all: block in epoll_wait.
		p.ep = nil
		return 0, syscall.EINTR
	}
	return n, werr
}

// collectReady is wait's callback: a non-blocking epoll_wait; false (wait
// for the set to become readable) when nothing is ready.
func (p *poller) collectReady(uintptr) bool {
	p.n, p.werr = syscall.EpollWait(p.epfd, p.events, 0)
	return p.werr != nil || p.n > 0
}

func (p *poller) insert(fd int, c *Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if fd >= len(p.conns) {
		grown := make([]*Conn, max(fd+1, 2*len(p.conns), 64))
		copy(grown, p.conns)
		p.conns = grown
	}
	p.conns[fd] = c
	p.count++
	if !p.active {
		p.active = true
		go p.loop()
	}
}

// delete forgets c (unless fd is another connection's by now: a socket
// closed early frees its number for the next accept).
func (p *poller) delete(fd int, c *Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if fd < len(p.conns) && p.conns[fd] == c {
		p.conns[fd] = nil
	}
	p.count--
	if p.count == 0 {
		_, _ = syscall.Write(p.wakeW, []byte{1})
	}
}

// loop waits for readiness until no connection is registered.
func (p *poller) loop() {
	events := make([]syscall.EpollEvent, 128)
	var ready []*Conn
	for {
		n, err := p.wait(events)
		if err != nil {
			if err != syscall.EINTR {
				slog.Error("transport: epoll wait", "err", err)
				time.Sleep(10 * time.Millisecond)
			}
			continue
		}
		p.mu.Lock()
		for _, ev := range events[:n] {
			fd := int(ev.Fd)
			if fd == p.wakeR {
				var b [16]byte
				_, _ = syscall.Read(p.wakeR, b[:])
				continue
			}
			if fd < len(p.conns) && p.conns[fd] != nil {
				c := p.conns[fd]
				if ev.Events&(syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
					c.pk.hup.Store(true) // before ready: its new owner sees it
				}
				ready = append(ready, c)
			}
		}
		if p.count == 0 {
			p.active = false
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		for i, c := range ready {
			c.ready()
			ready[i] = nil
		}
		ready = ready[:0]
	}
}

// workers run ready connections' readers: at most max(256, 128×GOMAXPROCS)
// pooled workers, each exiting after workerIdle without work; when all are
// busy a ready connection is read on a goroutine of its own (submit).
var workers workerPool

type workerPool struct {
	once sync.Once
	ch   chan *Conn    // to an idle worker
	sem  chan struct{} // one token per worker
}

func (w *workerPool) submit(c *Conn) {
	w.once.Do(func() {
		w.ch = make(chan *Conn)
		w.sem = make(chan struct{}, max(256, 128*runtime.GOMAXPROCS(0)))
	})
	select {
	case w.ch <- c:
		return
	default:
	}
	select {
	case w.ch <- c:
	case w.sem <- struct{}{}:
		go w.work(c)
	default:
		// Every worker is busy: handlers waiting on a hook, on Redis, on
		// an upstream. Waiting for one here would stall this poller and
		// every connection it watches behind the slow ones (a few hundred
		// clients sending messages that reach a slow hook would freeze
		// everyone's pings). This read gets a goroutine of its own
		// instead, which ends when the connection parks again: under
		// that load the parked reader costs what the event reader does.
		go c.resume(true)
	}
}

// work runs c, then whatever is handed to it, until it has had no work for
// a whole workerIdle (it exits between one and two workerIdle after its
// last connection): the idle timer is reset once per workerIdle, not once
// per connection run (a runtime timer update on every message otherwise).
func (w *workerPool) work(c *Conn) {
	defer func() { <-w.sem }()
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		w.run(c)
		worked := true
	wait:
		select {
		case c = <-w.ch:
		case <-idle.C:
			if !worked {
				return
			}
			worked = false
			idle.Reset(workerIdle)
			goto wait
		}
	}
}

// run reads one connection until it parks or ends. A panic outside the
// handlers (which the transport recovers itself) would be a transport bug:
// it is logged and the connection is dropped and ended, not the process.
func (w *workerPool) run(c *Conn) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("transport: parked reader panic", "panic", fmt.Sprint(r))
			_ = c.wire.closeNow()
			go c.endParked(errors.New("transport: reader panic"), true)
		}
	}()
	c.resume(false)
}
