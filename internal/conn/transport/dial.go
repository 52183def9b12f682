package transport

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/lxzan/gws"

	"github.com/wsgate/wsgate/internal/defaults"
)

// maxRefusalBody is how much of a refused handshake's body Dial keeps.
const maxRefusalBody = 4096

// Dial opens a client connection to a ws:// or wss:// URL. It returns
// without reading: call Serve. When the server answers anything but a valid
// 101, Dial returns an error (wrapping ErrUnexpectedStatus for a non-101
// status) together with the *http.Response, whose Body holds up to 4 KiB of
// the answer, so callers can see 401/403/429/503.
func Dial(ctx context.Context, rawURL string, opts *DialOptions, h Handler) (*Conn, *http.Response, error) {
	var do DialOptions
	if opts != nil {
		do = *opts
	}
	if h == nil {
		return nil, nil, errors.New("transport: dial: nil handler")
	}
	if err := do.Options.Validate(); err != nil {
		return nil, nil, err
	}
	o := do.Options.withDefaults()
	defaults.Positive(&do.HandshakeTimeout, DefaultHandshakeTimeout)
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, nil, fmt.Errorf("transport: dial: parse url: %w", err)
	}
	safe := u.Scheme + "://" + u.Host + u.Path // never log the query: it may carry a token
	var port string
	switch u.Scheme {
	case "ws":
		port = "80"
	case "wss":
		port = "443"
	default:
		return nil, nil, fmt.Errorf("transport: dial %s: scheme must be ws or wss", safe)
	}
	for _, p := range do.Subprotocols {
		if !validToken(p) {
			return nil, nil, fmt.Errorf("transport: dial %s: subprotocol %q is not a token", safe, p)
		}
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), port)
	}

	ctx, cancel := context.WithTimeout(ctx, do.HandshakeTimeout)
	defer cancel()
	netDial := do.NetDial
	if netDial == nil {
		var d net.Dialer
		netDial = d.DialContext
	}
	raw, err := netDial(ctx, "tcp", addr)
	if err == nil && raw == nil {
		err = errors.New("NetDial returned no connection")
	}
	if err != nil {
		return nil, nil, fmt.Errorf("transport: dial %s: %w", safe, err)
	}
	if u.Scheme == "wss" {
		cfg := &tls.Config{}
		if do.TLSConfig != nil {
			cfg = do.TLSConfig.Clone()
		}
		if cfg.ServerName == "" {
			cfg.ServerName = u.Hostname()
		}
		if len(cfg.NextProtos) == 0 {
			cfg.NextProtos = []string{"http/1.1"}
		}
		tc := tls.Client(raw, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = raw.Close()
			return nil, nil, fmt.Errorf("transport: dial %s: tls: %w", safe, err)
		}
		raw = tc
	}

	wire := newWireConn(raw, false, &o)
	if dl, ok := ctx.Deadline(); ok {
		wire.client.deadline = dl
	}
	stop := context.AfterFunc(ctx, wire.cancelHandshake)
	defer stop()

	header := do.Header.Clone()
	if header == nil {
		header = http.Header{}
	}
	if len(do.Subprotocols) > 0 {
		header.Set("Sec-WebSocket-Protocol", strings.Join(do.Subprotocols, ", "))
	}
	co := &gws.ClientOption{
		Addr:                rawURL,
		RequestHeader:       header,
		HandshakeTimeout:    do.HandshakeTimeout,
		ParallelEnabled:     false,
		ReadMaxPayloadSize:  o.MaxMessageBytes,
		ReadBufferSize:      o.ReadBufferSize,
		WriteMaxPayloadSize: maxWriteBytes,
		CheckUtf8Enabled:    true,
		Logger:              slogLogger{o.Logger},
		Recovery:            gwsRecovery(o.Logger),
		NewSession:          newNoSession,
		// The client side keeps gws's own offer and defaults.
		PermessageDeflate: gwsDeflate(o.Compression, deflateConfig{
			serverTakeover: o.Compression.ServerContextTakeover, clientTakeover: o.Compression.ClientContextTakeover,
			serverBits: o.Compression.ServerMaxWindowBits, clientBits: o.Compression.ClientMaxWindowBits,
		}),
	}
	ws, resp, err := gws.NewClientFromConn(eventAdapter{}, co, wire)
	if err == nil && !stop() {
		err = ctx.Err()
	}
	if err != nil {
		if resp != nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, maxRefusalBody))
			resp.Body = io.NopCloser(bytes.NewReader(body))
		}
		_ = wire.closeNow()
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, resp, fmt.Errorf("transport: dial %s: %w: %s", safe, ErrUnexpectedStatus, resp.Status)
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = ctxErr
		}
		return nil, resp, fmt.Errorf("transport: dial %s: %w", safe, err)
	}
	// gws cleared the deadline; drop the handshake clamp before reads start.
	wire.mu.Lock()
	wire.client.deadline = time.Time{}
	err = raw.SetDeadline(time.Time{})
	wire.mu.Unlock()
	if err != nil {
		_ = wire.closeNow()
		return nil, resp, fmt.Errorf("transport: dial %s: %w", safe, err)
	}
	wire.subprotocol = ws.SubProtocol()
	c := &Conn{ws: ws, wire: wire, h: h, log: o.Logger}
	wire.owner = c
	wire.handshaking.Store(false)
	return c, resp, nil
}

// ParseURL parses raw as a URL Dial can reach: ws:// or wss:// with a host.
// Tools that take a target URL (check, bench) validate it with this before
// they dial, so they agree with Dial on what a target is.
func ParseURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("a URL is required")
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return nil, err
	case u.Scheme != "ws" && u.Scheme != "wss":
		return nil, fmt.Errorf("scheme %q: want ws or wss", u.Scheme)
	case u.Hostname() == "":
		return nil, errors.New("no host")
	}
	return u, nil
}
