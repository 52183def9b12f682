// Package listener opens wsgate's sockets: the TCP listener, TLS with modern settings,
// optional client certificates (mTLS), and the HTTP server limits that stop slow or
// oversized handshakes (slowloris) before any WebSocket code runs.
package listener

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/wsgate/wsgate/internal/tools/certgen"
)

// TLSOptions configures the server side of TLS.
type TLSOptions struct {
	CertFile, KeyFile string
	// Certificate is used instead of the files when set (dev mode, tests).
	Certificate *tls.Certificate
	// MinVersion13 restricts to TLS 1.3; otherwise TLS 1.2 with AEAD suites only.
	MinVersion13 bool
	// ClientCAFile enables client certificate verification.
	ClientCAFile string
	// ClientAuth is "none", "verify_if_given" or "require".
	ClientAuth string
}

// modernSuites are the TLS 1.2 suites with forward secrecy and AEAD; TLS 1.3 suites
// are not configurable in Go and are all modern.
var modernSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// TLSConfig builds the server's *tls.Config. It only offers http/1.1 in ALPN because
// the WebSocket upgrade (RFC 6455) needs HTTP/1.1.
func TLSConfig(o TLSOptions) (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: modernSuites,
		NextProtos:   []string{"http/1.1"},
	}
	if o.MinVersion13 {
		cfg.MinVersion = tls.VersionTLS13
	}
	switch {
	case o.Certificate != nil:
		cfg.Certificates = []tls.Certificate{*o.Certificate}
	case o.CertFile != "" && o.KeyFile != "":
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls: load certificate %s / %s: %w", o.CertFile, o.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	default:
		return nil, errors.New("tls: no certificate: set tls.cert_file and tls.key_file")
	}
	if o.ClientAuth != "" && o.ClientAuth != "none" {
		pool, err := certgen.LoadPool(o.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls: client_ca_file: %w", err)
		}
		cfg.ClientCAs = pool
		switch o.ClientAuth {
		case "require":
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		case "verify_if_given":
			cfg.ClientAuth = tls.VerifyClientCertIfGiven
		default:
			return nil, fmt.Errorf("tls: client_auth must be none, verify_if_given or require, got %q", o.ClientAuth)
		}
	}
	return cfg, nil
}

// Listen opens a TCP listener on addr, bounded by pending (nil = unbounded) and
// wrapped in TLS when tlsCfg is not nil. "127.0.0.1:0" picks a free port; Addr()
// tells which.
func Listen(addr string, tlsCfg *tls.Config, pending *Pending) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	if pending != nil {
		ln = pending.Wrap(ln)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	return ln, nil
}

// ServerOptions are the HTTP-level limits of the handshake.
type ServerOptions struct {
	ReadHeaderTimeout time.Duration // slowloris: the whole request head must arrive in time
	HandshakeTimeout  time.Duration // bounds reading the (empty) body and writing the answer
	MaxHeaderBytes    int
	Log               *slog.Logger
	// Pending, when set, is told when a connection stops being a pending handshake.
	Pending *Pending
}

// HTTPServer returns an http.Server with the handshake limits applied. WebSocket
// connections are hijacked, so the server's own timeouts stop applying after 101;
// the session sets its own deadlines from then on.
func HTTPServer(h http.Handler, o ServerOptions) *http.Server {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: o.ReadHeaderTimeout,
		ReadTimeout:       o.HandshakeTimeout,
		WriteTimeout:      o.HandshakeTimeout,
		IdleTimeout:       o.HandshakeTimeout,
		MaxHeaderBytes:    o.MaxHeaderBytes,
		// TLS handshake errors and similar from hostile clients are noise at info level.
		ErrorLog: slog.NewLogLogger(o.Log.Handler(), slog.LevelDebug),
	}
	if o.Pending != nil {
		srv.ConnState = o.Pending.ConnState
	}
	// HTTP/2 cannot carry RFC 6455 upgrades; keep the server on HTTP/1.1.
	srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
	return srv
}
