package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"

	"github.com/spf13/cobra"

	"github.com/wsgate/wsgate/internal/transport"
)

func connectCmd() *cobra.Command {
	var token, ticket, caFile, origin string
	cmd := &cobra.Command{
		Use:   "connect URL",
		Short: "Open a WebSocket, print what arrives, send each line typed on stdin",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			u := args[0]
			h := http.Header{}
			if token != "" {
				h.Set("Authorization", "Bearer "+token)
			}
			if origin != "" {
				h.Set("Origin", origin)
			}
			if ticket != "" {
				u += "?ticket=" + ticket
			}
			opts := &transport.DialOptions{Header: h, Subprotocols: []string{"wsgate.v1"}}
			opts.Options.MaxMessageBytes = 1 << 20
			opts.Options.AllowBinary = true
			if caFile != "" {
				pem, err := os.ReadFile(caFile)
				if err != nil {
					return fmt.Errorf("--cacert: %w", err)
				}
				pool := x509.NewCertPool()
				if !pool.AppendCertsFromPEM(pem) {
					return fmt.Errorf("--cacert %s: no certificate found", caFile)
				}
				opts.TLSConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
			}
			p := &printer{out: cmd.OutOrStdout(), done: make(chan struct{})}
			conn, resp, err := transport.Dial(cmd.Context(), u, opts, p)
			if err != nil {
				if resp != nil {
					return fmt.Errorf("handshake refused: %s", resp.Status)
				}
				return err
			}
			go conn.Serve()
			lines := make(chan string)
			go func() {
				sc := bufio.NewScanner(os.Stdin)
				for sc.Scan() {
					lines <- sc.Text()
				}
				close(lines)
			}()
			for {
				select {
				case <-p.done:
					return nil
				case <-cmd.Context().Done():
					_ = conn.WriteClose(transport.StatusNormal, "bye")
					<-p.done
					return nil
				case l, ok := <-lines:
					if !ok {
						_ = conn.WriteClose(transport.StatusNormal, "bye")
						<-p.done
						return nil
					}
					if err := conn.WriteMessage(transport.Text, []byte(l)); err != nil {
						return err
					}
				}
			}
		},
	}
	f := cmd.Flags()
	f.StringVar(&token, "token", "", "bearer token (sent in the Authorization header)")
	f.StringVar(&ticket, "ticket", "", "one-time ticket (sent as ?ticket=)")
	f.StringVar(&caFile, "cacert", "", "PEM file of a CA to trust (the dev certificate)")
	f.StringVar(&origin, "origin", "", "Origin header to send")
	return cmd
}

type printer struct {
	mu   sync.Mutex
	out  interface{ Write([]byte) (int, error) }
	once sync.Once
	done chan struct{}
}

func (p *printer) OnMessage(_ *transport.Conn, _ transport.Opcode, data []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.out, "< %s\n", data)
}
func (p *printer) OnPing(*transport.Conn, []byte) {}
func (p *printer) OnPong(*transport.Conn, []byte) {}
func (p *printer) OnClose(_ *transport.Conn, err error) {
	code, _ := transport.CloseCode(err)
	var ce *transport.CloseError
	reason := ""
	if errors.As(err, &ce) {
		reason = ce.Reason
	}
	fmt.Fprintf(p.out, "closed: %d %s\n", code, reason)
	p.once.Do(func() { close(p.done) })
}
