// Package echoserver runs a bare WebSocket server on wsgate's transport for
// tests: the naive server the check tool is pointed at, an upstream behind a
// gateway. It needs only the transport, so tests of packages below the server
// can use it without pulling in the whole gateway.
package echoserver

import (
	"crypto/tls"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/wsgate/wsgate/internal/transport"
)

// Echo sends every message back as it came and ignores the rest.
type Echo struct{}

func (Echo) OnMessage(c *transport.Conn, op transport.Opcode, data []byte) {
	_ = c.WriteMessage(op, data)
}
func (Echo) OnPing(*transport.Conn, []byte) {}
func (Echo) OnPong(*transport.Conn, []byte) {}
func (Echo) OnClose(*transport.Conn, error) {}

// Start serves WebSocket on every path with the transport's upgrader for opts
// and handler h, over TLS with tlsCfg when it is not nil. When the test ends it
// closes the server and every connection and waits for their Serve loops
// (httptest's Close ignores hijacked connections).
func Start(t testing.TB, opts *transport.Options, h transport.Handler, tlsCfg *tls.Config) *httptest.Server {
	t.Helper()
	up, err := transport.NewUpgrader(opts)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []*transport.Conn
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, "", h)
		if err != nil {
			return
		}
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
		wg.Go(c.Serve)
	}))
	// Probes send broken handshakes on purpose; their errors are not news.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	if tlsCfg != nil {
		srv.TLS = tlsCfg
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(func() {
		srv.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return srv
}
