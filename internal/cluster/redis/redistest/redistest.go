package redistest

import (
	"bufio"
	"context"
	"fmt"
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
// with Save is deleted first), and waits until it accepts connections.
func (s *Server) Restart() {
	s.t.Helper()
	if err := os.Remove(s.dir + "/dump.rdb"); err != nil && !os.IsNotExist(err) {
		s.t.Fatalf("redistest: remove snapshot: %v", err)
	}
	s.restart()
}

// RestartFromSnapshot starts the server again on the same port with the data of
// the last Save: what a restart from an old RDB file, or a failover to a replica
// that lagged, gives.
func (s *Server) RestartFromSnapshot() {
	s.t.Helper()
	if _, err := os.Stat(s.dir + "/dump.rdb"); err != nil {
		s.t.Fatalf("redistest: no snapshot to restart from (call Save): %v", err)
	}
	s.restart()
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
	cmd := exec.Command(s.bin,
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--dir", s.dir,
		"--save", "", // snapshots only when a test calls Save
		"--appendonly", "no",
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
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var dl net.Dialer
	c, err := dl.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(d))
	if _, err := c.Write([]byte(cmd + "\r\n")); err != nil {
		return "", err
	}
	return bufio.NewReader(c).ReadString('\n')
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
