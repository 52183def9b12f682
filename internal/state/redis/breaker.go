package redis

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ErrUnavailable is returned, wrapped, by operations refused at once because
// Redis was found unreachable and has not answered a probe since.
var ErrUnavailable = errors.New("redis: unreachable (failing fast until a probe succeeds)")

// probeFirst is the wait before a breaker's first probe; it doubles up to the
// breaker's maxWait.
const probeFirst = 50 * time.Millisecond

// breaker makes operations fail at once while Redis is unreachable, instead of
// each one paying a dial (and go-redis' retry) and queueing behind the others.
// It opens on an error that says Redis cannot be reached (dial failure,
// connection refused or reset, EOF after go-redis' retry on a fresh connection);
// a slow reply does not open it. While open, one goroutine owned by the Client
// PINGs with backoff and closes the breaker when Redis answers.
type breaker struct {
	log     *slog.Logger
	ping    func(ctx context.Context) error
	timeout time.Duration // per probe
	maxWait time.Duration // between probes, at most

	open    atomic.Bool
	probing atomic.Bool
	stop    chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
}

func newBreaker(log *slog.Logger, ping func(ctx context.Context) error, timeout, maxWait time.Duration) *breaker {
	return &breaker{log: log, ping: ping, timeout: timeout, maxWait: maxWait, stop: make(chan struct{})}
}

// Open reports whether operations should fail fast.
func (b *breaker) Open() bool { return b.open.Load() }

// observe opens the breaker when err says Redis is unreachable.
func (b *breaker) observe(err error) {
	if err == nil || !unreachable(err) {
		return
	}
	b.trip(err, "redis: unreachable; failing fast until it answers a probe")
}

// trip opens the breaker whatever err is (logging msg the first time) and makes
// sure a probe runs.
func (b *breaker) trip(err error, msg string) {
	if b.open.CompareAndSwap(false, true) {
		b.log.Warn(msg, "err", err)
	}
	if b.probing.CompareAndSwap(false, true) {
		select {
		case <-b.stop:
			b.probing.Store(false)
			return
		default:
		}
		b.wg.Go(b.probe)
	}
}

func (b *breaker) probe() {
	defer b.probing.Store(false)
	wait := probeFirst
	for backoff(b.stop, wait) {
		ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
		err := b.ping(ctx)
		cancel()
		if err == nil {
			b.open.Store(false)
			b.log.Info("redis: reachable again")
			return
		}
		wait = min(wait*2, b.maxWait)
	}
}

// close stops the probe goroutine and waits for it.
func (b *breaker) close() {
	b.once.Do(func() { close(b.stop) })
	b.wg.Wait()
}

// unreachable reports errors that mean no Redis answered, as opposed to a
// Redis error reply or a slow one.
func unreachable(err error) bool {
	var op *net.OpError
	switch {
	case errors.As(err, &op) && op.Op == "dial":
		return true
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return true
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return true
	}
	return false
}
