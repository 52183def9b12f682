package upstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/conn/transport"
	"github.com/wsgate/wsgate/internal/tools/certgen"
)

type pki struct{ *certgen.Authority }

func newPKI(t *testing.T) *pki {
	t.Helper()
	ca, err := certgen.NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &pki{ca}
}

// issue makes a server certificate for 127.0.0.1, or a client certificate.
func (p *pki) issue(t *testing.T, cn string, server bool) (tls.Certificate, []byte, []byte) {
	t.Helper()
	var hosts []string
	if server {
		hosts = []string{"127.0.0.1"}
	}
	pair, err := p.Issue(cn, hosts, !server, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := pair.TLS()
	if err != nil {
		t.Fatal(err)
	}
	return *c, pair.CertPEM, pair.KeyPEM
}

// wsServer is a minimal upstream recording the upgrade requests it served.
// The request is recorded before the 101 is written, so a client that saw
// its upgrade succeed always finds the request here (no race with the dial).
type wsServer struct {
	up    *transport.Upgrader
	mu    sync.Mutex
	reqs  []*http.Request
	conns []*transport.Conn
}

func (s *wsServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.reqs = append(s.reqs, r)
	s.mu.Unlock()
	c, err := s.up.Upgrade(w, r, "", nopHandler{})
	if err != nil {
		return
	}
	s.mu.Lock()
	s.conns = append(s.conns, c)
	s.mu.Unlock()
	c.Serve()
}

// request returns the i-th recorded upgrade request, failing the test (never
// panicking, never while holding the lock) when there is none.
func (s *wsServer) request(t *testing.T, i int) *http.Request {
	t.Helper()
	s.mu.Lock()
	n := len(s.reqs)
	var r *http.Request
	if i < n {
		r = s.reqs[i]
	}
	s.mu.Unlock()
	if r == nil {
		t.Fatalf("upstream recorded %d upgrade requests, want request #%d", n, i)
	}
	return r
}

// close closes every served connection; the lock is released before any
// Close runs, so a Close that calls back into the server cannot deadlock.
func (s *wsServer) close() {
	s.mu.Lock()
	conns := append([]*transport.Conn(nil), s.conns...)
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

type nopHandler struct{}

func (nopHandler) OnMessage(*transport.Conn, transport.Opcode, []byte) {}
func (nopHandler) OnPing(*transport.Conn, []byte)                      {}
func (nopHandler) OnPong(*transport.Conn, []byte)                      {}
func (nopHandler) OnClose(*transport.Conn, error)                      {}

type nopClient struct{}

func (nopClient) Send(transport.Opcode, []byte) error { return nil }
func (nopClient) Pending() (int, int)                 { return 0, 0 }
func (nopClient) CloseWith(uint16, string)            {}

func TestDialMTLS(t *testing.T) {
	p := newPKI(t)
	srvCert, _, _ := p.issue(t, "upstream", true)
	_, cliPEM, cliKey := p.issue(t, "wsgate", false)
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	caFile, certFile, keyFile := write("ca.pem", p.PEM), write("c.pem", cliPEM), write("k.pem", cliKey)

	up, _ := transport.NewUpgrader(nil)
	ws := &wsServer{up: up}
	srv := httptest.NewUnstartedServer(ws)
	pool := x509.NewCertPool()
	pool.AddCert(p.Cert)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{srvCert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
	srv.StartTLS()
	defer srv.Close()
	defer ws.close()
	u := "wss" + strings.TrimPrefix(srv.URL, "https") + "/up?fixed=1"

	d, err := NewDialer(Options{Route: "/gw", URL: u, CAFile: caFile, ClientCertFile: certFile, ClientKeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/gw?room=5&token=secret&ticket=t1", nil)
	req.Header.Set("Origin", "https://app.example")
	req.Header.Set("Cookie", "a=b")
	l, err := d.Dial(context.Background(), DialRequest{Request: req, ClientIP: "10.1.2.3", User: "alice", ConnID: "c1"})
	if err != nil {
		t.Fatalf("mTLS dial: %v", err)
	}
	l.Start(nopClient{}, nil)
	r := ws.request(t, 0)
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 || r.TLS.PeerCertificates[0].Subject.CommonName != "wsgate" {
		t.Fatal("upstream did not see wsgate's client certificate")
	}
	q := r.URL.Query()
	if q.Get("room") != "5" || q.Get("fixed") != "1" || q.Has("token") || q.Has("ticket") {
		t.Fatalf("query forwarded as %q", r.URL.RawQuery)
	}
	if r.Header.Get("Origin") != "https://app.example" || r.Header.Get("Cookie") != "" || r.Header.Get("X-Forwarded-For") != "10.1.2.3" ||
		r.Header.Get("X-Forwarded-Proto") != "http" || r.Header.Get(HeaderSignature) != "" || r.Header.Get(HeaderUser) != "alice" {
		t.Fatalf("headers %v", r.Header)
	}
	l.Close(1000, "")
	l.Wait(3 * time.Second)

	// Without the client certificate the upstream refuses at TLS: 502 "tls".
	d2, _ := NewDialer(Options{Route: "/gw", URL: u, CAFile: caFile})
	_, err = d2.Dial(context.Background(), DialRequest{Request: req, User: "alice", ConnID: "c2"})
	var de *DialError
	if !errors.As(err, &de) || de.Status != http.StatusBadGateway {
		t.Fatalf("dial without client cert: %v", err)
	}
}

func TestDialFailuresAndHealth(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	_ = ln.Close()
	d, err := NewDialer(Options{Route: "/x", URL: "ws://" + addr + "/", ConnectTimeout: time.Second, DownAfter: 2})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		_, err := d.Dial(context.Background(), DialRequest{User: "u", ConnID: "c"})
		var de *DialError
		if !errors.As(err, &de) || de.Status != http.StatusBadGateway || de.Reason != "connect" {
			t.Fatalf("dial %d: %v", i, err)
		}
	}
	if h := d.Health(); h.Up || h.ConsecutiveFailures != 2 || h.LastError != "connect" {
		t.Fatalf("health %+v", h)
	}
	if err := d.Probe(context.Background()); err == nil {
		t.Fatal("probe of a closed port succeeded")
	}
	// The port comes back: Probe restores health.
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port reused meanwhile: %v", err)
	}
	defer ln.Close()
	if err := d.Probe(context.Background()); err != nil || !d.Health().Up {
		t.Fatalf("probe: %v, health %+v", err, d.Health())
	}

	// Overloaded upstream: 503 with a bounded Retry-After; other refusals 502.
	for _, tc := range []struct{ status, want int }{{503, 503}, {429, 503}, {401, 502}, {500, 502}} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Retry-After", "3600")
			w.WriteHeader(tc.status)
		}))
		d, _ := NewDialer(Options{URL: "ws" + strings.TrimPrefix(srv.URL, "http")})
		_, err := d.Dial(context.Background(), DialRequest{User: "u"})
		srv.Close()
		var de *DialError
		if !errors.As(err, &de) || de.Status != tc.want {
			t.Fatalf("upstream %d: %v", tc.status, err)
		}
		if tc.want == 503 && de.RetryAfter != time.Minute {
			t.Fatalf("retry after %v, want capped at 1m", de.RetryAfter)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	bad := []Options{
		{URL: "http://x"},
		{URL: "ws://user:pw@x/"},
		{URL: "ws://x", ClientCertFile: "c"},
		{URL: "ws://x", IdentityJWT: true},
		{URL: "ws://x", ForwardHeaders: []string{"Cookie"}},
		{URL: "ws://x", ForwardHeaders: []string{"x-wsgate-user"}},
		{URL: "ws://x", MaxMessageBytes: -1},
	}
	for _, o := range bad {
		if err := o.Validate(); err == nil {
			t.Errorf("%+v validated", o)
		}
	}
	ok := Options{URL: "wss://x:9/p?q=1", ForwardHeaders: []string{"X-Request-Id"}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestTargetURL(t *testing.T) {
	base, _ := url.Parse("ws://up/p?a=1")
	for _, c := range []struct {
		query string
		strip []string
		want  string
	}{
		{"b=2&token=x&access_token=y", nil, "ws://up/p?a=1&b=2"},
		{"ticket=x", nil, "ws://up/p?a=1"},
		// Any case (issue 13 item 9), the pop handshake values, and a route's own names.
		{"Token=x&TICKET=y&Access_Token=z&pop_Proof=p&b=2", nil, "ws://up/p?a=1&b=2"},
		{"api_key=s&API_KEY=t&b=2", []string{"api_key"}, "ws://up/p?a=1&b=2"},
	} {
		r := httptest.NewRequest("GET", "/gw?"+c.query, nil)
		if got := targetURL(base, r, c.strip); got != c.want {
			t.Errorf("%s (strip %v): %s, want %s", c.query, c.strip, got, c.want)
		}
	}
}

func TestCloseCodeMapping(t *testing.T) {
	for _, tc := range []struct {
		in   uint16
		byUs bool
		want uint16
	}{
		{1000, false, 1000}, {4403, false, 4403}, {3001, false, 3001}, {1001, false, 1012}, {1012, false, 1012},
		{1013, false, 1013}, {1011, false, 1011}, {1006, false, 1011}, {1002, false, 1011}, {1000, true, 1011},
	} {
		if got, _ := ClientCloseCode(tc.in, "r", tc.byUs); got != tc.want {
			t.Errorf("ClientCloseCode(%d, %v) = %d, want %d", tc.in, tc.byUs, got, tc.want)
		}
	}
	for _, tc := range []struct{ in, want uint16 }{{1000, 1000}, {4001, 4001}, {1009, 1009}, {1005, 1000}, {1006, 1001}, {1015, 1001}, {2000, 1001}} {
		if got, _ := UpstreamCloseCode(tc.in, "r"); got != tc.want {
			t.Errorf("UpstreamCloseCode(%d) = %d, want %d", tc.in, got, tc.want)
		}
	}
}
