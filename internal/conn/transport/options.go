package transport

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Defaults applied to zero fields of Options.
const (
	DefaultMaxMessageBytes  = 8192
	DefaultMaxFragments     = 64
	DefaultReadBufferSize   = 4096
	DefaultWriteTimeout     = 10 * time.Second
	DefaultCloseTimeout     = 2 * time.Second
	DefaultHandshakeTimeout = 10 * time.Second

	// maxMessageBytesLimit keeps MaxMessageBytes far from int overflow on
	// every platform gws builds on.
	maxMessageBytesLimit = 1 << 30
	// maxWriteBytes is gws's own write limit; we check it first so that an
	// oversized write returns an error instead of closing the connection.
	maxWriteBytes = 16 << 20
)

// Options are the per-connection limits and I/O settings. The zero value is
// usable: zero fields take the documented defaults.
type Options struct {
	// MaxMessageBytes caps a whole message: one frame, the sum of its
	// fragments, and its size after decompression. Over it the connection is
	// closed with 1009. A frame whose header announces more is refused before
	// its payload is read. Default 8192.
	MaxMessageBytes int
	// MaxFragments caps the frames of one data message (first frame plus
	// continuations, control frames not counted). Over it: 1009. Default 64.
	MaxFragments int
	// AllowBinary accepts binary messages. When false (the default) a binary
	// frame closes the connection with 1003 as soon as its header arrives.
	AllowBinary bool
	// Compression configures permessage-deflate (RFC 7692). Off by default.
	Compression Compression
	// ReadBufferSize is the size of the read buffer. A server connection on a
	// plain TCP socket borrows one from a pool only while bytes it has read
	// wait to be parsed, so an idle connection holds none; other connections
	// (TLS, clients) hold theirs for their whole life. Default 4096.
	ReadBufferSize int
	// WriteBufferSize is accepted for symmetry but has no effect: gws v1.8.9
	// builds every frame in a pooled buffer and writes it in one call.
	WriteBufferSize int
	// WriteTimeout is the deadline of every single write (messages, pongs,
	// close frames, the 101 response). A write that misses it fails and the
	// connection is closed. Default 10s.
	WriteTimeout time.Duration
	// CloseTimeout is how long a connection that sent a close frame waits for
	// the peer's close frame (and drains what the peer still sends) before
	// the socket is closed. Default 2s.
	CloseTimeout time.Duration
	// Logger receives recovered handler panics. Default slog.Default().
	Logger *slog.Logger
	// Reader chooses the read side of server connections: ReaderGws ("" is
	// the same), ReaderEvent, wsgate's own frame reader (ADR 0002), or
	// ReaderParked, the same reader with idle plain-TCP connections parked
	// in an epoll set instead of a goroutine (Conn.ServeDetached). Client
	// connections (Dial) always read with gws.
	Reader string
}

// Compression configures permessage-deflate. All fields but Enabled may be
// left zero.
type Compression struct {
	// Enabled offers/accepts permessage-deflate. When false a client's offer
	// is ignored and the 101 carries no Sec-WebSocket-Extensions.
	Enabled bool
	// ServerContextTakeover keeps the server's compression window between
	// messages (better ratio, ~2^ServerMaxWindowBits bytes per connection).
	ServerContextTakeover bool
	// ClientContextTakeover lets the client keep its window; the server then
	// keeps a decompression window of 2^ClientMaxWindowBits per connection.
	ClientContextTakeover bool
	// ServerMaxWindowBits is 8..15; 0 means 12 with takeover, else 15. An
	// offer asking for a smaller server window is declined (RFC 7692
	// §7.1.2.1: the server may only answer the same or a smaller value).
	ServerMaxWindowBits int
	// ClientMaxWindowBits is 8..15; 0 means 12 with takeover, else 15. It is
	// announced only to offers with client_max_window_bits (§7.1.2.2); a
	// client that cannot be limited gets client_no_context_takeover instead
	// when this is below 15.
	ClientMaxWindowBits int
	// Level is the flate level (-2..9); 0 means gws's default, best speed.
	Level int
	// Threshold: messages shorter than this are sent uncompressed (only
	// without server context takeover). 0 means gws's default, 512.
	Threshold int
}

// DialOptions configure Dial.
type DialOptions struct {
	// Header is sent with the upgrade request (Authorization, Origin, ...).
	Header http.Header
	// TLSConfig is used for wss:// URLs; ServerName defaults to the URL host.
	TLSConfig *tls.Config
	// Subprotocols are offered in Sec-WebSocket-Protocol. When not empty the
	// server must pick one of them or Dial fails.
	Subprotocols []string
	// Options are the limits for what the client reads.
	Options Options
	// HandshakeTimeout bounds TCP connect, TLS and the HTTP upgrade together
	// (the context may end it earlier). Default 10s.
	HandshakeTimeout time.Duration
	// NetDial, when set, opens the TCP connection instead of a plain
	// net.Dialer (load generators bind several source addresses with it).
	// It receives the handshake context, "tcp" and "host:port".
	NetDial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Validate reports options that cannot work. Zero values are valid (they
// mean "default").
func (o *Options) Validate() error {
	var errs []error
	if o.MaxMessageBytes < 0 || o.MaxMessageBytes > maxMessageBytesLimit {
		errs = append(errs, fmt.Errorf("max message bytes %d out of range 0..%d", o.MaxMessageBytes, maxMessageBytesLimit))
	}
	if o.MaxFragments < 0 {
		errs = append(errs, fmt.Errorf("max fragments %d is negative", o.MaxFragments))
	}
	if o.ReadBufferSize < 0 || o.WriteBufferSize < 0 {
		errs = append(errs, errors.New("buffer sizes must not be negative"))
	}
	if o.WriteTimeout < 0 || o.CloseTimeout < 0 {
		errs = append(errs, errors.New("timeouts must not be negative"))
	}
	switch o.Reader {
	case "", ReaderGws, ReaderEvent, ReaderParked:
	default:
		errs = append(errs, fmt.Errorf("reader %q is not %q, %q or %q", o.Reader, ReaderGws, ReaderEvent, ReaderParked))
	}
	c := o.Compression
	for _, bits := range []int{c.ServerMaxWindowBits, c.ClientMaxWindowBits} {
		if bits != 0 && (bits < 8 || bits > 15) {
			errs = append(errs, fmt.Errorf("compression window bits %d out of range 8..15", bits))
		}
	}
	if c.Level < -2 || c.Level > 9 {
		errs = append(errs, fmt.Errorf("compression level %d out of range -2..9", c.Level))
	}
	if c.Threshold < 0 {
		errs = append(errs, fmt.Errorf("compression threshold %d is negative", c.Threshold))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("transport options: %w", err)
	}
	return nil
}

// withDefaults returns a copy with zero fields defaulted.
func (o Options) withDefaults() Options {
	o.MaxMessageBytes = cmp.Or(o.MaxMessageBytes, DefaultMaxMessageBytes)
	o.MaxFragments = cmp.Or(o.MaxFragments, DefaultMaxFragments)
	o.ReadBufferSize = cmp.Or(o.ReadBufferSize, DefaultReadBufferSize)
	o.WriteTimeout = cmp.Or(o.WriteTimeout, DefaultWriteTimeout)
	o.CloseTimeout = cmp.Or(o.CloseTimeout, DefaultCloseTimeout)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}
