package redis_test

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/state/broker"
	"github.com/wsgate/wsgate/internal/state/broker/brokertest"
	"github.com/wsgate/wsgate/internal/state/redis"
	"github.com/wsgate/wsgate/internal/state/redis/redistest"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/wait"
)

// tcpProxy forwards TCP connections to a Redis server; the proxies of the
// tests decide how the bytes of a connection flow (serve, run by the proxy
// once per connection and direction pair) and whether one is admitted.
type tcpProxy struct {
	ln     net.Listener
	target string
	admit  func() bool                // nil: every connection
	serve  func(client, srv net.Conn) // copies both ways until either closes

	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func startProxy(t *testing.T, target string, admit func() bool, serve func(client, srv net.Conn)) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	p := &tcpProxy{ln: ln, target: target, admit: admit, serve: serve}
	p.wg.Go(p.accept)
	t.Cleanup(p.close)
	return p
}

func (p *tcpProxy) Addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.admit != nil && !p.admit() {
			_ = c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Go(func() { p.serve(c, s) })
	}
}

// cut closes every connection forwarded so far.
func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

func (p *tcpProxy) close() {
	_ = p.ln.Close()
	p.cut()
	p.wg.Wait()
}

// slowProxy forwards TCP to a Redis server. Once armed, it holds back the next
// reply chunk from the server by delay: Redis has executed the command, the
// client only hears about it late. That is what a loaded machine does to a
// client with a short read timeout. With when set, it holds the next reply on
// the connection of the first request chunk, once armed, that when accepts.
type slowProxy struct {
	*tcpProxy
	delay time.Duration
	when  func(request []byte) bool
	armed atomic.Bool
	held  atomic.Int32 // replies held back so far
}

func startSlowProxy(t *testing.T, target string, delay time.Duration) *slowProxy {
	t.Helper()
	p := &slowProxy{delay: delay}
	p.tcpProxy = startProxy(t, target, nil, func(c, s net.Conn) {
		var hold atomic.Bool // this connection's next reply is held
		pipeBoth(c, s,
			func(dst, src net.Conn) {
				copyChunks(dst, src, func(b []byte) {
					if p.when != nil && p.armed.Load() && p.when(b) && p.armed.CompareAndSwap(true, false) {
						hold.Store(true)
					}
				})
			},
			func(dst, src net.Conn) {
				copyChunks(dst, src, func([]byte) {
					if (p.when == nil && p.armed.CompareAndSwap(true, false)) || hold.CompareAndSwap(true, false) {
						p.held.Add(1)
						time.Sleep(p.delay)
					}
				})
			})
	})
	return p
}

// pipeBoth copies client to server (toServer) in a goroutine of its own and
// server to client (toClient), until either side closes; nil copies as is.
func pipeBoth(c, s net.Conn, toServer, toClient func(dst, src net.Conn)) {
	if toServer == nil {
		toServer = func(dst, src net.Conn) { _, _ = io.Copy(dst, src) }
	}
	if toClient == nil {
		toClient = func(dst, src net.Conn) { _, _ = io.Copy(dst, src) }
	}
	var wg sync.WaitGroup
	wg.Go(func() { toServer(s, c); _ = s.Close() })
	toClient(c, s)
	_ = c.Close()
	wg.Wait()
}

// copyChunks copies src to dst, calling before for each chunk before it is
// written.
func copyChunks(dst, src net.Conn, before func([]byte)) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			before(buf[:n])
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// slowPublisher starts Redis, a publishing broker whose node reaches it
// through a slowProxy (read timeout 200 ms, an armed reply held 600 ms, when
// as the proxy's), and a subscribing broker on another node.
func slowPublisher(t *testing.T, when func([]byte) bool) (*slowProxy, *redis.Broker, *redis.Broker, *brokertest.Recorder) {
	t.Helper()
	srv := redistest.Start(t)
	const readTimeout = 200 * time.Millisecond
	proxy := startSlowProxy(t, srv.Addr(), 3*readTimeout)
	proxy.when = when
	pubNode := node(t, srv, "pub", func(o *redis.Options) {
		o.Addrs = []string{proxy.Addr()}
		o.ReadTimeout = readTimeout
	})
	pub, err := pubNode.Broker(redis.BrokerOptions{})
	must(t, err)
	sub, rec := runBroker(t, node(t, srv, "sub"), redis.BrokerOptions{})
	return proxy, pub, sub, rec
}

// A publish whose reply arrives after the client's read timeout is retried by
// go-redis on a fresh connection. Redis ran the script the first time already,
// so before the fix the retry assigned a second offset and published the same
// payload again: the "1203 deliveries, want 1200" of the conformance suite
// under load (issue 12). Publish must be idempotent across such retries.
func TestPublishRetriedAfterReadTimeoutDeliversOnce(t *testing.T) {
	proxy, pub, sub, rec := slowPublisher(t, nil)
	ctx := context.Background()
	keep := broker.PublishOptions{HistorySize: 10, HistoryTTL: time.Minute}
	const ch = "retried"
	must(t, sub.Subscribe(ctx, ch))
	// Load the script first so the held reply is the script's, not NOSCRIPT.
	first := publish(t, pub, ch, `"warm"`, keep)
	wait.For(t, "the warm-up delivery", 5*time.Second, func() bool { return len(rec.Pubs(ch)) == 1 })

	proxy.armed.Store(true)
	pos, err := pub.Publish(ctx, ch, []byte(`"slow"`), "", keep)
	if proxy.held.Load() != 1 {
		t.Fatalf("the proxy held %d replies, want 1 (test setup)", proxy.held.Load())
	}
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		// An error is allowed (the publisher then does not count it as acked),
		// a duplicate is not; go on to check what subscribers saw.
		t.Logf("publish with a late reply: %v", err)
	}
	// A marker published after it: once it arrives, every copy of "slow" has too.
	marker := publish(t, pub, ch, `"marker"`, keep)
	got := waitLast(t, 5*time.Second, rec, ch, `"marker"`)
	slow := 0
	for i, p := range got {
		if p.Offset != first.Offset+uint64(i) {
			t.Errorf("delivery %d has offset %d, want %d", i, p.Offset, first.Offset+uint64(i))
		}
		if string(p.Data) == `"slow"` {
			slow++
			if err == nil && p.Offset != pos.Offset {
				t.Errorf("delivered at offset %d, Publish returned %d", p.Offset, pos.Offset)
			}
		}
	}
	if slow != 1 {
		t.Fatalf("the slow publication was delivered %d times, want once (deliveries %d, marker at %d)", slow, len(got), marker.Offset)
	}
	if marker.Offset != first.Offset+2 {
		t.Fatalf("marker at offset %d, want %d: an offset was spent twice", marker.Offset, first.Offset+2)
	}
}
