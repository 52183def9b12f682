package client

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net/http"
	"time"
)

// TokenFunc returns a current token (JWT). The client calls it before every
// connection attempt and before the token expires, so it may fetch a new one.
type TokenFunc func(ctx context.Context) (string, error)

// Credential is where the client puts the token in the handshake. Never in
// the URL.
type Credential int

const (
	// CredentialHeader sends "Authorization: Bearer <jwt>" (the default).
	CredentialHeader Credential = iota
	// CredentialSubprotocol sends "Sec-WebSocket-Protocol: wsgate.v1, bearer, <jwt>"
	// (for platforms that cannot set headers).
	CredentialSubprotocol
	// CredentialTicket posts the token to /v1/tickets and connects with the
	// one-time ticket it returns (the browser flow).
	CredentialTicket
)

// Integrity modes for DialOptions.Integrity.
const (
	IntegrityOff  = ""
	IntegrityHMAC = "hmac"
	IntegrityPop  = "pop"
)

// DialOptions configure Dial. The zero value (plus Token) is right for most uses.
type DialOptions struct {
	// Token returns the credential; required.
	Token TokenFunc
	// Credential is where the token goes; default CredentialHeader.
	Credential Credential
	// RootCAs adds trust for a private CA (e.g. `serve --dev`'s certificate).
	// Verification is always on unless TLSConfig says otherwise.
	RootCAs *x509.CertPool
	// TLSConfig, when set, is used as is (RootCAs is then ignored).
	TLSConfig *tls.Config
	// Header is added to the upgrade request (e.g. Origin).
	Header http.Header
	// HTTPClient posts tickets and fetches keys; default: one with the same TLS
	// settings and a 10 s timeout.
	HTTPClient *http.Client

	// MinBackoff and MaxBackoff bound the reconnect delay: attempt n waits a
	// random time in [0, min(MaxBackoff, MinBackoff·2ⁿ)] (full jitter).
	// Defaults 250 ms and 30 s.
	MinBackoff, MaxBackoff time.Duration
	// RequestTimeout bounds a request when its context has no deadline; default 10 s.
	RequestTimeout time.Duration
	// QueueSize bounds messages kept while disconnected (default 256). They are
	// sent oldest first after reconnecting; a full queue refuses new messages
	// with ErrQueueFull.
	QueueSize int
	// EventQueue bounds events not yet handled (default 1024). When full, reading
	// from the server pauses until handlers catch up (backpressure, never loss);
	// a handler that then waits for a reply waits until its request times out.
	EventQueue int
	// MaxMessageBytes caps a message read from the server; default 1 MiB.
	MaxMessageBytes int

	// Integrity signs every message but ping: IntegrityHMAC (the per-user key
	// comes from /v1/tickets on each connect) or IntegrityPop (PopKey signs;
	// the token must carry its thumbprint as cnf.jkt).
	Integrity string
	// PopKey is the pop private key: ed25519.PrivateKey or P-256 *ecdsa.PrivateKey.
	PopKey crypto.Signer
	// VerifyServer checks messages the server signed (namespaces with
	// sign_output) against /.well-known/wsgate-keys.json, fetched on each
	// connect, and drops (with an EventError) those that fail.
	VerifyServer bool
	// Encryption seals and opens end_to_end channels with application keys;
	// nil leaves every payload as the server sends it.
	Encryption *Encryption
	// TicketURL overrides where tickets are posted; default the WebSocket URL's
	// origin + /v1/tickets.
	TicketURL string

	// OnEvent receives client events, one at a time, in order, on the client's
	// event goroutine (shared with subscription handlers). It may call client
	// methods.
	OnEvent func(Event)
	// Logger gets debug logs; default slog.Default(). Tokens are never logged.
	Logger *slog.Logger
}

func (o *DialOptions) withDefaults() DialOptions {
	c := *o
	if c.MinBackoff <= 0 {
		c.MinBackoff = 250 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 30 * time.Second
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = c.MinBackoff
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 10 * time.Second
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 256
	}
	if c.EventQueue <= 0 {
		c.EventQueue = 1024
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = 1 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.TLSConfig == nil {
		c.TLSConfig = &tls.Config{RootCAs: c.RootCAs, MinVersion: tls.VersionTLS12}
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: c.TLSConfig.Clone()}}
	}
	return c
}
