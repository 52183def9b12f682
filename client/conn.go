package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wsgate/wsgate/internal/conn/protocol"
	"github.com/wsgate/wsgate/internal/conn/transport"
)

// Subprotocol is the application protocol the client offers.
const Subprotocol = "wsgate.v1"

// handshakeTimeout bounds one attempt: TCP, TLS, upgrade and the welcome.
const handshakeTimeout = 10 * time.Second

// conn is one WebSocket connection of a Client.
type conn struct {
	c         *Client
	tc        *transport.Conn
	signer    *Signer
	jwks      []byte
	welcome   Welcome
	welcomeAt time.Time
	gotWelc   chan struct{}
	closed    chan struct{}

	mu       sync.Mutex
	endCode  uint16
	endWhy   string
	welcomed bool // reader only

	lost bool // guarded by c.mu: the socket has closed
}

func (cn *conn) closeErr() *CloseError {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return &CloseError{Code: cn.endCode, Reason: cn.endWhy}
}

// write seals (unless ping) and sends one message.
func (cn *conn) write(typ string, msg []byte) error {
	if cn.signer != nil && typ != "ping" {
		var err error
		if msg, err = cn.signer.Seal(msg); err != nil {
			return err
		}
	}
	if err := cn.tc.WriteMessage(transport.Text, msg); err != nil {
		return fmt.Errorf("client: write: %w", err)
	}
	return nil
}

// openSigned unwraps a server-signed message, verifying it when asked to.
func (cn *conn) openSigned(data []byte) ([]byte, error) {
	if cn.c.o.VerifyServer {
		if cn.jwks == nil {
			return nil, errors.New("no server keys")
		}
		return VerifyServer(cn.jwks, data)
	}
	var env struct {
		Sig struct {
			Body string `json:"body"`
		} `json:"sig"`
	}
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, err
	}
	return b64Decode(env.Sig.Body)
}

// OnMessage etc. implement transport.Handler; they run on the reader goroutine.
func (cn *conn) OnMessage(_ *transport.Conn, op transport.Opcode, data []byte) {
	if op != transport.Text {
		return
	}
	if !cn.welcomed {
		var probe struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(data, &probe) != nil || probe.Type != "welcome" {
			_ = cn.tc.WriteClose(1002, "expected welcome")
			return
		}
		if err := json.Unmarshal(data, &cn.welcome); err != nil || cn.welcome.ConnID == "" {
			_ = cn.tc.WriteClose(1002, "bad welcome")
			return
		}
		cn.welcomed = true
		cn.welcomeAt = time.Now()
		close(cn.gotWelc)
		return
	}
	cn.c.handle(cn, data)
}

func (cn *conn) OnPing(*transport.Conn, []byte) {}
func (cn *conn) OnPong(*transport.Conn, []byte) {}
func (cn *conn) OnClose(_ *transport.Conn, err error) {
	code, why := transport.CloseStatus(err)
	cn.mu.Lock()
	cn.endCode, cn.endWhy = code, why
	cn.mu.Unlock()
	cn.c.connLost(cn)
	close(cn.closed)
}

// connect makes one connection attempt and waits for the welcome.
func (c *Client) connect(ctx context.Context) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	tok, err := c.o.Token(ctx)
	if err != nil {
		return nil, fmt.Errorf("client: token: %w", err)
	}
	if !isToken(tok) {
		return nil, errBadToken
	}
	u, err := url.Parse(c.url)
	if err != nil {
		return nil, fmt.Errorf("client: url: %w", err)
	}
	if u.Query().Has("token") || u.Query().Has("access_token") {
		return nil, &HandshakeError{Status: 0, Code: "token_in_url"}
	}
	cn := &conn{c: c, gotWelc: make(chan struct{}), closed: make(chan struct{})}
	header := c.o.Header.Clone()
	if header == nil {
		header = http.Header{}
	}
	protos := []string{Subprotocol}
	var hmacKey json.RawMessage
	var tk *ticketReply // the ticket reply, when one was fetched
	switch c.o.Credential {
	case CredentialSubprotocol:
		// Set directly: the transport caps offered names at 256 bytes, and a JWT
		// with claims is longer. The server still has to answer wsgate.v1.
		if !isToken(tok) {
			return nil, errBadToken
		}
		header.Set("Sec-WebSocket-Protocol", Subprotocol+", bearer, "+tok)
		protos = nil
	case CredentialTicket:
		t, err := c.ticket(ctx, tok)
		if err != nil {
			return nil, err
		}
		q := u.Query()
		q.Set("ticket", t.Ticket)
		u.RawQuery = q.Encode()
		hmacKey, tk = t.Integrity, t
	default:
		header.Set("Authorization", "Bearer "+tok)
	}
	if tk == nil && (c.o.Integrity == IntegrityHMAC || c.o.Encryption != nil && c.o.Encryption.FromServer) {
		// The per-user key and the end-to-end keys come with a ticket; the
		// ticket itself goes unused.
		if tk, err = c.ticket(ctx, tok); err != nil {
			return nil, err
		}
		hmacKey = tk.Integrity
	}
	if c.o.Encryption != nil && c.o.Encryption.FromServer {
		if err := c.takeServerKeys(tk.Encryption); err != nil {
			return nil, err
		}
	}
	var popSigner *Signer
	if c.o.Integrity == IntegrityPop {
		if popSigner, err = NewPopSigner(c.o.PopKey, "pending", nil); err != nil {
			return nil, err
		}
		params, err := popSigner.HandshakeParams(u.Host, u.EscapedPath())
		if err != nil {
			return nil, err
		}
		q := u.Query()
		for k, v := range params {
			q[k] = v
		}
		u.RawQuery = q.Encode()
	}
	if c.o.VerifyServer {
		if cn.jwks, err = c.fetch(ctx, "/.well-known/wsgate-keys.json"); err != nil {
			return nil, err
		}
	}
	do := &transport.DialOptions{Header: header, TLSConfig: c.o.TLSConfig, Subprotocols: protos, HandshakeTimeout: handshakeTimeout}
	do.Options.MaxMessageBytes = c.o.MaxMessageBytes
	do.Options.Logger = c.log
	tc, resp, err := transport.Dial(ctx, u.String(), do, cn)
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, handshakeError(resp)
		}
		return nil, fmt.Errorf("client: connect %s: %w", redact(c.url), err)
	}
	cn.tc = tc
	// The reader is owned by cn: it ends when the socket closes, and the
	// connection loop waits for cn.closed before it moves on.
	go tc.Serve()
	if tc.Subprotocol() != Subprotocol {
		_ = tc.Close()
		<-cn.closed
		return nil, fmt.Errorf("client: server answered subprotocol %q, want %q", tc.Subprotocol(), Subprotocol)
	}
	select {
	case <-cn.gotWelc:
	case <-cn.closed:
		return nil, fmt.Errorf("client: connection closed before the welcome: %w", cn.closeErr())
	case <-ctx.Done():
		_ = tc.Close()
		<-cn.closed
		return nil, fmt.Errorf("client: no welcome: %w", ctx.Err())
	}
	switch {
	case c.o.Integrity == IntegrityHMAC:
		kid, key, err := ParseHMACKey(hmacKey)
		if err == nil {
			cn.signer, err = NewHMACSigner(kid, key, cn.welcome.User, nil)
		}
		if err != nil {
			_ = tc.Close()
			<-cn.closed
			return nil, fmt.Errorf("client: hmac key: %w", err)
		}
	case popSigner != nil:
		if cn.signer, err = NewPopSigner(c.o.PopKey, cn.welcome.User, nil); err != nil {
			_ = tc.Close()
			<-cn.closed
			return nil, err
		}
	}
	if cn.signer != nil {
		cn.signer.Bind(cn.welcome.ConnID)
	}
	return cn, nil
}

type ticketReply struct {
	Ticket    string          `json:"ticket"`
	ExpiresAt int64           `json:"expires_at"`
	Integrity json.RawMessage `json:"integrity"`
	// Encryption: {"keys":[encrypt.DeliveredKey…]} for the end_to_end channels
	// the token grants (docs/encryption.md).
	Encryption json.RawMessage `json:"encryption"`
}

// ticket exchanges the token for a one-time ticket (and the hmac key).
func (c *Client) ticket(ctx context.Context, tok string) (*ticketReply, error) {
	target := c.o.TicketURL
	if target == "" {
		target = httpOrigin(c.url) + "/v1/tickets"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, nil)
	if err != nil {
		return nil, fmt.Errorf("client: ticket: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := c.o.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("client: ticket: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, handshakeError(resp)
	}
	var t ticketReply
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&t); err != nil || t.Ticket == "" {
		return nil, fmt.Errorf("client: ticket: bad reply: %v", err)
	}
	return &t, nil
}

// fetch GETs a path on the server's HTTPS origin.
func (c *Client) fetch(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, httpOrigin(c.url)+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.o.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("client: fetch %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("client: fetch %s: status %d %v", path, resp.StatusCode, err)
	}
	return b, nil
}

// handshakeError reads a refusal: status, the body's "error" and Retry-After.
func handshakeError(resp *http.Response) *HandshakeError {
	e := &HandshakeError{Status: resp.StatusCode}
	var body struct {
		Error       string  `json:"error"`
		RetryAfterS float64 `json:"retry_after_s"`
	}
	if resp.Body != nil {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if json.Unmarshal(b, &body) == nil {
			e.Code = body.Error
		}
	}
	if s, err := strconv.Atoi(strings.TrimSpace(resp.Header.Get("Retry-After"))); err == nil && s > 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	} else if body.RetryAfterS > 0 {
		e.RetryAfter = time.Duration(body.RetryAfterS * float64(time.Second))
	}
	if e.RetryAfter > time.Hour { // a broken header must not park the client for days
		e.RetryAfter = time.Hour
	}
	return e
}

// httpOrigin maps wss://host/ws to https://host.
func httpOrigin(wsURL string) string {
	u, err := url.Parse(wsURL)
	if err != nil {
		return ""
	}
	scheme := "https"
	if u.Scheme == "ws" {
		scheme = "http"
	}
	return scheme + "://" + u.Host
}

// redact keeps a URL's query (which may hold a ticket) out of errors and logs.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(bad url)"
	}
	return u.Scheme + "://" + u.Host + u.Path
}

// errBadToken: the TokenFunc returned something that cannot be a JWT. It is
// terminal (retrying returns the same) and never quotes the value.
var errBadToken = &HandshakeError{Code: "invalid_token_syntax"}

// isToken reports whether tok has the syntax of a JWT (RFC 7230 token
// characters), so it can go into a header without smuggling anything.
func isToken(tok string) bool { return protocol.IsToken(tok, 16<<10) }
