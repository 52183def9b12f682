package wsgate_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/conn/transport"
)

// exampleSecret is the HMAC key the example servers trust (>= 32 bytes).
const exampleSecret = "example-secret-example-secret-0123456789"

// exampleConfig is a plaintext loopback server with one HMAC key and the
// admin listener off.
func exampleConfig() *config.Config {
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.InsecurePlaintext = true // loopback example only
	cfg.Admin.Listen = ""
	cfg.Auth.Keys = []config.Key{{ID: "main", Algorithms: []string{"HS256"}, Secret: exampleSecret}}
	return cfg
}

// serve runs srv until the returned stop is called, and returns its address.
func serve(srv *wsgate.Server) (addr string, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- srv.ListenAndServe(ctx, func(l wsgate.Listening) { ready <- l.Addr }) }()
	select {
	case addr = <-ready:
	case err := <-done:
		panic(err)
	}
	return addr, func() { cancel(); <-done }
}

// token mints a short-lived token for sub, signed with the example key.
func token(sub string) string {
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": sub, "iat": time.Now().Unix(), "exp": time.Now().Add(time.Minute).Unix()})
	t.Header["kid"] = "main"
	s, err := t.SignedString([]byte(exampleSecret))
	if err != nil {
		panic(err)
	}
	return s
}

// exampleClient is any WebSocket client; the examples use wsgate's transport.
type exampleClient struct {
	conn *transport.Conn
	msgs chan exampleMsg
}

type exampleMsg struct {
	op   transport.Opcode
	data []byte
}

func (c *exampleClient) OnMessage(_ *transport.Conn, op transport.Opcode, data []byte) {
	c.msgs <- exampleMsg{op, data}
}
func (c *exampleClient) OnPing(*transport.Conn, []byte) {}
func (c *exampleClient) OnPong(*transport.Conn, []byte) {}
func (c *exampleClient) OnClose(*transport.Conn, error) { close(c.msgs) }
func (c *exampleClient) next() exampleMsg {
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(10 * time.Second):
		panic("no message within 10s")
	}
}

func dialExample(url, tok string) *exampleClient {
	c := &exampleClient{msgs: make(chan exampleMsg, 16)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := transport.Dial(ctx, url, &transport.DialOptions{
		Header:  http.Header{"Authorization": {"Bearer " + tok}},
		Options: transport.Options{AllowBinary: true},
	}, c)
	if err != nil {
		panic(err)
	}
	c.conn = conn
	go conn.Serve()
	return c
}

// A custom message type handled in Go: the type has a schema (every type
// needs one, the pipeline checks it before the handler runs), and WithHandler
// answers it.
func ExampleWithHandler() {
	cfg := exampleConfig()
	cfg.Schemas.Inline = map[string]string{"greet": `{
		"type": "object",
		"properties": {"type": {"const": "greet"}, "id": {"type": "integer"}, "name": {"type": "string", "maxLength": 64}},
		"required": ["type", "name"],
		"additionalProperties": false
	}`}
	srv, err := wsgate.New(cfg,
		wsgate.WithLogger(slog.New(slog.DiscardHandler)),
		wsgate.WithHandler("greet", func(_ context.Context, m wsgate.Message) (json.RawMessage, error) {
			var req struct{ Name string }
			if err := json.Unmarshal(m.Raw, &req); err != nil {
				return nil, err
			}
			return json.Marshal(map[string]any{"type": "greeting", "ref": m.ID, "text": "hello, " + req.Name + ", from the server to " + m.User})
		}))
	if err != nil {
		panic(err)
	}
	addr, stop := serve(srv)
	defer stop()

	c := dialExample("ws://"+addr+cfg.Path, token("ada"))
	defer c.conn.Close()
	var welcome struct{ Type, User string }
	_ = json.Unmarshal(c.next().data, &welcome)
	fmt.Println(welcome.Type, welcome.User)
	_ = c.conn.WriteMessage(transport.Text, []byte(`{"type":"greet","id":1,"name":"Ada"}`))
	fmt.Println(string(c.next().data))
	// Output:
	// welcome ada
	// {"ref":1,"text":"hello, Ada, from the server to ada","type":"greeting"}
}

// A raw route served in process: wsgate's guard (authentication, origins,
// handshake rate, quotas, bans) and raw checks (framing, size, binary policy,
// rate limits), then opaque frames to a Go handler.
func ExampleWithRawRoute() {
	cfg := exampleConfig()
	route := config.Route{Path: "/raw", AllowBinary: true}
	srv, err := wsgate.New(cfg,
		wsgate.WithLogger(slog.New(slog.DiscardHandler)),
		wsgate.WithRawRoute(route, func(c wsgate.RawConn, op wsgate.Opcode, data []byte) {
			// Echo reversed, keeping the opcode.
			for i, j := 0, len(data)-1; i < j; i, j = i+1, j-1 {
				data[i], data[j] = data[j], data[i]
			}
			_ = c.Send(op, data)
		}))
	if err != nil {
		panic(err)
	}
	addr, stop := serve(srv)
	defer stop()

	c := dialExample("ws://"+addr+"/raw", token("bob"))
	defer c.conn.Close()
	_ = c.conn.WriteMessage(transport.Binary, []byte{1, 2, 3})
	m := c.next()
	fmt.Println(m.op, m.data)
	_ = c.conn.WriteMessage(transport.Text, []byte("not json, no welcome"))
	m = c.next()
	fmt.Println(m.op, string(m.data))
	// Output:
	// binary [3 2 1]
	// text emoclew on ,nosj ton
}
