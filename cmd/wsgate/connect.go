package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/wsgate/wsgate/internal/conn/transport"
)

func connectCmd() *cobra.Command {
	var (
		token, ticket, caFile, origin string
		subprotocols, headers         []string
		insecure                      bool
		wait                          time.Duration
	)
	cmd := &cobra.Command{
		Use:   "connect URL",
		Short: "Open a WebSocket, print what arrives, send each line read from stdin",
		Long: `Open a WebSocket, print each message that arrives ("< …"), and send each line
read from stdin as a text message. At the end of stdin (a pipe, or Ctrl-D) it keeps
printing until no message has arrived for --wait, then closes with 1000:

  echo '{"type":"ping"}' | wsgate connect wss://127.0.0.1:8443/ws --token "$T" --cacert dev.pem`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			u := args[0]
			h := http.Header{}
			for _, hv := range headers {
				k, v, ok := strings.Cut(hv, ":")
				if !ok || strings.TrimSpace(k) == "" {
					return fmt.Errorf("--header %q: want \"Name: value\"", hv)
				}
				h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
			}
			if token != "" {
				h.Set("Authorization", "Bearer "+token)
			}
			if origin != "" {
				h.Set("Origin", origin)
			}
			if ticket != "" {
				sep := "?"
				if strings.Contains(u, "?") {
					sep = "&"
				}
				u += sep + "ticket=" + url.QueryEscape(ticket)
			}
			opts := &transport.DialOptions{Header: h, Subprotocols: subprotocols}
			opts.Options.MaxMessageBytes = 1 << 20
			opts.Options.AllowBinary = true
			tc := &tls.Config{MinVersion: tls.VersionTLS12}
			if caFile != "" {
				pem, err := os.ReadFile(caFile)
				if err != nil {
					return fmt.Errorf("--cacert: %w", err)
				}
				pool := x509.NewCertPool()
				if !pool.AppendCertsFromPEM(pem) {
					return fmt.Errorf("--cacert %s: no certificate found", caFile)
				}
				tc.RootCAs = pool
			}
			if insecure {
				fmt.Fprintln(cmd.ErrOrStderr(), "wsgate: INSECURE: --insecure skips verifying the server certificate; anyone on the path can read and change this connection")
				tc.InsecureSkipVerify = true
			}
			opts.TLSConfig = tc
			p := &printer{out: cmd.OutOrStdout(), done: make(chan struct{}), got: make(chan struct{}, 1)}
			conn, resp, err := transport.Dial(cmd.Context(), u, opts, p)
			if err != nil {
				if resp != nil {
					body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
					_ = resp.Body.Close()
					if len(body) > 0 {
						return fmt.Errorf("handshake refused: %s: %s", resp.Status, strings.TrimSpace(string(body)))
					}
					return fmt.Errorf("handshake refused: %s", resp.Status)
				}
				return err
			}
			if sp := conn.Subprotocol(); sp != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "connected (subprotocol %s)\n", sp)
			}
			go conn.Serve()
			lines := make(chan string)
			stop := make(chan struct{})
			defer close(stop)
			go func() {
				defer close(lines)
				sc := bufio.NewScanner(cmd.InOrStdin())
				sc.Buffer(make([]byte, 64<<10), 1<<20)
				for sc.Scan() {
					select {
					case lines <- sc.Text():
					case <-stop:
						return
					}
				}
			}()
			bye := func() error {
				_ = conn.WriteClose(transport.StatusNormal, "bye")
				select {
				case <-p.done:
				case <-time.After(5 * time.Second):
				}
				return nil
			}
			// At the end of input lines is nil and idle runs: replies are
			// printed until none has arrived for --wait.
			var idle *time.Timer
			var idleC <-chan time.Time
			for {
				select {
				case <-p.done:
					return nil
				case <-cmd.Context().Done():
					return bye()
				case <-idleC:
					return bye()
				case <-p.got:
					if idle != nil {
						idle.Reset(wait)
					}
				case l, ok := <-lines:
					if !ok {
						lines = nil
						idle = time.NewTimer(wait)
						idleC = idle.C
						continue
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
	f.StringVar(&caFile, "cacert", "", "PEM file of a CA to trust (the dev certificate, examples/certs/ca.pem)")
	f.BoolVar(&insecure, "insecure", false, "INSECURE: do not verify the server certificate")
	f.StringVar(&origin, "origin", "", "Origin header to send")
	f.StringArrayVar(&subprotocols, "subprotocol", []string{"wsgate.v1"}, "subprotocol to offer, repeatable (the server must pick one)")
	f.StringArrayVarP(&headers, "header", "H", nil, "extra request header \"Name: value\", repeatable")
	f.DurationVar(&wait, "wait", 2*time.Second, "after stdin ends, keep printing until no message arrived for this long")
	return cmd
}

type printer struct {
	mu   sync.Mutex
	out  io.Writer
	once sync.Once
	done chan struct{}
	got  chan struct{} // a message arrived (capacity 1, never blocks)
}

func (p *printer) OnMessage(_ *transport.Conn, _ transport.Opcode, data []byte) {
	p.mu.Lock()
	fmt.Fprintf(p.out, "< %s\n", data)
	p.mu.Unlock()
	select {
	case p.got <- struct{}{}:
	default:
	}
}
func (p *printer) OnPing(*transport.Conn, []byte) {}
func (p *printer) OnPong(*transport.Conn, []byte) {}
func (p *printer) OnClose(_ *transport.Conn, err error) {
	code, reason := transport.CloseStatus(err)
	p.mu.Lock()
	fmt.Fprintf(p.out, "closed: %d %s\n", code, reason)
	p.mu.Unlock()
	p.once.Do(func() { close(p.done) })
}
