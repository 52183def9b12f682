package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/conn/transport"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/wait"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/wsframe"
)

// plainGateway starts wsgate in plaintext in front of upURL with generous
// rate limits.
func plainGateway(t testing.TB, upURL, validation string, allowBinary bool) *wsgatetest.Server {
	t.Helper()
	cfg := gatewayConfig(upURL, validation)
	cfg.InsecurePlaintext = true
	cfg.Routes[0].AllowBinary = allowBinary
	for name, tier := range cfg.Rate.Tiers {
		tier.Messages.Rate, tier.Messages.Burst = 1e6, 1e6
		tier.Bytes.Rate, tier.Bytes.Burst = 1e9, 1e9
		cfg.Rate.Tiers[name] = tier
	}
	return wsgatetest.Start(t, cfg)
}

// Binary stays binary on every route: a binary frame carrying JSON on a json
// route with allow_binary reaches the upstream as binary, and the upstream's
// binary echo reaches the client as binary, in order with text around it.
func TestGatewayKeepsOpcode(t *testing.T) {
	for _, validation := range []string{"json", "raw"} {
		t.Run(validation, func(t *testing.T) {
			up := newEchoUpstream(t)
			s := plainGateway(t, up.URL, validation, true)
			c := wsgatetest.DialRaw(t, s.Addr, "/gw", "Authorization: Bearer "+s.Token(t, "alice", nil))
			msgs := []struct {
				op   byte
				data string
			}{
				{0x2, `{"type":"data","payload":1}`},
				{0x1, `{"type":"data","payload":2}`},
				{0x2, `{"type":"data","payload":3}`},
			}
			for _, m := range msgs {
				c.Send(wsframe.Client(0x80|m.op, []byte(m.data)))
			}
			for i, m := range msgs {
				b0, p, err := c.ReadFrame()
				if err != nil {
					t.Fatalf("echo %d: %v", i, err)
				}
				if b0 != 0x80|m.op || string(p) != m.data {
					t.Fatalf("echo %d: frame %#x %q, want %#x %q", i, b0, p, 0x80|m.op, m.data)
				}
			}
			up.mu.Lock()
			ops := fmt.Sprint(up.ops)
			up.mu.Unlock()
			if want := fmt.Sprint([]transport.Opcode{transport.Binary, transport.Text, transport.Binary}); ops != want {
				t.Fatalf("upstream received opcodes %s, want %s", ops, want)
			}
		})
	}
}

// --- an upstream that floods its client until the leg closes ---

type floodUpstream struct {
	URL    string
	up     *transport.Upgrader
	closed chan upClose
	wg     sync.WaitGroup
}

func newFloodUpstream(t testing.TB) *floodUpstream {
	t.Helper()
	f := &floodUpstream{closed: make(chan upClose, 256)}
	up, err := transport.NewUpgrader(&transport.Options{MaxMessageBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	f.up = up
	srv := httptest.NewServer(f)
	f.URL = "ws" + strings.TrimPrefix(srv.URL, "http")
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		f.wg.Wait()
	})
	return f
}

func (f *floodUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := f.up.Upgrade(w, r, "", f)
	if err != nil {
		return
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		msg := []byte(`{"type":"tick","payload":"` + strings.Repeat("x", 200) + `"}`)
		for c.WriteMessage(transport.Text, msg) == nil {
		}
	}()
	c.Serve()
}

func (f *floodUpstream) OnMessage(*transport.Conn, transport.Opcode, []byte) {}
func (f *floodUpstream) OnPing(*transport.Conn, []byte)                      {}
func (f *floodUpstream) OnPong(*transport.Conn, []byte)                      {}
func (f *floodUpstream) OnClose(_ *transport.Conn, err error) {
	rec := upClose{code: transport.StatusAbnormal}
	if code, ok := transport.CloseCode(err); ok {
		rec.code = code
	}
	f.closed <- rec
}

// The code sent wins: when the transport fails a client fast (1002 for a
// reserved opcode) while upstream messages are being written to it, wsgate
// logs and audits 1002 and sends 1002 upstream, never 1006 / 1001 "client
// gone". Repeated, because it was a race between the failing writer and the
// transport's own close.
func TestGatewayCloseCodeSentWins(t *testing.T) {
	up := newFloodUpstream(t)
	s := plainGateway(t, up.URL, "raw", false)
	const rounds = 50
	for i := range rounds {
		c := wsgatetest.DialRaw(t, s.Addr, "/gw", "Authorization: Bearer "+s.Token(t, fmt.Sprint("user", i), nil))
		// Let upstream traffic flow to the client, then break the protocol.
		if _, _, err := c.ReadFrame(); err != nil {
			t.Fatalf("round %d: no upstream traffic: %v", i, err)
		}
		c.Send(wsframe.Client(0x83, nil)) // reserved opcode
		// The flood's frames come before the close frame.
		if code := c.CloseCode(1 << 20); code != transport.StatusProtocolError {
			t.Fatalf("round %d: client got close %d, want 1002", i, code)
		}
		select {
		case got := <-up.closed:
			if got.code != transport.StatusProtocolError {
				t.Fatalf("round %d: upstream got close %d, want 1002", i, got.code)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: upstream leg did not close", i)
		}
		_ = c.Close()
	}
	wait.For(t, "every session to end", 10*time.Second, func() bool { return s.Connections() == 0 })
	var disconnects, wrong int
	for line := range strings.SplitSeq(s.Logs.String(), "\n") {
		if !strings.Contains(line, `"msg":"disconnected"`) {
			continue
		}
		disconnects++
		if !strings.Contains(line, `"code":1002`) {
			wrong++
			t.Errorf("logged %s", line)
		}
	}
	if disconnects != rounds || wrong != 0 {
		t.Fatalf("%d disconnects logged (%d not 1002), want %d with 1002", disconnects, wrong, rounds)
	}
}

// WithHandler: built-in types and types without a schema are refused at New;
// a handler's error becomes an error reply; without the option a type with a
// schema still answers unknown_type.
func TestWithHandlerRules(t *testing.T) {
	schema := `{"type":"object","properties":{"type":{"const":"order"},"id":{"type":"integer"}},"required":["type"]}`
	ok := func(context.Context, wsgate.Message) (json.RawMessage, error) {
		return json.RawMessage(`{"type":"done"}`), nil
	}
	plainCfg := func() *config.Config { c := wsgatetest.Config(); c.InsecurePlaintext = true; return c }
	for _, typ := range []string{"ping", "refresh", "publish", "command", "subscribe"} {
		cfg := plainCfg()
		if _, err := wsgate.New(cfg, wsgate.WithHandler(typ, ok)); err == nil || !strings.Contains(err.Error(), "built-in") {
			t.Errorf("WithHandler(%q): New error %v, want built-in refusal", typ, err)
		}
	}
	if _, err := wsgate.New(plainCfg(), wsgate.WithHandler("order", ok)); err == nil || !strings.Contains(err.Error(), "no schema") {
		t.Errorf("WithHandler without a schema: New error %v", err)
	}

	cfg := wsgatetest.Config()
	cfg.Schemas.Inline = map[string]string{"order": schema}
	plain := wsgatetest.Start(t, cfg)
	c := plain.Connect(t, "alice", nil)
	c.Send(t, `{"type":"order","id":7}`)
	if got := c.Expect(t, "error", 5*time.Second); got["code"] != "unknown_type" {
		t.Fatalf("without WithHandler: %v", got)
	}

	cfg = wsgatetest.Config()
	cfg.Schemas.Inline = map[string]string{"order": schema}
	s := wsgatetest.Start(t, cfg, wsgate.WithHandler("order", func(_ context.Context, m wsgate.Message) (json.RawMessage, error) {
		if string(m.ID) == "2" {
			return nil, errors.New("backend down at 10.0.0.5")
		}
		return json.RawMessage(`{"type":"order_ok","ref":` + string(m.ID) + `,"user":"` + m.User + `"}`), nil
	}))
	c = s.Connect(t, "bob", nil)
	c.Send(t, `{"type":"order","id":1}`)
	if got := c.Expect(t, "order_ok", 5*time.Second); got["user"] != "bob" || got["ref"] != float64(1) {
		t.Fatalf("reply %v", got)
	}
	c.Send(t, `{"type":"order","id":2}`)
	got := c.Expect(t, "error", 5*time.Second)
	if got["code"] != "handler_failed" || got["ref"] != float64(2) || strings.Contains(fmt.Sprint(got), "10.0.0.5") {
		t.Fatalf("error reply %v", got)
	}
	c.Send(t, `{"type":"order","id":"not an integer"}`)
	if got := c.Expect(t, "error", 5*time.Second); got["code"] == "handler_failed" {
		t.Fatalf("schema not applied before the handler: %v", got)
	}
}

// WithRawRoute: the route's guard refuses an unauthenticated upgrade, binary is
// refused without allow_binary (1003), and the rate-limit tiers close with 1008.
func TestWithRawRouteGuardAndLimits(t *testing.T) {
	cfg := wsgatetest.Config()
	cfg.InsecurePlaintext = true
	d := cfg.Rate.Tiers["default"]
	d.Messages = config.RateLimit{Rate: 0.5, Burst: 2}
	cfg.Rate.Tiers["default"] = d
	got := make(chan string, 8)
	s := wsgatetest.Start(t, cfg, wsgate.WithRawRoute(config.Route{Path: "/raw"}, func(c wsgate.RawConn, op wsgate.Opcode, data []byte) {
		got <- c.User() + ":" + string(data)
		_ = c.Send(op, data)
	}))
	resp, err := http.Get("http://" + s.Addr + "/raw")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("unauthenticated plain GET: %d", resp.StatusCode)
	}
	c := wsgatetest.DialRaw(t, s.Addr, "/raw", "Authorization: Bearer "+s.Token(t, "carol", nil))
	c.Send(wsframe.Client(0x81, []byte("one")), wsframe.Client(0x81, []byte("two")))
	for _, want := range []string{"one", "two"} {
		b0, p, err := c.ReadFrame()
		if err != nil || b0 != 0x81 || string(p) != want {
			t.Fatalf("echo %#x %q %v, want %q", b0, p, err, want)
		}
		if h := <-got; h != "carol:"+want {
			t.Fatalf("handler saw %q", h)
		}
	}
	c.Send(wsframe.Client(0x81, []byte("three: over the budget")))
	if code := c.CloseCode(100); code != transport.StatusPolicyViolation {
		t.Fatalf("rate limit close %d, want 1008", code)
	}
	c2 := wsgatetest.DialRaw(t, s.Addr, "/raw", "Authorization: Bearer "+s.Token(t, "dave", nil))
	c2.Send(wsframe.Client(0x82, []byte{1}))
	if code := c2.CloseCode(100); code != transport.StatusUnsupportedData {
		t.Fatalf("binary close %d, want 1003", code)
	}
	cfg2 := wsgatetest.Config()
	cfg2.InsecurePlaintext = true
	if _, err := wsgate.New(cfg2, wsgate.WithRawRoute(config.Route{Path: "/x", Upstream: "ws://127.0.0.1:1/"}, func(wsgate.RawConn, wsgate.Opcode, []byte) {})); err == nil {
		t.Fatal("WithRawRoute with an upstream accepted")
	}
}
