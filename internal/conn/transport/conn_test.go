package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/tools/certgen"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/leak"
)

func dial(t *testing.T, url string, opts *DialOptions) (*Conn, *recordingHandler, chan struct{}) {
	t.Helper()
	h := newRecorder(false)
	c, resp, err := Dial(context.Background(), url, opts, h)
	if err != nil {
		t.Fatalf("dial: %v (resp %v)", err, resp)
	}
	done := make(chan struct{})
	go func() { defer close(done); c.Serve() }()
	t.Cleanup(func() { _ = c.Close(); <-done })
	return c, h, done
}

func TestDialUpgradeRoundTrip(t *testing.T) {
	ts := startServer(t, &Options{AllowBinary: true}, true, "")
	c, h, done := dial(t, ts.wsURL(), &DialOptions{Options: Options{AllowBinary: true}})
	sh := ts.handler(t)

	if err := c.WriteMessage(Text, []byte(`{"type":"ping"}`)); err != nil {
		t.Fatal(err)
	}
	if got := h.next(t, "message"); got.op != Text || string(got.data) != `{"type":"ping"}` {
		t.Fatalf("echo %v %q", got.op, got.data)
	}
	if err := c.WriteMessage(Binary, []byte{0, 1, 2}); err != nil {
		t.Fatal(err)
	}
	if got := h.next(t, "message"); got.op != Binary || len(got.data) != 3 {
		t.Fatalf("binary echo %v %v", got.op, got.data)
	}
	if err := c.WriteMessage(Text, []byte{0xff}); !errors.Is(err, ErrInvalidUTF8) {
		t.Fatalf("invalid utf-8 write: %v", err)
	}
	// Pings are answered automatically and reported.
	if err := c.WritePing([]byte("p1")); err != nil {
		t.Fatal(err)
	}
	if got := sh.next(t, "ping"); string(got.data) != "p1" {
		t.Fatalf("server ping %q", got.data)
	}
	if got := h.next(t, "pong"); string(got.data) != "p1" {
		t.Fatalf("client pong %q", got.data)
	}

	// Closing handshake started by the client: both sides see 1000 once.
	if err := c.WriteClose(StatusNormal, "bye"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after WriteClose")
	}
	h.closedWith(t, StatusNormal)
	ce := sh.next(t, "close").err
	if code, _ := CloseCode(ce); code != StatusNormal || !strings.Contains(ce.Error(), "bye") {
		t.Fatalf("server close %v", ce)
	}
	if err := c.WriteMessage(Text, []byte("late")); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
	time.Sleep(50 * time.Millisecond)
	if h.closes != 1 || sh.closes != 1 {
		t.Fatalf("OnClose calls client %d server %d", h.closes, sh.closes)
	}
}

func TestServerWriteCloseEndsServe(t *testing.T) {
	ts := startServer(t, nil, false, "")
	_, h, done := dial(t, ts.wsURL(), nil)
	sc := <-ts.conns
	sh := ts.handler(t)
	if err := sc.WriteClose(StatusTryAgainLater, "overloaded"); err != nil {
		t.Fatal(err)
	}
	ce := h.next(t, "close").err
	if code, _ := CloseCode(ce); code != StatusTryAgainLater {
		t.Fatalf("client saw %v", ce)
	}
	sh.closedWith(t, StatusTryAgainLater)
	<-done
}

// A peer that never answers our close frame is dropped after CloseTimeout.
func TestWriteCloseTimeout(t *testing.T) {
	ts := startServer(t, &Options{CloseTimeout: 100 * time.Millisecond}, false, "")
	rc := dialRaw(t, ts)
	sc := <-ts.conns
	sh := ts.handler(t)
	start := time.Now()
	if err := sc.WriteClose(StatusGoingAway, "shutdown"); err != nil {
		t.Fatal(err)
	}
	sh.closedWith(t, StatusGoingAway)
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("close took %v", d)
	}
	_ = rc
}

func TestAbruptCloseAndPeerVanish(t *testing.T) {
	ts := startServer(t, nil, false, "")
	c, h, done := dial(t, ts.wsURL(), nil)
	sh := ts.handler(t)
	_ = c.Close()
	<-done
	h.closedWith(t, StatusAbnormal)
	sh.closedWith(t, StatusAbnormal)
}

func TestReadDeadline(t *testing.T) {
	ts := startServer(t, nil, false, "")
	_, h, _ := dial(t, ts.wsURL(), nil)
	sc := <-ts.conns
	sh := ts.handler(t)
	_ = sc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	sh.closedWith(t, StatusAbnormal)
	h.next(t, "close")
}

type panicHandler struct{ *recordingHandler }

func (p panicHandler) OnMessage(*Conn, Opcode, []byte) { panic("boom") }

func TestHandlerPanicClosesWith1011(t *testing.T) {
	up, err := newTestUpgrader(&Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	sh := panicHandler{newRecorder(false)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, err := up.Upgrade(w, r, "", sh); err == nil {
			c.Serve()
		}
	}))
	defer srv.Close()
	c, h, _ := dial(t, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	_ = c.WriteMessage(Text, []byte("x"))
	h.closedWith(t, StatusInternalError)
	sh.closedWith(t, StatusInternalError)
}

func TestSubprotocol(t *testing.T) {
	ts := startServer(t, nil, false, "chat.v1")
	rc := dialRaw(t, ts, "Sec-WebSocket-Protocol: bearer.SECRET-TOKEN, chat.v1")
	if got := rc.resp.Header.Values("Sec-WebSocket-Protocol"); len(got) != 1 || got[0] != "chat.v1" {
		t.Fatalf("subprotocol header %q", got)
	}
	c, _, _ := dial(t, ts.wsURL(), &DialOptions{Subprotocols: []string{"chat.v1"}})
	if c.Subprotocol() != "chat.v1" {
		t.Fatalf("client subprotocol %q", c.Subprotocol())
	}
	// No subprotocol chosen: no header, even if the client offered some.
	ts2 := startServer(t, nil, false, "")
	rc2 := dialRaw(t, ts2, "Sec-WebSocket-Protocol: bearer.SECRET-TOKEN")
	if got := rc2.resp.Header.Values("Sec-WebSocket-Protocol"); len(got) != 0 {
		t.Fatalf("unexpected subprotocol header %q", got)
	}
}

func TestDialRefusedKeepsResponse(t *testing.T) {
	leak.Check(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "7")
		http.Error(w, "slow down", http.StatusTooManyRequests)
	}))
	defer srv.Close()
	_, resp, err := Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http")+"/?token=secret", nil, newRecorder(false))
	if !errors.Is(err, ErrUnexpectedStatus) || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("err %v resp %v", err, resp)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Fatalf("error leaks the query: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.Header.Get("Retry-After") != "7" || !strings.Contains(string(body), "slow down") {
		t.Fatalf("headers %v body %q", resp.Header, body)
	}
}

func TestDialContextCanceled(t *testing.T) {
	// A server that accepts TCP and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err = Dial(ctx, "ws://"+ln.Addr().String()+"/", nil, newRecorder(false))
	if err == nil || time.Since(start) > 3*time.Second {
		t.Fatalf("err %v after %v", err, time.Since(start))
	}
}

// selfSignedTLS is a server config with certgen's self-signed development
// certificate (valid for 127.0.0.1) and a pool that trusts it.
func selfSignedTLS(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	p, err := certgen.SelfSigned(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := p.TLS()
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.CertPEM)
	return &tls.Config{Certificates: []tls.Certificate{*cert}}, pool
}

func TestTLSRoundTrip(t *testing.T) {
	up, err := newTestUpgrader(nil)
	if err != nil {
		t.Fatal(err)
	}
	sh := newRecorder(true)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, err := up.Upgrade(w, r, "", sh); err == nil {
			c.Serve()
		}
	}))
	cfg, pool := selfSignedTLS(t)
	srv.TLS = cfg
	srv.StartTLS()
	defer srv.Close()
	c, h, done := dial(t, "wss"+strings.TrimPrefix(srv.URL, "https"), &DialOptions{TLSConfig: &tls.Config{RootCAs: pool}})
	if _, ok := c.NetConn().(*tls.Conn); !ok {
		t.Fatalf("NetConn is %T", c.NetConn())
	}
	if err := c.WriteMessage(Text, []byte("over tls")); err != nil {
		t.Fatal(err)
	}
	if got := h.next(t, "message"); string(got.data) != "over tls" {
		t.Fatalf("got %q", got.data)
	}
	_ = c.WriteClose(StatusNormal, "")
	<-done
	sh.closedWith(t, StatusNormal)
}

func TestNoGoroutineLeak(t *testing.T) {
	leak.Check(t)
	up, err := newTestUpgrader(nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, err := up.Upgrade(w, r, "", newRecorder(true)); err == nil {
			c.Serve()
		}
	}))
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	for i := range 20 {
		h := newRecorder(false)
		c, _, err := Dial(context.Background(), url, nil, h)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { defer close(done); c.Serve() }()
		_ = c.WriteMessage(Text, []byte("hello"))
		h.next(t, "message")
		if i%2 == 0 {
			_ = c.WriteClose(StatusNormal, "")
		} else {
			_ = c.Close()
		}
		<-done
	}
	srv.CloseClientConnections()
	srv.Close()
}

func TestUpgradeRejectsBadRequests(t *testing.T) {
	ts := startServer(t, nil, false, "")
	rc := dialRawStatus(t, ts, "Sec-WebSocket-Version: 8")
	if rc.resp.StatusCode != http.StatusUpgradeRequired || rc.resp.Header.Get("Sec-WebSocket-Version") != "13" {
		t.Fatalf("got %d %v", rc.resp.StatusCode, rc.resp.Header)
	}
}
