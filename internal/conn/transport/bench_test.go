package transport

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Benchmarks and the idle-memory probe run against an in-process server by
// default, or against an external one (bench/bareecho) when
// WSGATETEST_BENCH_ADDR=host:port is set; with WSGATETEST_BENCH_PID also set they
// report that process's CPU time and RSS, i.e. server-only numbers.

// benchEcho mirrors bench/bareecho's handler.
type benchEcho struct{}

func (benchEcho) OnMessage(c *Conn, op Opcode, data []byte) {
	if bytes.HasPrefix(data, []byte(`{"type":"ping"`)) {
		_ = c.WriteMessage(Text, []byte(`{"type":"pong"}`))
		return
	}
	_ = c.WriteMessage(op, data)
}
func (benchEcho) OnPing(*Conn, []byte) {}
func (benchEcho) OnPong(*Conn, []byte) {}
func (benchEcho) OnClose(*Conn, error) {}

// benchTarget returns the ws URL of the server to measure and a func that
// reads the server's CPU time (0 when it is this process).
func benchTarget(tb testing.TB) (string, int) {
	tb.Helper()
	if addr := os.Getenv("WSGATETEST_BENCH_ADDR"); addr != "" {
		pid, _ := strconv.Atoi(os.Getenv("WSGATETEST_BENCH_PID"))
		return "ws://" + addr + "/", pid
	}
	up, err := newTestUpgrader(nil)
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, "", benchEcho{})
		if err != nil {
			return
		}
		wg.Add(1)
		defer wg.Done()
		_ = c.WriteMessage(Text, []byte(`{"type":"welcome"}`))
		c.Serve()
	})}
	go func() { _ = srv.Serve(ln) }()
	tb.Cleanup(func() { _ = srv.Close() })
	return "ws://" + ln.Addr().String() + "/", 0
}

// chanHandler forwards messages to a channel.
type chanHandler struct{ ch chan []byte }

func (h chanHandler) OnMessage(_ *Conn, _ Opcode, data []byte) { h.ch <- data }
func (chanHandler) OnPing(*Conn, []byte)                       {}
func (chanHandler) OnPong(*Conn, []byte)                       {}
func (chanHandler) OnClose(*Conn, error)                       {}

// cpuTime is user+system CPU of pid (0 = this process).
func cpuTime(tb testing.TB, pid int) time.Duration {
	if pid == 0 {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			tb.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		tb.Fatal(err)
	}
	// Fields after the parenthesised command: utime is field 14, stime 15.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ = 100
}

// BenchmarkEchoRoundTrip: one client sends a 1 KiB text message and waits
// for the echo, over loopback. cpu-ns/op is the server process's CPU per
// round trip when WSGATETEST_BENCH_PID is set, else this whole process's
// (client and server together).
func BenchmarkEchoRoundTrip(b *testing.B) {
	url, pid := benchTarget(b)
	h := chanHandler{ch: make(chan []byte, 1)}
	c, _, err := Dial(context.Background(), url, nil, h)
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); c.Serve() }()
	defer func() { _ = c.Close(); <-done }()
	<-h.ch // welcome

	msg := []byte(`{"type":"echo","data":"` + strings.Repeat("x", 1024-26) + `"}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	cpu0 := cpuTime(b, pid)
	b.ResetTimer()
	for b.Loop() {
		if err := c.WriteMessage(Text, msg); err != nil {
			b.Fatal(err)
		}
		<-h.ch
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime(b, pid)-cpu0)/float64(b.N), "cpu-ns/op")
}

func rssBytes(tb testing.TB, pid int) int64 {
	path := "/proc/self/status"
	if pid != 0 {
		path = "/proc/" + strconv.Itoa(pid) + "/status"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	tb.Fatal("no VmRSS")
	return 0
}

// TestIdleConnectionMemory opens WSGATETEST_IDLE_CONNS idle connections and
// logs the RSS growth per connection: of the server process when
// WSGATETEST_BENCH_PID is set, else of this process (client and server sides
// together). Skipped unless WSGATETEST_IDLE_CONNS is set.
func TestIdleConnectionMemory(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("WSGATETEST_IDLE_CONNS"))
	if n <= 0 {
		t.Skip("set WSGATETEST_IDLE_CONNS=5000 to measure")
	}
	url, pid := benchTarget(t)
	runtime.GC()
	time.Sleep(200 * time.Millisecond)
	before := rssBytes(t, pid)
	conns := make([]*Conn, 0, n)
	var wg sync.WaitGroup
	h := chanHandler{ch: make(chan []byte, n)}
	for range n {
		c, _, err := Dial(context.Background(), url, nil, h)
		if err != nil {
			t.Fatalf("after %d connections: %v", len(conns), err)
		}
		conns = append(conns, c)
		wg.Add(1)
		go func() { defer wg.Done(); c.Serve() }()
	}
	for range n {
		<-h.ch // every server sent its welcome: all connections are live
	}
	runtime.GC()
	time.Sleep(500 * time.Millisecond)
	after := rssBytes(t, pid)
	who := "this process (client+server)"
	if pid != 0 {
		who = "server pid " + strconv.Itoa(pid)
	}
	t.Logf("%d idle connections: RSS %d -> %d KiB, %.1f KiB per connection (%s)",
		n, before>>10, after>>10, float64(after-before)/float64(n)/1024, who)
	for _, c := range conns {
		_ = c.Close()
	}
	wg.Wait()
}
