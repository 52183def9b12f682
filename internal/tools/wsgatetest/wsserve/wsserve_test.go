package wsserve

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/conn/transport"
)

// recv collects what a client receives.
type recv chan []byte

func (r recv) OnMessage(_ *transport.Conn, _ transport.Opcode, b []byte) {
	r <- append([]byte(nil), b...)
}
func (recv) OnPing(*transport.Conn, []byte) {}
func (recv) OnPong(*transport.Conn, []byte) {}
func (recv) OnClose(*transport.Conn, error) {}

func TestEchoPlainAndTLS(t *testing.T) {
	for _, withTLS := range []bool{false, true} {
		var o Options
		o.OnOpen = func(c *transport.Conn) { _ = c.WriteMessage(transport.Text, []byte("hi")) }
		if withTLS {
			o.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		s := Start(t, Echo{}, o)
		var do transport.DialOptions
		if withTLS {
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(s.CertPEM)
			do.TLSConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		r := make(recv, 4)
		c, _, err := transport.Dial(ctx, s.URL+"/ws", &do, r)
		if err != nil {
			cancel()
			t.Fatalf("tls=%v: %v", withTLS, err)
		}
		var served sync.WaitGroup
		served.Go(c.Serve)
		_ = c.WriteMessage(transport.Text, []byte("ping"))
		for _, want := range []string{"hi", "ping"} {
			select {
			case got := <-r:
				if string(got) != want {
					t.Errorf("tls=%v: got %q, want %q", withTLS, got, want)
				}
			case <-ctx.Done():
				t.Fatalf("tls=%v: no %q", withTLS, want)
			}
		}
		_ = c.Close()
		served.Wait()
		cancel()
	}
}
