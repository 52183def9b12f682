package upstream

import (
	"cmp"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"
)

// Defaults applied to zero Options fields.
const (
	DefaultConnectTimeout    = 5 * time.Second
	DefaultMaxMessageBytes   = 64 << 10
	DefaultPingInterval      = 25 * time.Second
	DefaultPongTimeout       = 10 * time.Second
	DefaultHighWaterMessages = 128
	DefaultHighWaterBytes    = 512 << 10
	DefaultIdentityJWTTTL    = time.Minute
	// DefaultDownAfter consecutive dial failures mark an upstream down.
	DefaultDownAfter = 3
)

// Options configure one route's upstream. The zero value of every field but URL
// takes the documented default.
type Options struct {
	// Route names the route in logs and metrics (its path).
	Route string
	// URL is the upstream, ws:// or wss://. Its query is kept; the client's query
	// is appended without the credential parameters (CredentialParams) and
	// StripParams, compared case-insensitively.
	URL string
	// StripParams are extra query parameter names never passed to the upstream
	// (the route's own secrets, e.g. "api_key"), compared case-insensitively.
	StripParams []string
	// Host is the route's configured host name, sent as X-Forwarded-Host and
	// covered by the identity signature. Empty (a route for any host): no
	// X-Forwarded-Host; the client's Host header is never passed on.
	Host string
	// ConnectTimeout bounds TCP connect, TLS and the upstream's handshake
	// together. Default 5s.
	ConnectTimeout time.Duration

	// CAFile verifies a wss:// upstream (default: the system roots).
	CAFile string
	// ClientCertFile and ClientKeyFile authenticate wsgate to the upstream (mTLS).
	ClientCertFile string
	ClientKeyFile  string
	// TLSConfig, when set by a program, is used instead of the files.
	TLSConfig *tls.Config

	// IdentityKey signs the X-Wsgate-* identity headers (HMAC-SHA256). Empty: the
	// headers are sent unsigned, and the upstream must authenticate wsgate some
	// other way (mTLS, network isolation).
	IdentityKey []byte
	// IdentityJWT also sends "Authorization: Bearer <JWT>", an HS256 token signed
	// with IdentityKey (sub, the client's other claims, iat, exp, jti = connection
	// id, iss "wsgate"), for backends that already verify a shared-secret JWT and
	// should not change. Needs IdentityKey.
	IdentityJWT bool
	// IdentityJWTTTL is that token's lifetime, capped by the client token's
	// expiry. Default 1m: the upstream checks it only at the handshake.
	IdentityJWTTTL time.Duration
	// MaxClaimsBytes bounds the encoded X-Wsgate-Claims header. Default 4096.
	MaxClaimsBytes int
	// ForwardHeaders are the client request headers passed on unchanged.
	// Default DefaultForwardHeaders. Credentials, cookies, X-Wsgate-* and the
	// WebSocket handshake headers are never forwarded, whatever this says.
	ForwardHeaders []string

	// MaxMessageBytes caps one upstream → client message; a bigger one closes
	// the upstream leg (1009) and the client (1011). Default 64 KiB.
	MaxMessageBytes int
	// MaxFragments caps the frames of one upstream message. Default 64.
	MaxFragments int
	// AllowBinary accepts binary messages from the upstream (and from the
	// client, which the route's Upgrader decides). Default false.
	AllowBinary bool
	// WriteTimeout bounds each write to the upstream. Default 10s.
	WriteTimeout time.Duration
	// CloseTimeout bounds the upstream closing handshake. Default 2s.
	CloseTimeout time.Duration
	// PingInterval and PongTimeout are the upstream leg's keepalive. Defaults
	// 25s and 10s; a negative PingInterval disables it.
	PingInterval time.Duration
	PongTimeout  time.Duration

	// HighWaterMessages and HighWaterBytes: while the client's queue holds at
	// least this much, the upstream is not read (TCP pushes back on the
	// upstream). Defaults 128 messages, 512 KiB; keep them below the outbox
	// bounds, or the client is closed as a slow consumer before backpressure
	// starts.
	HighWaterMessages int
	HighWaterBytes    int

	// DownAfter consecutive dial failures mark the upstream down (Health).
	// Default 3.
	DownAfter int

	Logger *slog.Logger
}

// DefaultForwardHeaders are the client headers an upstream gets. Origin was
// already checked by wsgate against the route's allow-list and is forwarded so
// that an upstream's own check keeps working; X-Forwarded-For, -Proto and -Host
// are set by wsgate from what it verified (never copied from the client).
var DefaultForwardHeaders = []string{"Origin", "User-Agent", "Accept-Language"}

// neverForward are refused in ForwardHeaders: credentials, handshake headers
// wsgate computes itself, and proxy headers a client could spoof.
var neverForward = []string{
	"Authorization", "Cookie", "Proxy-Authorization", "Host", "Connection", "Upgrade",
	"Sec-Websocket-Key", "Sec-Websocket-Version", "Sec-Websocket-Protocol", "Sec-Websocket-Extensions",
	"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded", "X-Real-Ip",
	"Content-Length", "Transfer-Encoding", "Te", "Trailer", "Keep-Alive",
}

// Validate reports options that cannot work.
func (o *Options) Validate() error {
	var errs []error
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		errs = append(errs, fmt.Errorf("url must be ws:// or wss://, got %q", o.URL))
	} else if u.User != nil {
		errs = append(errs, errors.New("url must not carry user info"))
	}
	if o.ConnectTimeout < 0 || o.WriteTimeout < 0 || o.CloseTimeout < 0 || o.PongTimeout < 0 || o.IdentityJWTTTL < 0 {
		errs = append(errs, errors.New("timeouts must not be negative"))
	}
	if o.MaxMessageBytes < 0 || o.MaxFragments < 0 || o.MaxClaimsBytes < 0 || o.HighWaterMessages < 0 || o.HighWaterBytes < 0 || o.DownAfter < 0 {
		errs = append(errs, errors.New("sizes and counts must not be negative"))
	}
	if (o.ClientCertFile == "") != (o.ClientKeyFile == "") {
		errs = append(errs, errors.New("client_cert_file and client_key_file go together"))
	}
	if o.IdentityJWT && len(o.IdentityKey) == 0 {
		errs = append(errs, errors.New("identity JWT needs an identity key"))
	}
	for _, h := range o.ForwardHeaders {
		if hasPrefixFold(h, HeaderPrefix) {
			errs = append(errs, fmt.Errorf("header %q cannot be forwarded: X-Wsgate-* are wsgate's", h))
		}
		for _, n := range neverForward {
			if equalFold(h, n) {
				errs = append(errs, fmt.Errorf("header %q cannot be forwarded", h))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("upstream %s: %w", o.Route, err)
	}
	return nil
}

func (o Options) withDefaults() Options {
	o.ConnectTimeout = cmp.Or(o.ConnectTimeout, DefaultConnectTimeout)
	o.PingInterval = cmp.Or(o.PingInterval, DefaultPingInterval)
	o.PongTimeout = cmp.Or(o.PongTimeout, DefaultPongTimeout)
	o.IdentityJWTTTL = cmp.Or(o.IdentityJWTTTL, DefaultIdentityJWTTTL)
	o.MaxMessageBytes = cmp.Or(o.MaxMessageBytes, DefaultMaxMessageBytes)
	o.MaxClaimsBytes = cmp.Or(o.MaxClaimsBytes, DefaultMaxClaimsBytes)
	o.HighWaterMessages = cmp.Or(o.HighWaterMessages, DefaultHighWaterMessages)
	o.HighWaterBytes = cmp.Or(o.HighWaterBytes, DefaultHighWaterBytes)
	o.DownAfter = cmp.Or(o.DownAfter, DefaultDownAfter)
	if o.ForwardHeaders == nil {
		o.ForwardHeaders = DefaultForwardHeaders
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

func equalFold(a, b string) bool {
	return len(a) == len(b) && hasPrefixFold(a, b)
}
