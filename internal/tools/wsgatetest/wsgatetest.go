// Package wsgatetest starts real wsgate servers on loopback for end-to-end tests and
// gives tests a small WebSocket client with expectations (messages, close codes).
package wsgatetest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/conn/transport"
	"github.com/wsgate/wsgate/internal/edge/auth"
	"github.com/wsgate/wsgate/internal/server"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/logbuf"
)

// Secret is the HMAC secret every test server trusts (kid "test").
const Secret = "test-secret-test-secret-test-secret-0123456789"

// Server is a running test server.
type Server struct {
	*server.Server
	Cfg       *config.Config
	URL       string // wss://127.0.0.1:port/ws (or ws:// with plaintext)
	HTTPURL   string // https://127.0.0.1:port
	AdminURL  string // http://127.0.0.1:port ("" when off)
	Addr      string
	RootCAs   *x509.CertPool
	Logs      *LogBuffer
	cancel    context.CancelFunc
	done      chan error
	signer    *auth.Signer
	CertPEM   []byte
	TLSConfig *tls.Config
}

// LogBuffer collects everything the server logged, for assertions.
type LogBuffer = logbuf.Buffer

// Config returns the base test configuration: TLS with a generated certificate
// (set by Start), an HMAC key, admin on a free port, debug logs.
func Config() *config.Config {
	c := config.Default()
	c.Listen = "127.0.0.1:0"
	c.Admin.Listen = "127.0.0.1:0"
	c.Admin.Token = "admin-token-admin-token-admin-token-0123"
	c.Auth.Keys = []config.Key{{ID: "test", Algorithms: []string{"HS256"}, Secret: Secret}}
	c.Log.Level = "debug"
	c.Timeouts.Drain = 3 * time.Second
	return c
}

// Start runs a server with cfg (nil = Config()) until the test ends.
func Start(t testing.TB, cfg *config.Config, opts ...server.Option) *Server {
	t.Helper()
	if cfg == nil {
		cfg = Config()
	}
	if r := os.Getenv("WSGATETEST_READER"); r != "" {
		cfg.Transport.Reader = r // run the suite on the event reader (ADR 0002)
	}
	ts := &Server{Cfg: cfg, Logs: &LogBuffer{}, done: make(chan error, 1)}
	if !cfg.InsecurePlaintext && cfg.TLS.CertFile == "" {
		cert, pemBytes, err := devCertificate()
		if err != nil {
			t.Fatal(err)
		}
		cfg.TLS.Certificate = cert
		ts.CertPEM = pemBytes
		ts.RootCAs = x509.NewCertPool()
		ts.RootCAs.AppendCertsFromPEM(pemBytes)
	}
	logger := slog.New(slog.NewJSONHandler(io.MultiWriter(ts.Logs), &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts = append([]server.Option{server.WithLogger(logger)}, opts...)
	srv, err := server.New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ts.Server = srv
	ctx, cancel := context.WithCancel(context.Background())
	ts.cancel = cancel
	ready := make(chan server.Listening, 1)
	go func() { ts.done <- srv.ListenAndServe(ctx, func(l server.Listening) { ready <- l }) }()
	select {
	case l := <-ready:
		ts.Addr = l.Addr
		scheme, hs := "wss", "https"
		if !l.TLS {
			scheme, hs = "ws", "http"
		}
		ts.URL = fmt.Sprintf("%s://%s%s", scheme, l.Addr, cfg.Path)
		ts.HTTPURL = fmt.Sprintf("%s://%s", hs, l.Addr)
		if l.AdminAddr != "" {
			ts.AdminURL = "http://" + l.AdminAddr
		}
	case err := <-ts.done:
		t.Fatalf("server did not start: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("server did not start within 10s")
	}
	if ts.RootCAs != nil {
		ts.TLSConfig = &tls.Config{RootCAs: ts.RootCAs, MinVersion: tls.VersionTLS12}
	}
	secret, _ := auth.ParseSecret(Secret)
	ts.signer = auth.NewHMACSigner(secret, "test")
	t.Cleanup(func() { ts.Stop(t) })
	return ts
}

// Stop shuts the server down (idempotent) and returns ListenAndServe's error.
func (s *Server) Stop(t testing.TB) error {
	s.cancel()
	select {
	case err, ok := <-s.done:
		if ok {
			close(s.done)
			return err
		}
		return nil
	case <-time.After(15 * time.Second):
		t.Error("server did not stop within 15s")
		return errors.New("timeout")
	}
}

// Token mints a valid token for sub (1h) with extra claims.
func (s *Server) Token(t testing.TB, sub string, claims map[string]any) string {
	t.Helper()
	tok, err := s.signer.Mint(sub, time.Hour, claims)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TokenTTL mints a token with the given lifetime.
func (s *Server) TokenTTL(t testing.TB, sub string, ttl time.Duration, claims map[string]any) string {
	t.Helper()
	tok, err := s.signer.Mint(sub, ttl, claims)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// HTTPClient trusts the test certificate.
func (s *Server) HTTPClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: s.TLSConfig}}
}

// Client is a test WebSocket client.
type Client struct {
	Conn   *transport.Conn
	Msgs   chan []byte
	closed chan struct{}
	once   sync.Once
	mu     sync.Mutex
	Code   uint16
	Reason string
}

func (c *Client) OnMessage(_ *transport.Conn, _ transport.Opcode, data []byte) {
	select {
	case c.Msgs <- data:
	default: // a test that does not read must not block the client's reader
	}
}
func (c *Client) OnPing(*transport.Conn, []byte) {}
func (c *Client) OnPong(*transport.Conn, []byte) {}
func (c *Client) OnClose(_ *transport.Conn, err error) {
	c.mu.Lock()
	code, _ := transport.CloseCode(err)
	c.Code = code
	var ce *transport.CloseError
	if errors.As(err, &ce) {
		c.Reason = ce.Reason
	}
	c.mu.Unlock()
	c.once.Do(func() { close(c.closed) })
}

// DialOptions for Dial.
type DialOptions struct {
	Header       http.Header
	Subprotocols []string
	URL          string // defaults to the server's URL
	TLSConfig    *tls.Config
}

// Dial connects with opts; on a refused handshake it returns the response.
func (s *Server) Dial(t testing.TB, o DialOptions) (*Client, *http.Response, error) {
	t.Helper()
	u := o.URL
	if u == "" {
		u = s.URL
	}
	tc := o.TLSConfig
	if tc == nil {
		tc = s.TLSConfig
	}
	c := &Client{Msgs: make(chan []byte, 4096), closed: make(chan struct{})}
	do := &transport.DialOptions{Header: o.Header, Subprotocols: o.Subprotocols, TLSConfig: tc, HandshakeTimeout: 10 * time.Second}
	do.Options.MaxMessageBytes = 1 << 20
	do.Options.AllowBinary = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, resp, err := transport.Dial(ctx, u, do, c)
	if err != nil {
		return nil, resp, err
	}
	c.Conn = conn
	go conn.Serve()
	t.Cleanup(func() { _ = conn.Close() })
	return c, resp, nil
}

// Connect dials with a bearer token for sub and reads the welcome message.
func (s *Server) Connect(t testing.TB, sub string, claims map[string]any) *Client {
	t.Helper()
	h := http.Header{"Authorization": {"Bearer " + s.Token(t, sub, claims)}}
	c, resp, err := s.Dial(t, DialOptions{Header: h})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("connect %s: %v (status %d)", sub, err, status)
	}
	w := c.Expect(t, "welcome", 5*time.Second)
	if w["user"] != sub {
		t.Fatalf("welcome for %v, want %s", w["user"], sub)
	}
	return c
}

// Send writes a text message.
func (c *Client) Send(t testing.TB, s string) {
	t.Helper()
	if err := c.Conn.WriteMessage(transport.Text, []byte(s)); err != nil {
		t.Fatalf("send: %v", err)
	}
}

// SendJSON marshals v and sends it.
func (c *Client) SendJSON(t testing.TB, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	c.Send(t, string(b))
}

// Next returns the next message decoded as an object.
func (c *Client) Next(t testing.TB, within time.Duration) map[string]any {
	t.Helper()
	select {
	case b := <-c.Msgs:
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("message is not a JSON object: %q", b)
		}
		return m
	case <-c.closed:
		t.Fatalf("connection closed (%d %q) while waiting for a message", c.Code, c.Reason)
	case <-time.After(within):
		t.Fatalf("no message within %s", within)
	}
	return nil
}

// Expect skips messages until one of type typ arrives.
func (c *Client) Expect(t testing.TB, typ string, within time.Duration) map[string]any {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("no %q message within %s", typ, within)
		}
		m := c.Next(t, left)
		if m["type"] == typ {
			return m
		}
	}
}

// ExpectClose waits for the connection to close and checks the code.
func (c *Client) ExpectClose(t testing.TB, code uint16, within time.Duration) string {
	t.Helper()
	select {
	case <-c.closed:
	case <-time.After(within):
		t.Fatalf("connection not closed within %s (want %d)", within, code)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.Code != code {
		t.Fatalf("close code %d %q, want %d", c.Code, c.Reason, code)
	}
	return c.Reason
}

// Closed reports whether the connection has ended.
func (c *Client) Closed() <-chan struct{} { return c.closed }

// JSON is v marshalled (a test compares a decoded message's part as text).
func JSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
