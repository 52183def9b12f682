// Command bareecho is the floor for wsgate benchmarks: a plain ws:// server
// on internal/conn/transport with no authentication, no pipeline and no limits
// beyond the transport's defaults. It sends a welcome message, answers
// messages starting with {"type":"ping" with {"type":"pong"} and echoes
// everything else.
//
// With -pure it is a conformance target instead (the Autobahn fuzzing
// client, scripts/conformance.sh): it echoes every message unchanged, sends
// nothing of its own, accepts binary and permessage-deflate, and lifts the
// size and fragment caps (16 MiB, one million fragments) so that only the
// protocol rules of internal/conn/transport decide.
//
//	go run ./bench/bareecho -addr 127.0.0.1:9001
//	go run ./bench/bareecho -pure -addr 127.0.0.1:9001
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/wsgate/wsgate/internal/conn/transport"
)

var (
	welcome = []byte(`{"type":"welcome"}`)
	pong    = []byte(`{"type":"pong"}`)
	ping    = []byte(`{"type":"ping"`)
)

// echo is the per-connection handler: no checks at all.
type echo struct{ pure bool }

func (e echo) OnMessage(c *transport.Conn, op transport.Opcode, data []byte) {
	if !e.pure && bytes.HasPrefix(data, ping) {
		_ = c.WriteMessage(transport.Text, pong)
		return
	}
	_ = c.WriteMessage(op, data)
}
func (echo) OnPing(*transport.Conn, []byte) {}
func (echo) OnPong(*transport.Conn, []byte) {}
func (echo) OnClose(*transport.Conn, error) {}

// server tracks live connections so that shutdown can close them
// (http.Server.Shutdown ignores hijacked sockets).
type server struct {
	pure  bool
	up    *transport.Upgrader
	mu    sync.Mutex
	conns map[*transport.Conn]struct{}
	wg    sync.WaitGroup
	down  bool
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := s.up.Upgrade(w, r, "", echo{pure: s.pure})
	if err != nil {
		return
	}
	s.mu.Lock()
	if s.down {
		s.mu.Unlock()
		_ = c.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.wg.Done()
	}()
	if !s.pure {
		if err := c.WriteMessage(transport.Text, welcome); err != nil {
			_ = c.Close()
		}
	}
	c.Serve()
}

func (s *server) closeAll() {
	s.mu.Lock()
	s.down = true
	for c := range s.conns {
		_ = c.WriteClose(transport.StatusGoingAway, "shutdown")
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bareecho:", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "127.0.0.1:9001", "listen address")
	maxBytes := flag.Int("max-message-bytes", 0, "transport MaxMessageBytes (0 = default 8192)")
	binary := flag.Bool("allow-binary", false, "accept binary messages")
	deflate := flag.Bool("compression", false, "enable permessage-deflate")
	pure := flag.Bool("pure", false, "pure echo for conformance testing: no welcome, no pong reply, binary and permessage-deflate on, 16 MiB messages, no practical fragment cap")
	reader := flag.String("reader", "gws", "transport read side: gws or event (ADR 0002)")
	flag.Parse()

	opts := transport.Options{
		MaxMessageBytes: *maxBytes,
		AllowBinary:     *binary,
		Compression:     transport.Compression{Enabled: *deflate},
	}
	if *pure {
		opts = pureOptions(*maxBytes)
	}
	opts.Reader = *reader
	up, err := transport.NewUpgrader(&opts)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	s := &server{pure: *pure, up: up, conns: make(map[*transport.Conn]struct{})}
	hs := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(slog.Default().Handler(), slog.LevelWarn)}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	mode := ""
	if *pure {
		mode = " (pure echo)"
	}
	fmt.Printf("bareecho listening on ws://%s/%s pid %d\n", ln.Addr(), mode, os.Getpid())

	select {
	case err = <-errc:
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = hs.Shutdown(sctx)
		s.closeAll()
		<-errc
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// pureOptions are the transport options of -pure: everything the protocol
// allows, within what a conformance suite sends (Autobahn's largest message
// is 16 MiB, its most fragmented 4 MiB in 64-byte frames).
func pureOptions(maxBytes int) transport.Options {
	if maxBytes == 0 {
		maxBytes = 16 << 20
	}
	return transport.Options{
		MaxMessageBytes: maxBytes,
		MaxFragments:    1 << 20,
		AllowBinary:     true,
		Compression:     transport.Compression{Enabled: true},
		WriteTimeout:    time.Minute,
	}
}
