// Package memacct accounts for the memory one idle wsgate connection holds. It
// is a benchmark harness, not a test: it runs only when WSGATETEST_MEMACCT_CONNS
// is set, and asserts nothing about sizes.
//
//	WSGATETEST_MEMACCT_CONNS=10000 WSGATETEST_MEMACCT_OUT=/tmp/memacct \
//	  go test -count=1 -run TestMemoryPerConnection -v ./bench/memacct
//
// It starts a wsgate server in this process (bench/wsgate-bench.yaml on a free
// loopback port), opens N authenticated connections with minimal raw-socket
// clients (a net.Conn each, nothing else kept: the clients' share of the heap is
// the net.Conn alone and shows as net.(*Dialer) in the profiles), reads each
// welcome, then sends one ping on every connection, then subscribes every connection to chat:bench. After each phase it
// runs the GC twice (the second pass shrinks goroutine stacks the first found
// oversized) and records runtime.MemStats, VmRSS and a heap profile
// (MemProfileRate 64), so `go tool pprof -base` attributes the growth to
// allocation sites:
//
//	go tool pprof -sample_index=inuse_space -top -base /tmp/memacct/0-base.heap /tmp/memacct/1-idle.heap
package memacct_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/edge/auth"
)

// Set before anything allocates, so that the profiles sample the server's
// setup and the connections alike.
func init() { runtime.MemProfileRate = 64 }

const secret = "bench-secret-bench-secret-bench-secret-0123456789" // bench/wsgate-bench.yaml

type snapshot struct {
	name       string
	heapInuse  uint64
	heapLive   uint64
	stackInuse uint64
	heapObjs   uint64
	goroutines int
	rssKiB     int64
}

func TestMemoryPerConnection(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("WSGATETEST_MEMACCT_CONNS"))
	if n <= 0 {
		t.Skip("set WSGATETEST_MEMACCT_CONNS=N to run (a benchmark harness, not a test)")
	}
	out := os.Getenv("WSGATETEST_MEMACCT_OUT")
	if out == "" {
		out = t.TempDir()
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	cfg, err := config.Load("../wsgate-bench.yaml", append(os.Environ(), "WSGATE_LISTEN=127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := wsgate.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	sctx, stop := context.WithCancel(ctx)
	go func() { done <- srv.ListenAndServe(sctx, func(l wsgate.Listening) { addrc <- l.Addr }) }()
	defer func() {
		stop()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("server did not stop")
		}
	}()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatal(err)
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}

	signer := auth.NewHMACSigner([]byte(secret), "bench")
	claims := map[string]any{"channels": map[string]any{"sub": []string{"chat:bench"}, "pub": []string{"chat:bench"}}}
	// Tokens are minted before the baseline so that their garbage is not
	// counted as the connections'.
	toks := make([]string, n)
	for i := range toks {
		if toks[i], err = signer.Mint("bench-"+strconv.Itoa(i), time.Hour, claims); err != nil {
			t.Fatal(err)
		}
	}
	var snaps []snapshot
	take := func(name string) {
		time.Sleep(time.Second) // writes and goroutine exits settle
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		s := snapshot{name: name, heapInuse: ms.HeapInuse, heapLive: ms.HeapAlloc, stackInuse: ms.StackInuse, heapObjs: ms.HeapObjects,
			goroutines: runtime.NumGoroutine(), rssKiB: rss(t)}
		snaps = append(snaps, s)
		f, err := os.Create(filepath.Join(out, fmt.Sprintf("%d-%s.heap", len(snaps)-1, name)))
		if err != nil {
			t.Fatal(err)
		}
		if err := pprof.WriteHeapProfile(f); err != nil {
			t.Fatal(err)
		}
		_ = f.Close()
	}
	take("base")

	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for i := 0; i < n; i++ {
		c, err := open(ctx, addr, toks[i])
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, c)
	}
	toks = nil
	take("idle")

	for i, c := range conns {
		if err := request(c, `{"type":"ping","id":`+strconv.Itoa(i)+`}`, `"pong"`); err != nil {
			t.Fatalf("ping %d: %v", i, err)
		}
	}
	take("pinged")

	for i, c := range conns {
		if err := request(c, `{"type":"subscribe","channel":"chat:bench","id":`+strconv.Itoa(i)+`}`, `"ack"`); err != nil {
			t.Fatalf("subscribe %d: %v", i, err)
		}
	}
	take("subscribed")

	t.Logf("%d connections; per connection (bytes), growth over the previous phase:", n)
	// live is the bytes of live objects (HeapAlloc right after a GC): the
	// exact sum of what the connections hold. heap is HeapInuse, the spans
	// holding them, which moves by ±100 B per connection run to run with
	// how full the last span of each size class happens to be.
	t.Logf("%-12s %10s %10s %10s %10s %10s %10s", "phase", "live", "heap", "stack", "objects", "goroutines", "RSS")
	for i := 1; i < len(snaps); i++ {
		a, b := snaps[i-1], snaps[i]
		per := func(x, y uint64) string { return fmt.Sprintf("%.0f", (float64(y)-float64(x))/float64(n)) }
		t.Logf("%-12s %10s %10s %10s %10s %10.2f %10.0f", b.name, per(a.heapLive, b.heapLive), per(a.heapInuse, b.heapInuse), per(a.stackInuse, b.stackInuse),
			per(a.heapObjs, b.heapObjs), float64(b.goroutines-a.goroutines)/float64(n), float64(b.rssKiB-a.rssKiB)*1024/float64(n))
	}
	t.Logf("profiles in %s (go tool pprof -sample_index=inuse_space -top -base 0-base.heap 1-idle.heap)", out)
}

// open connects, upgrades with a bearer token and reads the 101 and the
// welcome. Only the net.Conn is kept.
func open(ctx context.Context, addr, tok string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET /ws HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer " + tok + "\r\n\r\n"
	if _, err := c.Write([]byte(req)); err != nil {
		_ = c.Close()
		return nil, err
	}
	br := bufio.NewReaderSize(c, 1024)
	status, err := br.ReadString('\n')
	if err != nil || !strings.Contains(status, " 101 ") {
		_ = c.Close()
		return nil, fmt.Errorf("handshake: %q %v", status, err)
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			_ = c.Close()
			return nil, err
		}
		if line == "\r\n" {
			break
		}
	}
	if _, err := readFrame(br); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("welcome: %w", err)
	}
	if br.Buffered() != 0 {
		_ = c.Close()
		return nil, errors.New("unexpected bytes after the welcome")
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

// request sends msg (a masked text frame, under 126 bytes) and reads one reply,
// which must contain want.
func request(c net.Conn, msg, want string) error {
	frame := []byte{0x81, 0x80 | byte(len(msg)), 1, 2, 3, 4}
	for j, b := range []byte(msg) {
		frame = append(frame, b^frame[2+j%4])
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	defer func() { _ = c.SetDeadline(time.Time{}) }()
	if _, err := c.Write(frame); err != nil {
		return err
	}
	p, err := readFrame(bufio.NewReaderSize(c, 512))
	if err != nil {
		return err
	}
	if !bytes.Contains(p, []byte(want)) {
		return fmt.Errorf("unexpected reply: %s", p)
	}
	return nil
}

// readFrame reads one unmasked server frame (short payloads only).
func readFrame(br *bufio.Reader) ([]byte, error) {
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return nil, err
	}
	l := int(h[1] & 0x7f)
	switch l {
	case 126:
		var e [2]byte
		if _, err := io.ReadFull(br, e[:]); err != nil {
			return nil, err
		}
		l = int(e[0])<<8 | int(e[1])
	case 127:
		return nil, errors.New("frame too long")
	}
	p := make([]byte, l)
	_, err := io.ReadFull(br, p)
	return p, err
}

func rss(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			v, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			return v
		}
	}
	return 0
}
