package redistest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// RequireEnv names the variable that turns a missing redis-server into a failure.
const RequireEnv = "WSGATETEST_REQUIRE_EXTERNAL"

// startTimeout bounds how long a server may take to accept connections.
const startTimeout = 10 * time.Second

// Server is one redis-server process owned by a test.
type Server struct {
	t    testing.TB
	bin  string
	dir  string
	port int

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited and been reaped
	aof  bool          // started with --appendonly yes (UseAOF)
}

// Start runs redis-server for t and stops it when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("redis-server not found and %s=1: %v", RequireEnv, err)
		}
		t.Skipf("redis-server not found (install it, e.g. apt-get install redis-server): %v", err)
	}
	s := &Server{t: t, bin: bin, dir: t.TempDir()}
	for attempt := 0; ; attempt++ {
		s.port, err = freePort()
		if err != nil {
			t.Fatalf("redistest: %v", err)
		}
		if err = s.start(); err == nil {
			break
		}
		if attempt == 3 { // the port may have been taken between probe and start
			t.Fatalf("redistest: %v", err)
		}
	}
	t.Cleanup(s.Stop)
	return s
}

// CPU returns the CPU time (user + system) the running server process has
// used, read from /proc (Linux); 0 when it is not running or /proc cannot tell.
// Benchmarks use it to report Redis' share of the work.
func (s *Server) CPU() time.Duration {
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd == nil {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) start after ")";
	// utime and stime are fields 14 and 15 of the line, in clock ticks (100/s
	// on Linux).
	_, rest, ok := strings.Cut(string(b), ") ")
	f := strings.Fields(rest)
	if !ok || len(f) < 13 {
		return 0
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(u+st) * 10 * time.Millisecond
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// Stop kills the server (SIGKILL: an abrupt outage, nothing saved) and waits for
// it to exit. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd, s.done = nil, nil
}

// Restart starts the server again on the same port, empty (a snapshot taken
// with Save, and the append-only file, are deleted first), and waits until it
// accepts connections.
func (s *Server) Restart() {
	s.t.Helper()
	if err := os.Remove(s.dir + "/dump.rdb"); err != nil && !os.IsNotExist(err) {
		s.t.Fatalf("redistest: remove snapshot: %v", err)
	}
	if err := os.RemoveAll(s.dir + "/appendonlydir"); err != nil {
		s.t.Fatalf("redistest: remove append-only file: %v", err)
	}
	s.restart()
}

// UseAOF turns on the append-only file with appendfsync always (every write
// on disk before its reply) on the running server; later restarts keep it
// on. RestartFromAOF then brings back everything acknowledged before Stop.
func (s *Server) UseAOF() {
	s.t.Helper()
	for _, c := range []string{"CONFIG SET appendfsync always", "CONFIG SET appendonly yes"} {
		if reply, err := command(s.Addr(), c); err != nil || !strings.HasPrefix(reply, "+OK") {
			s.t.Fatalf("redistest: %s: %q %v", c, reply, err)
		}
	}
	// Turning AOF on rewrites the file in the background; wait for it, so that
	// a Stop right after still leaves a complete file.
	deadline := time.Now().Add(startTimeout)
	for {
		reply, err := bulk(s.Addr(), "INFO persistence")
		if err == nil && strings.Contains(reply, "aof_rewrite_in_progress:0") && strings.Contains(reply, "aof_enabled:1") &&
			!strings.Contains(reply, "aof_rewrite_scheduled:1") {
			break
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redistest: AOF not on after %v: %q %v", startTimeout, reply, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.mu.Lock()
	s.aof = true
	s.mu.Unlock()
}

// RestartFromAOF starts the server again on the same port from its
// append-only file (UseAOF): every write acknowledged before Stop is back, but
// it is a new redis-server process.
func (s *Server) RestartFromAOF() {
	s.t.Helper()
	s.mu.Lock()
	aof := s.aof
	s.mu.Unlock()
	if !aof {
		s.t.Fatal("redistest: RestartFromAOF without UseAOF")
	}
	s.restart()
}

// RestartFromSnapshot starts the server again on the same port with the data of
// the last Save: what a restart from an old RDB file, or a failover to a replica
// that lagged, gives. The append-only file, if any, is deleted (UseAOF again to
// turn it back on).
func (s *Server) RestartFromSnapshot() {
	s.t.Helper()
	if _, err := os.Stat(s.dir + "/dump.rdb"); err != nil {
		s.t.Fatalf("redistest: no snapshot to restart from (call Save): %v", err)
	}
	// Redis loads the AOF instead of the snapshot when AOF is on: off it goes.
	if err := os.RemoveAll(s.dir + "/appendonlydir"); err != nil {
		s.t.Fatalf("redistest: remove append-only file: %v", err)
	}
	s.mu.Lock()
	s.aof = false
	s.mu.Unlock()
	s.restart()
}

// Command runs one inline command (e.g. "DEBUG SLEEP 1.5", "CLIENT PAUSE 1500
// ALL", "CLIENT KILL TYPE pubsub") on a connection of its own and returns the
// first line of the reply; an error reply or a failure fails the test.
func (s *Server) Command(cmd string) string {
	s.t.Helper()
	reply, err := command(s.Addr(), cmd)
	if err != nil || strings.HasPrefix(reply, "-") {
		s.t.Fatalf("redistest: %s: %q %v", cmd, reply, err)
	}
	return reply
}

// Save writes a snapshot (SAVE) that RestartFromSnapshot loads.
func (s *Server) Save() {
	s.t.Helper()
	reply, err := command(s.Addr(), "SAVE")
	if err != nil || !strings.HasPrefix(reply, "+OK") {
		s.t.Fatalf("redistest: SAVE: %q %v", reply, err)
	}
}

func (s *Server) restart() {
	s.t.Helper()
	s.mu.Lock()
	running := s.cmd != nil
	s.mu.Unlock()
	if running {
		s.t.Fatal("redistest: Restart while running; Stop first")
	}
	var err error
	for range 50 { // the old socket may linger in the kernel for a moment
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("redistest: restart on port %d: %v", s.port, err)
}

func (s *Server) start() error {
	s.mu.Lock()
	appendonly := "no"
	if s.aof {
		appendonly = "yes"
	}
	s.mu.Unlock()
	cmd := exec.Command(s.bin,
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--dir", s.dir,
		"--save", "", // snapshots only when a test calls Save
		"--appendonly", appendonly,
		"--appendfsync", "always",
		"--protected-mode", "no",
		"--daemonize", "no",
		"--loglevel", "warning",
		"--enable-debug-command", "local", // DEBUG SLEEP stalls in fault tests
	)
	out, err := os.Create(s.dir + "/redis.log")
	if err != nil {
		return err
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	// The reaper goroutine is owned by the Server: Stop waits for it.
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("redis-server exited at start; log: %s", s.log())
		default:
		}
		if ping(s.Addr()) {
			s.mu.Lock()
			s.cmd, s.done = cmd, exited
			s.mu.Unlock()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	<-exited
	return fmt.Errorf("redis-server on port %d not ready after %v; log: %s", s.port, startTimeout, s.log())
}

func (s *Server) log() string {
	b, _ := os.ReadFile(s.dir + "/redis.log")
	return strings.TrimSpace(string(b))
}

// ping speaks just enough RESP to see a +PONG.
func ping(addr string) bool {
	line, err := commandTimeout(addr, "PING", 200*time.Millisecond)
	return err == nil && strings.HasPrefix(line, "+PONG")
}

// command sends one inline command and returns the first reply line.
func command(addr, cmd string) (string, error) { return commandTimeout(addr, cmd, 10*time.Second) }

func commandTimeout(addr, cmd string, d time.Duration) (string, error) {
	c, r, err := send(addr, cmd, d)
	if err != nil {
		return "", err
	}
	defer c.Close()
	return r.ReadString('\n')
}

// send dials addr, writes cmd and returns the connection (deadline d) and a
// reader of the reply.
func send(addr, cmd string, d time.Duration) (net.Conn, *bufio.Reader, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var dl net.Dialer
	c, err := dl.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	_ = c.SetDeadline(time.Now().Add(d))
	if _, err := c.Write([]byte(cmd + "\r\n")); err != nil {
		_ = c.Close()
		return nil, nil, err
	}
	return c, bufio.NewReader(c), nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// bulk sends one inline command whose reply is a bulk string and returns it.
func bulk(addr, cmd string) (string, error) {
	c, r, err := send(addr, cmd, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	head, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(head, "$")))
	if !strings.HasPrefix(head, "$") || err != nil || n < 0 || n > 1<<20 {
		return "", fmt.Errorf("redistest: %s: unexpected reply %q", cmd, head)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", err
	}
	return string(b), nil
}
