// Command nbioecho is bench/bareecho on github.com/lesismal/nbio (epoll
// event loop, nbhttp/websocket) instead of gws: welcome, pong for
// {"type":"ping"...}, echo otherwise, no checks. It exists only to measure, in
// the same run as bareecho and wsgate, what an event-driven transport holds
// per idle connection and costs per round trip (docs/decisions/0002). It is a
// module of its own so that wsgate does not depend on nbio.
//
//	cd bench/nbioecho && go build -o /tmp/nbioecho . && /tmp/nbioecho -addr 127.0.0.1:19102
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/lesismal/nbio/nbhttp"
	"github.com/lesismal/nbio/nbhttp/websocket"
)

// The same replies as bench/bareecho.
var welcome, pong, ping = []byte(`{"type":"welcome"}`), []byte(`{"type":"pong"}`), []byte(`{"type":"ping"`)

func main() {
	addr := flag.String("addr", "127.0.0.1:19102", "listen address")
	flag.Parse()

	up := websocket.NewUpgrader()
	up.CheckOrigin = func(*http.Request) bool { return true }
	up.MessageLengthLimit = 8192
	up.OnOpen(func(c *websocket.Conn) { _ = c.WriteMessage(websocket.TextMessage, welcome) })
	up.OnMessage(func(c *websocket.Conn, mt websocket.MessageType, data []byte) {
		if bytes.HasPrefix(data, ping) {
			_ = c.WriteMessage(websocket.TextMessage, pong)
			return
		}
		_ = c.WriteMessage(mt, data)
	})
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if _, err := up.Upgrade(w, r, nil); err != nil {
			return
		}
	})
	engine := nbhttp.NewEngine(nbhttp.Config{
		Network:                 "tcp",
		Addrs:                   []string{*addr},
		Handler:                 mux,
		ReleaseWebsocketPayload: true,
		MaxLoad:                 1 << 20,
	})
	if err := engine.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "nbioecho:", err)
		os.Exit(1)
	}
	fmt.Printf("nbioecho listening on ws://%s/ pid %d\n", *addr, os.Getpid())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = engine.Shutdown(sctx)
}
