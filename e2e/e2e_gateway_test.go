package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/conn/transport"
	"github.com/wsgate/wsgate/internal/route/upstream"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/wait"
)

// identityKey is the routes' identity key (and the Node seed's JWT_SECRET).
const identityKey = "gateway-identity-key-0123456789-abcdefghij"

// --- an upstream echo server written with internal/conn/transport ---

type upClose struct {
	code   uint16
	reason string
}

type echoUpstream struct {
	URL       string
	srv       *httptest.Server
	up        *transport.Upgrader
	protocols []string // subprotocols it speaks
	refuse    atomic.Int32
	noEcho    bool

	mu      sync.Mutex
	headers []http.Header
	offered []string
	msgs    []string
	ops     []transport.Opcode
	closes  []upClose
	conns   []*transport.Conn
	closed  chan upClose
}

func newEchoUpstream(t testing.TB, protocols ...string) *echoUpstream {
	t.Helper()
	u := &echoUpstream{protocols: protocols, closed: make(chan upClose, 64)}
	up, err := transport.NewUpgrader(&transport.Options{MaxMessageBytes: 1 << 20, AllowBinary: true})
	if err != nil {
		t.Fatal(err)
	}
	u.up = up
	u.srv = httptest.NewServer(u)
	u.URL = "ws" + strings.TrimPrefix(u.srv.URL, "http") + "/upstream"
	t.Cleanup(func() {
		u.mu.Lock()
		for _, c := range u.conns {
			_ = c.Close()
		}
		u.mu.Unlock()
		u.srv.Close()
	})
	return u
}

func (u *echoUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if st := u.refuse.Load(); st != 0 {
		w.Header().Set("Retry-After", "7")
		http.Error(w, "busy", int(st))
		return
	}
	var offered []string
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for p := range strings.SplitSeq(v, ",") {
			offered = append(offered, strings.TrimSpace(p))
		}
	}
	chosen := ""
	for _, o := range offered {
		for _, p := range u.protocols {
			if o == p && chosen == "" {
				chosen = o
			}
		}
	}
	// Recorded before the 101: the client may look as soon as it is upgraded.
	u.mu.Lock()
	u.headers = append(u.headers, r.Header.Clone())
	u.offered = offered
	u.mu.Unlock()
	c, err := u.up.Upgrade(w, r, chosen, u)
	if err != nil {
		return
	}
	u.mu.Lock()
	u.conns = append(u.conns, c)
	u.mu.Unlock()
	c.Serve()
}

func (u *echoUpstream) OnMessage(c *transport.Conn, op transport.Opcode, data []byte) {
	u.mu.Lock()
	u.msgs = append(u.msgs, string(data))
	u.ops = append(u.ops, op)
	u.mu.Unlock()
	if !u.noEcho {
		_ = c.WriteMessage(op, data)
	}
}
func (u *echoUpstream) OnPing(*transport.Conn, []byte) {}
func (u *echoUpstream) OnPong(*transport.Conn, []byte) {}
func (u *echoUpstream) OnClose(_ *transport.Conn, err error) {
	var ce *transport.CloseError
	rec := upClose{code: transport.StatusAbnormal}
	if errors.As(err, &ce) {
		rec = upClose{ce.Code, ce.Reason}
	}
	u.mu.Lock()
	u.closes = append(u.closes, rec)
	u.mu.Unlock()
	u.closed <- rec
}

func (u *echoUpstream) received() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.msgs...)
}

func (u *echoUpstream) lastHeader() http.Header {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.headers) == 0 {
		return nil
	}
	return u.headers[len(u.headers)-1]
}

// lastConn returns the newest upstream connection, waiting (bounded) for it:
// the request is recorded before the 101 but the connection only after the
// upgrade returns, so a client that is already upgraded may look too early.
func (u *echoUpstream) lastConn(t *testing.T) *transport.Conn {
	t.Helper()
	var c *transport.Conn
	wait.For(t, "upstream connection recorded", 5*time.Second, func() bool {
		u.mu.Lock()
		defer u.mu.Unlock()
		if len(u.conns) > 0 {
			c = u.conns[len(u.conns)-1]
		}
		return c != nil
	})
	return c
}

func (u *echoUpstream) expectClose(t *testing.T, code uint16) upClose {
	t.Helper()
	select {
	case c := <-u.closed:
		if c.code != code {
			t.Fatalf("upstream saw close %d %q, want %d", c.code, c.reason, code)
		}
		return c
	case <-time.After(5 * time.Second):
		t.Fatalf("upstream saw no close (want %d)", code)
	}
	return upClose{}
}

// --- wsgate in front of it ---

func gatewayConfig(upURL, validation string) *config.Config {
	cfg := wsgatetest.Config()
	cfg.Routes = []config.Route{{Path: "/gw", Upstream: upURL, Validation: validation, IdentityKey: identityKey}}
	return cfg
}

func gwURL(s *wsgatetest.Server) string { return "wss://" + s.Addr + "/gw" }

func dialGW(t *testing.T, s *wsgatetest.Server, sub string, h http.Header) *wsgatetest.Client {
	t.Helper()
	if h == nil {
		h = http.Header{}
	}
	h.Set("Authorization", "Bearer "+s.Token(t, sub, map[string]any{"role": "member"}))
	c, resp, err := s.Dial(t, wsgatetest.DialOptions{URL: gwURL(s), Header: h})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial gateway: %v (status %d)", err, status)
	}
	return c
}

func nextRaw(t *testing.T, c *wsgatetest.Client, within time.Duration) string {
	t.Helper()
	select {
	case b := <-c.Msgs:
		return string(b)
	case <-c.Closed():
		t.Fatalf("closed (%d %q) while waiting for a message", c.Code, c.Reason)
	case <-time.After(within):
		t.Fatalf("no message within %s", within)
	}
	return ""
}

func TestGatewayRoundTripAndIdentity(t *testing.T) {
	up := newEchoUpstream(t)
	s := wsgatetest.Start(t, gatewayConfig(up.URL, "json"))
	h := http.Header{
		"X-Wsgate-User":      {"admin"},
		"X-Wsgate-Signature": {"v1=forged"},
		"X-Forwarded-For":    {"6.6.6.6"},
		"Cookie":             {"session=secret-cookie"},
		"User-Agent":         {"gateway-test"},
	}
	c := dialGW(t, s, "alice", h)
	msg := `{"type":"data","payload":{"n":1}}`
	c.Send(t, msg)
	if got := nextRaw(t, c, 5*time.Second); got != msg {
		t.Fatalf("echo %q, want %q (no welcome from wsgate on a gateway route)", got, msg)
	}
	hd := up.lastHeader()
	id, err := upstream.VerifyIdentity(hd, []byte(identityKey), time.Minute)
	if err != nil {
		t.Fatalf("VerifyIdentity: %v (headers %v)", err, hd)
	}
	if id.User != "alice" || id.ClientIP != "127.0.0.1" || id.ConnID == "" || id.Claims["role"] != "member" {
		t.Fatalf("identity %+v", id)
	}
	if got := hd.Values("X-Wsgate-User"); len(got) != 1 || got[0] != "alice" {
		t.Fatalf("X-Wsgate-User %v: a client-forged value got through", got)
	}
	if hd.Get("X-Forwarded-For") != "127.0.0.1" || hd.Get("Cookie") != "" || hd.Get("User-Agent") != "gateway-test" {
		t.Fatalf("forwarded headers wrong: %v", hd)
	}
	// The Authorization the upstream gets is wsgate's identity token, not the client's.
	tok, ok := strings.CutPrefix(hd.Get("Authorization"), "Bearer ")
	if !ok {
		t.Fatal("no identity token")
	}
	claims := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return []byte(identityKey), nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithIssuer("wsgate")); err != nil {
		t.Fatalf("identity token: %v", err)
	}
	if claims["sub"] != "alice" || claims["jti"] != id.ConnID {
		t.Fatalf("identity token claims %v", claims)
	}
	// A tampered header fails verification.
	hd.Set(upstream.HeaderUser, "admin")
	if _, err := upstream.VerifyIdentity(hd, []byte(identityKey), time.Minute); !errors.Is(err, upstream.ErrBadSignature) {
		t.Fatalf("tampered identity verified: %v", err)
	}
}

func TestGatewayRejectedMessagesNeverReachUpstream(t *testing.T) {
	up := newEchoUpstream(t)
	cfg := gatewayConfig(up.URL, "json")
	d := cfg.Rate.Tiers["default"]
	d.Messages = config.RateLimit{Rate: 0.5, Burst: 4}
	d.UserMessages, d.IPMessages = config.RateLimit{}, config.RateLimit{}
	cfg.Rate.Tiers["default"] = d
	s := wsgatetest.Start(t, cfg)

	c := dialGW(t, s, "alice", nil)
	c.Send(t, `{"type":"data","payload":1}`) // 1: passes
	nextRaw(t, c, 5*time.Second)
	c.Send(t, `{"type":"data",`) // malformed: error reply (charged: invalid input is no way around the limit)
	expectError(t, c, "invalid_json")
	c.Send(t, `{"type":"data","payload":2,"extra":true}`) // schema violation (charged)
	expectError(t, c, "invalid_message")
	c.Send(t, `{"type":"data","payload":3}`) // 3: passes, budget now spent
	nextRaw(t, c, 5*time.Second)
	c.Send(t, `{"type":"data","payload":4}`) // rate limited
	expectError(t, c, "rate_limited")
	c.Send(t, `{"type":"data","payload":"`+strings.Repeat("x", 9000)+`"}`) // oversize: 1009
	c.ExpectClose(t, transport.StatusMessageTooBig, 5*time.Second)
	up.expectClose(t, transport.StatusMessageTooBig) // the client's close code travels upstream
	got := up.received()
	if len(got) != 2 || got[0] != `{"type":"data","payload":1}` || got[1] != `{"type":"data","payload":3}` {
		t.Fatalf("upstream received %q; only the two accepted messages may arrive", got)
	}
}

func TestGatewayRawMode(t *testing.T) {
	up := newEchoUpstream(t)
	cfg := gatewayConfig(up.URL, "raw")
	cfg.Routes[0].AllowBinary = true
	d := cfg.Rate.Tiers["default"]
	d.Messages = config.RateLimit{Rate: 0.5, Burst: 3}
	cfg.Rate.Tiers["default"] = d
	s := wsgatetest.Start(t, cfg)

	c := dialGW(t, s, "bob", nil)
	c.Send(t, "not json at all")
	if got := nextRaw(t, c, 5*time.Second); got != "not json at all" {
		t.Fatalf("echo %q", got)
	}
	if err := c.Conn.WriteMessage(transport.Binary, []byte{0, 1, 2, 0xff}); err != nil {
		t.Fatal(err)
	}
	if got := nextRaw(t, c, 5*time.Second); got != "\x00\x01\x02\xff" {
		t.Fatalf("binary echo %q", got)
	}
	c.Send(t, "third")
	nextRaw(t, c, 5*time.Second)
	c.Send(t, "fourth: over the budget")
	c.ExpectClose(t, transport.StatusPolicyViolation, 5*time.Second)
	up.expectClose(t, transport.StatusPolicyViolation)
	if got := up.received(); len(got) != 3 {
		t.Fatalf("upstream received %q, want the 3 messages within budget", got)
	}

	// Oversize is the transport's: closed at the frame header, never forwarded.
	c2 := dialGW(t, s, "carol", nil)
	c2.Send(t, strings.Repeat("y", 9000))
	c2.ExpectClose(t, transport.StatusMessageTooBig, 5*time.Second)
	up.expectClose(t, transport.StatusMessageTooBig)
	if got := up.received(); len(got) != 3 {
		t.Fatalf("upstream received %d messages, want 3", len(got))
	}
}

func TestGatewayCloseCodes(t *testing.T) {
	up := newEchoUpstream(t)
	cfg := gatewayConfig(up.URL, "json")
	s := wsgatetest.Start(t, cfg)

	// Client → upstream: same code and reason.
	c := dialGW(t, s, "alice", nil)
	if err := c.Conn.WriteClose(4000, "bye now"); err != nil {
		t.Fatal(err)
	}
	if got := up.expectClose(t, 4000); got.reason != "bye now" {
		t.Fatalf("upstream reason %q", got.reason)
	}
	c.ExpectClose(t, 4000, 5*time.Second)

	cases := []struct {
		name       string
		act        func(*transport.Conn)
		clientCode uint16
		reason     string
	}{
		{"restart", func(u *transport.Conn) { _ = u.WriteClose(transport.StatusServiceRestart, "deploy") }, transport.StatusServiceRestart, upstream.ReasonUpstreamRestart},
		{"going away", func(u *transport.Conn) { _ = u.WriteClose(transport.StatusGoingAway, "") }, transport.StatusServiceRestart, upstream.ReasonUpstreamRestart},
		{"app code", func(u *transport.Conn) { _ = u.WriteClose(4403, "forbidden") }, 4403, "forbidden"},
		{"normal", func(u *transport.Conn) { _ = u.WriteClose(transport.StatusNormal, "done") }, transport.StatusNormal, "done"},
		{"dropped", func(u *transport.Conn) { _ = u.Close() }, transport.StatusInternalError, upstream.ReasonUpstreamGone},
		{"internal", func(u *transport.Conn) { _ = u.WriteClose(transport.StatusInternalError, "db down at 10.0.0.5") }, transport.StatusInternalError, upstream.ReasonUpstreamGone},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialGW(t, s, "alice", nil)
			c.Send(t, `{"type":"data","payload":0}`)
			nextRaw(t, c, 5*time.Second)
			tc.act(up.lastConn(t))
			if got := c.ExpectClose(t, tc.clientCode, 5*time.Second); got != tc.reason {
				t.Fatalf("client reason %q, want %q", got, tc.reason)
			}
			select { // the upstream side's own record of that leg
			case <-up.closed:
			case <-time.After(5 * time.Second):
				t.Fatal("upstream leg did not end")
			}
		})
	}
	wait.For(t, "connections and quota back to 0", 5*time.Second, func() bool {
		return s.Connections() == 0 && s.QuotaInUse(context.Background()) == 0
	})
}

func TestGatewayTokenExpiryAndShutdown(t *testing.T) {
	up := newEchoUpstream(t)
	cfg := gatewayConfig(up.URL, "json")
	s := wsgatetest.Start(t, cfg)
	tok := s.TokenTTL(t, "erin", 1500*time.Millisecond, nil)
	c, _, err := s.Dial(t, wsgatetest.DialOptions{URL: gwURL(s), Header: bearer(tok)})
	if err != nil {
		t.Fatal(err)
	}
	c.ExpectClose(t, 4001, 10*time.Second)
	up.expectClose(t, 4001)

	c2 := dialGW(t, s, "frank", nil)
	c2.Send(t, `{"type":"data","payload":0}`)
	nextRaw(t, c2, 5*time.Second)
	_ = s.Stop(t)
	c2.ExpectClose(t, transport.StatusGoingAway, 5*time.Second)
	if got := up.expectClose(t, transport.StatusGoingAway); got.reason != "server shutting down" {
		t.Fatalf("upstream reason %q", got.reason)
	}
}

func TestGatewayUpstreamUnavailable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "ws://" + ln.Addr().String() + "/x"
	_ = ln.Close()
	up := newEchoUpstream(t)
	cfg := gatewayConfig(dead, "json")
	cfg.Routes = append(cfg.Routes, config.Route{Path: "/busy", Upstream: up.URL, IdentityKey: identityKey})
	s := wsgatetest.Start(t, cfg)
	tok := s.Token(t, "alice", nil)
	for range 3 {
		_, resp, err := s.Dial(t, wsgatetest.DialOptions{URL: gwURL(s), Header: bearer(tok)})
		if err == nil || resp == nil || resp.StatusCode != http.StatusBadGateway {
			t.Fatalf("dial to a dead upstream: err %v resp %v, want HTTP 502 and no 101", err, resp)
		}
	}
	if n := s.QuotaInUse(context.Background()); n != 0 {
		t.Fatalf("quota in use %d after failed dials: leases leaked", n)
	}
	resp, err := http.Get(s.AdminURL + "/readyz") // details are on the admin listener only
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var ready struct {
		Status    string
		Upstreams map[string]struct {
			Up        bool   `json:"up"`
			LastError string `json:"last_error"`
		}
	}
	if err := json.Unmarshal(body, &ready); err != nil {
		t.Fatal(err)
	}
	if ready.Status != "degraded" || ready.Upstreams["/gw"].Up || ready.Upstreams["/gw"].LastError != "connect" || !ready.Upstreams["/busy"].Up {
		t.Fatalf("readyz %s", body)
	}
	if !s.Logs.Contains(`"reason":"upstream_connect"`, time.Second) {
		t.Fatal("dial failure not logged")
	}

	// An upstream that says it is overloaded: 503 with its Retry-After.
	up.refuse.Store(http.StatusServiceUnavailable)
	_, resp, err = s.Dial(t, wsgatetest.DialOptions{URL: "wss://" + s.Addr + "/busy", Header: bearer(tok)})
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "7" {
		t.Fatalf("overloaded upstream: err %v resp %+v, want 503 Retry-After 7", err, resp)
	}
}

func TestGatewaySubprotocolEndToEnd(t *testing.T) {
	up := newEchoUpstream(t, "v2.chat", "graphql-ws")
	cfg := gatewayConfig(up.URL, "raw")
	s := wsgatetest.Start(t, cfg)
	tok := s.Token(t, "alice", nil)
	c, _, err := s.Dial(t, wsgatetest.DialOptions{URL: gwURL(s), Subprotocols: []string{"bearer", tok, "v1.chat", "v2.chat"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Conn.Subprotocol(); got != "v2.chat" {
		t.Fatalf("client got subprotocol %q, want the upstream's choice v2.chat", got)
	}
	up.mu.Lock()
	offered := strings.Join(up.offered, ",")
	up.mu.Unlock()
	if offered != "v1.chat,v2.chat" {
		t.Fatalf("upstream was offered %q: the token must not be forwarded", offered)
	}
	// A route allow-list narrows what is offered.
	cfg2 := gatewayConfig(up.URL, "raw")
	cfg2.Routes[0].Subprotocols = []string{"graphql-ws"}
	s2 := wsgatetest.Start(t, cfg2)
	c2, _, err := s2.Dial(t, wsgatetest.DialOptions{URL: gwURL(s2), Subprotocols: []string{"bearer", s2.Token(t, "a", nil), "v2.chat", "graphql-ws"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := c2.Conn.Subprotocol(); got != "graphql-ws" {
		t.Fatalf("subprotocol %q, want graphql-ws", got)
	}
	// Only the marker offered: the upstream chooses nothing, the client gets the marker back.
	c3, _, err := s2.Dial(t, wsgatetest.DialOptions{URL: gwURL(s2), Subprotocols: []string{"bearer", s2.Token(t, "a", nil)}})
	if err != nil {
		t.Fatal(err)
	}
	if got := c3.Conn.Subprotocol(); got != "bearer" {
		t.Fatalf("subprotocol %q, want the bearer marker", got)
	}
}

// gateHandler is a client that stops reading while its gate is closed.
type gateHandler struct {
	gate chan struct{}
	n    atomic.Int64
	bad  atomic.Int64
}

func (g *gateHandler) OnMessage(_ *transport.Conn, _ transport.Opcode, data []byte) {
	<-g.gate
	if len(data) != 32<<10 {
		g.bad.Add(1)
	}
	g.n.Add(1)
}
func (g *gateHandler) OnPing(*transport.Conn, []byte) {}
func (g *gateHandler) OnPong(*transport.Conn, []byte) {}
func (g *gateHandler) OnClose(*transport.Conn, error) {}

func TestGatewayBackpressure(t *testing.T) {
	up := newEchoUpstream(t)
	cfg := gatewayConfig(up.URL, "raw")
	s := wsgatetest.Start(t, cfg)
	g := &gateHandler{gate: make(chan struct{})}
	do := &transport.DialOptions{Header: bearer(s.Token(t, "slow", nil)), TLSConfig: s.TLSConfig}
	do.Options.MaxMessageBytes = 1 << 20
	conn, _, err := transport.Dial(context.Background(), gwURL(s), do, g)
	if err != nil {
		t.Fatal(err)
	}
	go conn.Serve()
	t.Cleanup(func() { _ = conn.Close() })
	// The header is recorded before the 101, the conn after it: wait for the conn.
	wait.For(t, "upstream leg open", 5*time.Second, func() bool { up.mu.Lock(); defer up.mu.Unlock(); return len(up.conns) > 0 })

	const total = 800 // 25 MiB: far more than socket buffers and the outbox hold
	var sent atomic.Int64
	done := make(chan struct{})
	uc := up.lastConn(t)
	go func() {
		defer close(done)
		msg := []byte(strings.Repeat("z", 32<<10))
		for range total {
			if uc.WriteMessage(transport.Text, msg) != nil {
				return
			}
			sent.Add(1)
		}
	}()
	time.Sleep(1500 * time.Millisecond)
	stalled := sent.Load()
	if stalled >= total {
		t.Fatal("the upstream wrote everything while the client read nothing: something buffers without bound")
	}
	if s.Connections() != 1 {
		t.Fatal("the slow client was dropped; backpressure should hold the upstream instead")
	}
	close(g.gate)
	<-done
	wait.For(t, "all messages delivered once the client reads", 20*time.Second, func() bool { return g.n.Load() == total })
	if g.bad.Load() != 0 {
		t.Fatal("corrupted messages")
	}
	t.Logf("upstream stalled after %d of %d messages (%d MiB) while the client did not read", stalled, total, stalled*32>>10)
}

// --- in front of the guide's Node server (../shared/peers/node-seed) ---

var nodeSeed struct {
	once sync.Once
	dir  string // directory holding node_modules
	err  error
}

const nodeSeedSrc = "../../shared/peers/node-seed"

// nodeSeedModules installs the seed's dependencies once, cached under the
// system temp directory by the hash of its package files.
func nodeSeedModules(t *testing.T) string {
	t.Helper()
	for _, bin := range []string{"node", "npm"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not available: skipping the Node seed tests", bin)
		}
	}
	if _, err := os.Stat(filepath.Join(nodeSeedSrc, "server.js")); err != nil {
		t.Skipf("node seed not found at %s: %v", nodeSeedSrc, err)
	}
	nodeSeed.once.Do(func() {
		h := sha256.New()
		for _, f := range []string{"package.json", "package-lock.json"} {
			b, err := os.ReadFile(filepath.Join(nodeSeedSrc, f))
			if err != nil {
				nodeSeed.err = err
				return
			}
			h.Write(b)
		}
		dir := filepath.Join(os.TempDir(), "wsgate-node-seed-"+hex.EncodeToString(h.Sum(nil))[:16])
		if _, err := os.Stat(filepath.Join(dir, "node_modules", "ws")); err == nil {
			nodeSeed.dir = dir
			return
		}
		tmp, err := os.MkdirTemp(os.TempDir(), "wsgate-node-seed-install-")
		if err != nil {
			nodeSeed.err = err
			return
		}
		for _, f := range []string{"package.json", "package-lock.json"} {
			b, _ := os.ReadFile(filepath.Join(nodeSeedSrc, f))
			if err := os.WriteFile(filepath.Join(tmp, f), b, 0o644); err != nil {
				nodeSeed.err = err
				return
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "npm", "install", "--no-audit", "--no-fund")
		cmd.Dir = tmp
		if out, err := cmd.CombinedOutput(); err != nil {
			_ = os.RemoveAll(tmp)
			nodeSeed.err = fmt.Errorf("npm install: %v: %s", err, out)
			return
		}
		if err := os.Rename(tmp, dir); err != nil { // another process won the race: use its copy
			_ = os.RemoveAll(tmp)
		}
		nodeSeed.dir = dir
	})
	if nodeSeed.err != nil {
		t.Skipf("node seed dependencies unavailable: %v", nodeSeed.err)
	}
	return nodeSeed.dir
}

// startNodeSeed runs an unmodified copy of the seed server; it returns its
// host:port and its console output.
func startNodeSeed(t *testing.T, env ...string) (string, *wsgatetest.LogBuffer) {
	t.Helper()
	mods := nodeSeedModules(t)
	dir := t.TempDir()
	for _, f := range []string{"server.js", "package.json"} {
		b, err := os.ReadFile(filepath.Join(nodeSeedSrc, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(mods, "node_modules"), filepath.Join(dir, "node_modules")); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	logs := &wsgatetest.LogBuffer{}
	cmd := exec.Command("node", "server.js")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PORT="+strconv.Itoa(port), "JWT_SECRET="+identityKey)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot start node: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	if !logs.Contains("listening on port", 45*time.Second) {
		t.Fatalf("node seed did not start: %s", logs.String())
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), logs
}

// nodeToken is a token the Node seed accepts (signed with its JWT_SECRET).
func nodeToken(t *testing.T, sub string) string {
	return hsToken(t, []byte(identityKey), jwt.MapClaims{"sub": sub, "exp": time.Now().Add(time.Hour).Unix()})
}

// countingProxy forwards TCP to target and counts the connections it accepted:
// it shows what reaches the upstream at all.
func countingProxy(t *testing.T, target string) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	var mu sync.Mutex
	var conns []net.Conn
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			b, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, b)
			mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); _, _ = io.Copy(b, c); _ = b.Close() }()
			go func() { defer wg.Done(); _, _ = io.Copy(c, b); _ = c.Close() }()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String(), &n
}

func nodeGateway(t *testing.T, nodeAddr string, edit func(*config.Config)) *wsgatetest.Server {
	t.Helper()
	cfg := gatewayConfig("ws://"+nodeAddr+"/", "json")
	if edit != nil {
		edit(cfg)
	}
	return wsgatetest.Start(t, cfg)
}

func dialStatus(t *testing.T, s *wsgatetest.Server, o wsgatetest.DialOptions) (int, *wsgatetest.Client) {
	t.Helper()
	c, resp, err := s.Dial(t, o)
	if err == nil {
		return http.StatusSwitchingProtocols, c
	}
	if resp == nil {
		t.Fatalf("dial %s: %v", o.URL, err)
	}
	return resp.StatusCode, nil
}

func TestNodeSeedThroughGateway(t *testing.T) {
	t.Run("round trip with the identity token", func(t *testing.T) {
		node, logs := startNodeSeed(t)
		s := nodeGateway(t, node, nil)
		a, b := dialGW(t, s, "alice", nil), dialGW(t, s, "bob", nil)
		if m := a.Expect(t, "welcome", 5*time.Second); m["message"] != "Connected successfully" {
			t.Fatalf("welcome %v", m)
		}
		b.Expect(t, "welcome", 5*time.Second)
		a.Send(t, `{"type":"chat","text":"hello bob"}`)
		m := b.Expect(t, "broadcast", 5*time.Second)
		if m["from"] != "alice" {
			t.Fatalf("broadcast %v: the Node server must see the user wsgate verified", m)
		}
		if !logs.Contains("User alice connected from 127.0.0.1", time.Second) {
			t.Fatalf("node log: %s", logs.String())
		}
	})

	t.Run("cross-site origin", func(t *testing.T) {
		node, _ := startNodeSeed(t)
		s := nodeGateway(t, node, nil)
		evil := http.Header{"Origin": {"https://evil.example"}}
		h := evil.Clone()
		h.Set("Authorization", "Bearer "+nodeToken(t, "victim"))
		if st, c := dialStatus(t, s, wsgatetest.DialOptions{URL: "ws://" + node + "/", Header: h}); st != http.StatusSwitchingProtocols {
			t.Fatalf("direct: status %d; expected the weakness (no origin check)", st)
		} else {
			c.Expect(t, "welcome", 5*time.Second)
		}
		h = evil.Clone()
		h.Set("Authorization", "Bearer "+s.Token(t, "victim", nil))
		if st, _ := dialStatus(t, s, wsgatetest.DialOptions{URL: gwURL(s), Header: h}); st != http.StatusForbidden {
			t.Fatalf("through wsgate: status %d, want 403", st)
		}
	})

	t.Run("oversize message", func(t *testing.T) {
		node, logs := startNodeSeed(t)
		s := nodeGateway(t, node, nil)
		big := `{"type":"chat","text":"` + strings.Repeat("A", 1<<20) + `"}`
		_, c := dialStatus(t, s, wsgatetest.DialOptions{URL: "ws://" + node + "/", Header: bearer(nodeToken(t, "mallory"))})
		c.Expect(t, "welcome", 5*time.Second)
		c.Send(t, big)
		c.ExpectClose(t, transport.StatusMessageTooBig, 10*time.Second)
		if !logs.Contains(fmt.Sprintf("Message too large from mallory: %d bytes", len(big)), 5*time.Second) {
			t.Fatalf("direct: expected the weakness (whole 1 MiB read before the size check); log: %s", logs.String())
		}
		c2 := dialGW(t, s, "mallory2", nil)
		c2.Expect(t, "welcome", 5*time.Second)
		// wsgate refuses at the frame header and closes without reading the
		// payload, so the client's write may itself fail: that is the point.
		// The client sees 1009, or a reset when the kernel discards the unread
		// payload before the close frame is read.
		_ = c2.Conn.WriteMessage(transport.Text, []byte(big))
		select {
		case <-c2.Closed():
		case <-time.After(5 * time.Second):
			t.Fatal("not closed")
		}
		if !logs.Contains("User mallory2 disconnected: 1009", 5*time.Second) {
			t.Fatalf("the upstream leg did not end with the client's 1009; log: %s", logs.String())
		}
		if strings.Contains(logs.String(), "Message too large from mallory2") {
			t.Fatal("through wsgate the oversize message reached the Node server")
		}
	})

	t.Run("spoofed X-Forwarded-For", func(t *testing.T) {
		node, logs := startNodeSeed(t, "MAX_CONNECTIONS_PER_IP=2")
		probe := wsgatetest.Start(t, nil) // only its Dial helper is used for direct dials
		direct := func(xff string) int {
			h := bearer(nodeToken(t, "mallory"))
			if xff != "" {
				h.Set("X-Forwarded-For", xff)
			}
			st, _ := dialStatus(t, probe, wsgatetest.DialOptions{URL: "ws://" + node + "/", Header: h})
			return st
		}
		for i := range 2 {
			if st := direct(""); st != http.StatusSwitchingProtocols {
				t.Fatalf("direct %d: %d", i, st)
			}
		}
		if st := direct(""); st != http.StatusTooManyRequests {
			t.Fatalf("direct third: %d, want the seed's own 429", st)
		}
		for i := range 5 {
			if st := direct(fmt.Sprintf("10.0.0.%d", i+1)); st != http.StatusSwitchingProtocols {
				t.Fatalf("direct with spoofed XFF: %d; expected the weakness (limit bypassed)", st)
			}
		}
		if !logs.Contains("connected from 10.0.0.5", time.Second) {
			t.Fatal("direct: the seed did not record the spoofed address")
		}

		node2, logs2 := startNodeSeed(t, "MAX_CONNECTIONS_PER_IP=1000")
		s := nodeGateway(t, node2, func(c *config.Config) { c.Limits.Connections.PerIP = 2 })
		tok := s.Token(t, "mallory", nil)
		for i := range 3 {
			h := bearer(tok)
			h.Set("X-Forwarded-For", fmt.Sprintf("10.9.9.%d", i+1))
			st, _ := dialStatus(t, s, wsgatetest.DialOptions{URL: gwURL(s), Header: h})
			want := http.StatusSwitchingProtocols
			if i == 2 {
				want = http.StatusTooManyRequests
			}
			if st != want {
				t.Fatalf("through wsgate, connection %d: %d, want %d", i+1, st, want)
			}
		}
		if !logs2.Contains("connected from 127.0.0.1", 5*time.Second) || strings.Contains(logs2.String(), "10.9.9.") {
			t.Fatalf("the seed must see wsgate's verified address, never the client's claim; log: %s", logs2.String())
		}
	})

	t.Run("unauthenticated flood", func(t *testing.T) {
		node, _ := startNodeSeed(t)
		proxy, reached := countingProxy(t, node)
		s := nodeGateway(t, proxy, func(c *config.Config) { c.Limits.HandshakeRate = config.RateLimit{Rate: 1, Burst: 10} })
		const n = 150
		counts := map[int]int{}
		for range n {
			st, _ := dialStatus(t, s, wsgatetest.DialOptions{URL: "ws://" + proxy + "/"})
			counts[st]++
		}
		if counts[http.StatusUnauthorized] != n || reached.Load() != n {
			t.Fatalf("direct: %v; expected the weakness (every attempt answered, none limited)", counts)
		}
		reached.Store(0)
		counts = map[int]int{}
		for range n {
			st, _ := dialStatus(t, s, wsgatetest.DialOptions{URL: gwURL(s)})
			counts[st]++
		}
		if counts[http.StatusTooManyRequests] < n/2 || counts[http.StatusUnauthorized]+counts[http.StatusTooManyRequests] != n {
			t.Fatalf("through wsgate: %v, want 401 for the burst, then 429", counts)
		}
		if reached.Load() != 0 {
			t.Fatalf("through wsgate %d unauthenticated attempts reached the Node server", reached.Load())
		}
	})
}

// --- benchmark: direct to a bare upstream vs through wsgate ---

type rtClient struct{ got chan struct{} }

func (c *rtClient) OnMessage(*transport.Conn, transport.Opcode, []byte) { c.got <- struct{}{} }
func (c *rtClient) OnPing(*transport.Conn, []byte)                      {}
func (c *rtClient) OnPong(*transport.Conn, []byte)                      {}
func (c *rtClient) OnClose(*transport.Conn, error)                      { close(c.got) }

// BenchmarkGatewayRoundTrip measures one client's sequential round trips (send,
// wait for the echo) to a bare echo upstream, directly and through wsgate in raw
// and json mode, all over loopback plaintext in this process. cpu-us/rt is the
// whole process's CPU (client, upstream and wsgate): the difference to "direct"
// is what wsgate costs per round trip (one message each way).
func BenchmarkGatewayRoundTrip(b *testing.B) {
	msg := []byte(`{"type":"data","payload":{"n":12345,"s":"hello world"}}`)
	for _, mode := range []string{"direct", "raw", "json"} {
		b.Run(mode, func(b *testing.B) {
			up := newEchoUpstream(b)
			target := up.URL
			h := http.Header{}
			if mode != "direct" {
				cfg := gatewayConfig(up.URL, mode)
				cfg.InsecurePlaintext = true
				cfg.Log.Level = "warn"
				big := config.RateLimit{Rate: 1e9, Burst: 1e9}
				cfg.Rate.Tiers = map[string]config.Tier{"default": {Messages: big, Bytes: big, UserMessages: big, UserBytes: big, IPMessages: big, IPBytes: big}}
				s := wsgatetest.Start(b, cfg)
				target = "ws://" + s.Addr + "/gw"
				h = bearer(s.Token(b, "bench", nil))
			}
			cl := &rtClient{got: make(chan struct{}, 1)}
			conn, _, err := transport.Dial(context.Background(), target, &transport.DialOptions{Header: h}, cl)
			if err != nil {
				b.Fatal(err)
			}
			go conn.Serve()
			defer conn.Close()
			for range 100 { // warm up
				_ = conn.WriteMessage(transport.Text, msg)
				<-cl.got
			}
			b.ReportAllocs()
			b.ResetTimer()
			cpu0, t0 := processCPU(), time.Now()
			for range b.N {
				if err := conn.WriteMessage(transport.Text, msg); err != nil {
					b.Fatal(err)
				}
				if _, ok := <-cl.got; !ok {
					b.Fatal("closed")
				}
			}
			el, cpu := time.Since(t0), processCPU()-cpu0
			b.StopTimer()
			b.ReportMetric(float64(b.N)/el.Seconds(), "rt/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/rt")
		})
	}
}

func TestGatewayFollowsReloadedKeys(t *testing.T) {
	up := newEchoUpstream(t)
	cfg := gatewayConfig(up.URL, "json")
	s := wsgatetest.Start(t, cfg)
	secret := []byte("reloaded-secret-reloaded-secret-0123456789")
	tok := hsToken(t, secret, jwt.MapClaims{"sub": "gina", "exp": time.Now().Add(time.Hour).Unix()})
	if st, _ := dialStatus(t, s, wsgatetest.DialOptions{URL: gwURL(s), Header: bearer(tok)}); st != http.StatusUnauthorized {
		t.Fatalf("unknown key: %d", st)
	}
	next := gatewayConfig(up.URL, "json")
	next.TLS = cfg.TLS
	next.Auth.Keys = append(next.Auth.Keys, config.Key{ID: "k2", Algorithms: []string{"HS256"}, Secret: string(secret)})
	if err := s.Reload(next); err != nil {
		t.Fatal(err)
	}
	if st, _ := dialStatus(t, s, wsgatetest.DialOptions{URL: gwURL(s), Header: bearer(tok)}); st != http.StatusSwitchingProtocols {
		t.Fatalf("after reload the gateway route refused the new key: %d", st)
	}
}

// Gateway routes are part of the compiled runtime: a reload adds a route and
// moves one to another upstream, connections already open keep their
// upstream, and a file with a route that cannot be built is refused whole.
func TestGatewayRoutesReload(t *testing.T) {
	upA, upB := newEchoUpstream(t), newEchoUpstream(t)
	cfg := gatewayConfig(upA.URL, "json")
	s := wsgatetest.Start(t, cfg)
	old := dialGW(t, s, "olga", nil)
	old.Send(t, `{"type":"data","payload":"before"}`)
	if got := nextRaw(t, old, 5*time.Second); !strings.Contains(got, "before") {
		t.Fatalf("echo %q", got)
	}
	if st, _ := dialStatus(t, s, wsgatetest.DialOptions{URL: "wss://" + s.Addr + "/gw2", Header: bearer(s.Token(t, "x", nil))}); st == http.StatusSwitchingProtocols {
		t.Fatal("/gw2 served before it was configured")
	}

	next := gatewayConfig(upB.URL, "json")
	next.TLS = cfg.TLS
	next.Routes = append(next.Routes, config.Route{Path: "/gw2", Upstream: upA.URL, Validation: "raw", IdentityKey: identityKey})
	if err := s.Reload(next); err != nil {
		t.Fatal(err)
	}
	// The open connection still reaches upstream A.
	old.Send(t, `{"type":"data","payload":"after"}`)
	if got := nextRaw(t, old, 5*time.Second); !strings.Contains(got, "after") {
		t.Fatalf("echo after reload %q", got)
	}
	if !slices.Contains(upA.received(), `{"type":"data","payload":"after"}`) {
		t.Fatalf("the open connection's message did not reach its upstream: A got %v", upA.received())
	}
	// A new connection to /gw reaches upstream B.
	c := dialGW(t, s, "nina", nil)
	c.Send(t, `{"type":"data","payload":"moved"}`)
	if got := nextRaw(t, c, 5*time.Second); !strings.Contains(got, "moved") {
		t.Fatalf("echo %q", got)
	}
	if !slices.Contains(upB.received(), `{"type":"data","payload":"moved"}`) || slices.Contains(upA.received(), `{"type":"data","payload":"moved"}`) {
		t.Fatalf("/gw did not move to upstream B: A %v, B %v", upA.received(), upB.received())
	}
	// The added raw route serves.
	h := bearer(s.Token(t, "rita", nil))
	r, _, err := s.Dial(t, wsgatetest.DialOptions{URL: "wss://" + s.Addr + "/gw2", Header: h})
	if err != nil {
		t.Fatalf("dial the added route: %v", err)
	}
	r.Send(t, "not json at all")
	if got := nextRaw(t, r, 5*time.Second); got != "not json at all" {
		t.Fatalf("raw echo %q", got)
	}

	// A route that cannot be built (a raw route cannot check signatures)
	// refuses the whole file: /gw2 and the rest stay as they were.
	bad := gatewayConfig(upA.URL, "json")
	bad.TLS = cfg.TLS
	bad.Routes = append(bad.Routes, config.Route{Path: "/gw3", Upstream: upA.URL, Validation: "raw", Integrity: "hmac", IdentityKey: identityKey})
	if err := s.Reload(bad); err == nil {
		t.Fatal("a file with a route that cannot be built was accepted")
	}
	r2, _, err := s.Dial(t, wsgatetest.DialOptions{URL: "wss://" + s.Addr + "/gw2", Header: h})
	if err != nil {
		t.Fatalf("after a refused reload /gw2 is gone: %v", err)
	}
	_ = r2.Conn.Close()
	c2 := dialGW(t, s, "nina", nil)
	c2.Send(t, `{"type":"data","payload":"still B"}`)
	nextRaw(t, c2, 5*time.Second)
	if !slices.Contains(upB.received(), `{"type":"data","payload":"still B"}`) {
		t.Fatalf("after a refused reload /gw left upstream B: B %v", upB.received())
	}
}
