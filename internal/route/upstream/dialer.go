package upstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/internal/conn/transport"
	"github.com/wsgate/wsgate/internal/tools/certgen"
)

// Dialer opens upstream legs for one route. It is safe for concurrent use.
type Dialer struct {
	opts Options
	base *url.URL
	tls  *tls.Config

	mu       sync.Mutex
	failures int // consecutive dial failures
	lastErr  string
	lastAt   time.Time
}

// NewDialer validates opts and loads the TLS material once.
func NewDialer(opts Options) (*Dialer, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	o := opts.withDefaults()
	u, _ := url.Parse(o.URL) // Validate parsed it
	d := &Dialer{opts: o, base: u}
	if u.Scheme == "wss" {
		tc, err := tlsConfig(o)
		if err != nil {
			return nil, fmt.Errorf("upstream %s: %w", o.Route, err)
		}
		d.tls = tc
	}
	return d, nil
}

func tlsConfig(o Options) (*tls.Config, error) {
	if o.TLSConfig != nil {
		return o.TLSConfig.Clone(), nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.CAFile != "" {
		pool, err := certgen.LoadPool(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		tc.RootCAs = pool
	}
	if o.ClientCertFile != "" {
		cert, err := tls.LoadX509KeyPair(o.ClientCertFile, o.ClientKeyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// Options returns the options in force, defaults applied.
func (d *Dialer) Options() Options { return d.opts }

// DialRequest is the admitted client connection the upstream leg is for.
type DialRequest struct {
	// Request is the client's upgrade request (headers to forward, query, TLS).
	Request  *http.Request
	ClientIP string
	User     string
	Claims   map[string]any
	// ExpiresAt caps the identity JWT's lifetime (zero: no cap).
	ExpiresAt time.Time
	ConnID    string
	// Subprotocols are the client's application subprotocols (token entries
	// removed), offered to the upstream in the client's order.
	Subprotocols []string
}

// DialError is a failed dial, already classified for the client's HTTP answer.
type DialError struct {
	// Status is 502 (unreachable, timeout, TLS, a refusal that is wsgate's
	// problem) or 503 (the upstream said it is overloaded: 503 or 429).
	Status int
	// Reason is short and static: "connect", "timeout", "tls", "refused_<status>".
	Reason string
	// RetryAfter is set with 503.
	RetryAfter time.Duration
	Err        error
}

func (e *DialError) Error() string { return "upstream dial: " + e.Reason + ": " + e.Err.Error() }
func (e *DialError) Unwrap() error { return e.Err }

// Dial opens the upstream leg for req, within the connect timeout and ctx. It
// returns a Link that is not yet read from: Start it once the client is
// upgraded, or Abort it if that fails. A failure is always a *DialError.
func (d *Dialer) Dial(ctx context.Context, req DialRequest) (*Link, error) {
	o := &d.opts
	h := forwardHeader(req.Request, o.ForwardHeaders, req.ClientIP)
	if _, err := SignIdentity(h, o.IdentityKey, Identity{
		User: req.User, Claims: req.Claims, ConnID: req.ConnID, ClientIP: req.ClientIP, Host: o.Host,
	}, o.MaxClaimsBytes); err != nil {
		return nil, d.fail(&DialError{Status: http.StatusBadGateway, Reason: "identity", Err: err})
	}
	if o.IdentityJWT {
		tok, err := identityJWT(o, req)
		if err != nil {
			return nil, d.fail(&DialError{Status: http.StatusBadGateway, Reason: "identity", Err: err})
		}
		h.Set("Authorization", "Bearer "+tok)
	}
	l := newLink(o)
	do := &transport.DialOptions{
		Header:           h,
		TLSConfig:        d.tls,
		Subprotocols:     req.Subprotocols,
		HandshakeTimeout: o.ConnectTimeout,
		Options: transport.Options{
			MaxMessageBytes: o.MaxMessageBytes,
			MaxFragments:    o.MaxFragments,
			AllowBinary:     o.AllowBinary,
			WriteTimeout:    o.WriteTimeout,
			CloseTimeout:    o.CloseTimeout,
			Logger:          o.Logger,
		},
	}
	conn, resp, err := transport.Dial(ctx, targetURL(d.base, req.Request, o.StripParams), do, l)
	if err != nil {
		return nil, d.fail(classify(resp, err))
	}
	d.ok()
	l.conn = conn
	return l, nil
}

// classify turns a transport error into the client's answer.
func classify(resp *http.Response, err error) *DialError {
	if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
		de := &DialError{Status: http.StatusBadGateway, Reason: "refused_" + strconv.Itoa(resp.StatusCode), Err: err}
		if resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusTooManyRequests {
			de.Status = http.StatusServiceUnavailable
			de.RetryAfter = 5 * time.Second
			if s, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && s > 0 {
				de.RetryAfter = min(time.Duration(s)*time.Second, time.Minute)
			}
		}
		return de
	}
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return &DialError{Status: http.StatusBadGateway, Reason: "timeout", Err: err}
	case isTLSError(err):
		return &DialError{Status: http.StatusBadGateway, Reason: "tls", Err: err}
	default:
		return &DialError{Status: http.StatusBadGateway, Reason: "connect", Err: err}
	}
}

func isTLSError(err error) bool {
	var (
		rec  tls.RecordHeaderError
		cv   *tls.CertificateVerificationError
		uerr x509.UnknownAuthorityError
		herr x509.HostnameError
		aerr tls.AlertError
	)
	return errors.As(err, &rec) || errors.As(err, &cv) || errors.As(err, &uerr) || errors.As(err, &herr) || errors.As(err, &aerr)
}

func (d *Dialer) fail(de *DialError) *DialError {
	d.mu.Lock()
	d.failures++
	d.lastErr = de.Reason
	d.lastAt = time.Now()
	d.mu.Unlock()
	return de
}

func (d *Dialer) ok() {
	d.mu.Lock()
	d.failures = 0
	d.mu.Unlock()
}

// Health is the upstream's state as seen by recent dials.
type Health struct {
	Up                  bool
	ConsecutiveFailures int
	LastError           string // reason of the last failure, "" if none yet
	LastErrorAt         time.Time
}

// Health reports Up until DownAfter consecutive dials failed; one successful
// dial or Probe brings it back.
func (d *Dialer) Health() Health {
	d.mu.Lock()
	defer d.mu.Unlock()
	return Health{Up: d.failures < d.opts.DownAfter, ConsecutiveFailures: d.failures, LastError: d.lastErr, LastErrorAt: d.lastAt}
}

// Probe checks that the upstream accepts a connection (TCP, and TLS for
// wss://) without a WebSocket handshake, so that an idle route's health
// recovers without a client having to fail first. It only updates health when
// the upstream is down.
func (d *Dialer) Probe(ctx context.Context) error {
	if d.Health().Up {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, d.opts.ConnectTimeout)
	defer cancel()
	addr := d.base.Host
	if d.base.Port() == "" {
		port := "80"
		if d.base.Scheme == "wss" {
			port = "443"
		}
		addr = net.JoinHostPort(d.base.Hostname(), port)
	}
	var nd net.Dialer
	c, err := nd.DialContext(ctx, "tcp", addr)
	if err == nil && d.tls != nil {
		cfg := d.tls.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName = d.base.Hostname()
		}
		tc := tls.Client(c, cfg)
		err = tc.HandshakeContext(ctx)
		c = tc
	}
	if c != nil {
		_ = c.Close()
	}
	if err != nil {
		return fmt.Errorf("upstream %s: probe: %w", d.opts.Route, err)
	}
	d.ok()
	return nil
}

// identityJWT mints the short-lived bearer token for IdentityJWT.
func identityJWT(o *Options, req DialRequest) (string, error) {
	now := time.Now()
	exp := now.Add(o.IdentityJWTTTL)
	if !req.ExpiresAt.IsZero() && req.ExpiresAt.Before(exp) {
		exp = req.ExpiresAt
	}
	claims := jwt.MapClaims{}
	for k, v := range req.Claims {
		switch k {
		case "iss", "aud", "exp", "nbf", "iat", "jti", "sub", "cnf":
			// Registered claims are wsgate's own here; cnf would bind the token
			// to the client's key, which the upstream never sees.
		default:
			claims[k] = v
		}
	}
	claims["iss"] = "wsgate"
	claims["sub"] = req.User
	claims["iat"] = now.Unix()
	claims["exp"] = exp.Unix()
	claims["jti"] = req.ConnID
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(o.IdentityKey)
	if err != nil {
		return "", fmt.Errorf("upstream: sign identity token: %w", err)
	}
	return tok, nil
}
