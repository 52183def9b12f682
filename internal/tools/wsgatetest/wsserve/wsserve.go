// Package wsserve serves WebSocket connections on wsgate's transport for
// tests that need a peer but not a wsgate server: the echo and naive servers
// the auditor is tried against, a stand-in upstream. It imports no wsgate
// package but transport, so any package's internal tests can use it.
package wsserve

import (
	"crypto/tls"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/wsgate/wsgate/internal/conn/transport"
)

// Options shape the server; the zero value serves plaintext with the
// transport's defaults.
type Options struct {
	// Transport configures the upgrader (nil: defaults).
	Transport *transport.Options
	// TLS, when set, serves TLS with this configuration and httptest's
	// certificate (CertPEM).
	TLS *tls.Config
	// OnOpen runs on each upgraded connection before it is served, e.g. to
	// write a welcome.
	OnOpen func(*transport.Conn)
}

// Server is a running test server.
type Server struct {
	*httptest.Server
	URL     string // ws://host:port or wss://host:port (no path)
	CertPEM []byte // the server certificate, with TLS
}

// Start serves WebSocket upgrades on any path, each connection handled by h,
// until the test ends; the cleanup closes the server and every connection
// and waits for their goroutines.
func Start(t testing.TB, h transport.Handler, o Options) *Server {
	t.Helper()
	up, err := transport.NewUpgrader(o.Transport)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []*transport.Conn
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, "", h)
		if err != nil {
			return
		}
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
		if o.OnOpen != nil {
			o.OnOpen(c)
		}
		wg.Go(c.Serve)
	}))
	s := &Server{Server: hs}
	if o.TLS != nil {
		hs.TLS = o.TLS
		hs.Config.ErrorLog = log.New(io.Discard, "", 0) // probes end handshakes on purpose
		hs.StartTLS()
		s.URL = "wss" + strings.TrimPrefix(hs.URL, "https")
		s.CertPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: hs.Certificate().Raw})
	} else {
		hs.Start()
		s.URL = "ws" + strings.TrimPrefix(hs.URL, "http")
	}
	t.Cleanup(func() {
		hs.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return s
}

// Echo is a handler that sends every message back as it came.
type Echo struct{}

func (Echo) OnMessage(c *transport.Conn, op transport.Opcode, data []byte) {
	_ = c.WriteMessage(op, data)
}
func (Echo) OnPing(*transport.Conn, []byte) {}
func (Echo) OnPong(*transport.Conn, []byte) {}
func (Echo) OnClose(*transport.Conn, error) {}
