package check

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/wsgate/wsgate/internal/conn/transport"
)

// Defaults applied to zero fields of Options.
const (
	DefaultTimeout        = 5 * time.Second
	DefaultReplyWait      = 2 * time.Second
	DefaultIdleWait       = 5 * time.Second
	DefaultFloodMessages  = 2000
	DefaultFloodWindow    = 2 * time.Second
	DefaultFloodConns     = 60
	DefaultCertExpiryWarn = 14 * 24 * time.Hour
	DefaultSubject        = "wsgate-check"
	DefaultMessage        = `{"type":"ping"}`
	DefaultKeepaliveWait  = 10 * time.Second
	DefaultSlowWait       = 12 * time.Second
	DefaultSlotCycles     = 12
	DefaultHeldConns      = 24
)

// Hard bounds: whatever the flags say, a run stays a probe, not a load test.
const (
	maxFloodMessages = 20000
	maxFloodWindow   = 10 * time.Second
	maxFloodConns    = 500
	maxIdleWait      = 10 * time.Minute
	maxPlainPorts    = 4
	maxSlowWait      = 2 * time.Minute
	maxSlotCycles    = 200
	maxHeldConns     = 200
)

// Options configure one audit. The zero value plus URL is usable: zero fields
// take the documented defaults.
type Options struct {
	// URL is the ws:// or wss:// endpoint to audit.
	URL string
	// AllowRemote permits a target that does not resolve to loopback only.
	AllowRemote bool

	// Token is a valid credential for the target, used by the checks that
	// need an accepted connection and as the base of derived bad tokens.
	Token string
	// TokenVia says how the credential travels: "header" (Authorization:
	// Bearer, the default), "subprotocol" (Sec-WebSocket-Protocol
	// "token.<jwt>", needs Subprotocols), "query" (?token=) or
	// "cookie:NAME".
	TokenVia string
	// Secret is an HMAC secret ("base64:…" or raw, as `wsgate token` reads
	// it). With it the tool mints valid and bad tokens itself.
	Secret string
	// KeyPEM is a PEM private key (RSA, ECDSA or Ed25519) to mint tokens with
	// instead of Secret.
	KeyPEM []byte
	// Alg overrides the signing algorithm (default HS256 for a secret, RS256,
	// ES256/384/512 or EdDSA by key type).
	Alg string
	// Kid is put in the header of minted tokens.
	Kid string
	// Subject is the sub of minted tokens. Default "wsgate-check".
	Subject string
	// Claims are merged into minted tokens (iss, aud, …).
	Claims map[string]any

	// CACertPEM holds CAs to trust for wss:// targets, besides nothing else
	// (the system roots are used when it is empty).
	CACertPEM []byte
	// Insecure skips certificate verification on the probes (the TLS check
	// still reports the certificate).
	Insecure bool
	// Origin is the legitimate Origin to send; cross-site probes use others.
	Origin string
	// Subprotocols are offered on every connection (e.g. "wsgate.v1").
	Subprotocols []string
	// Message is a valid application message the server answers (default
	// {"type":"ping"}); the flood sends it.
	Message string

	// Timeout bounds each connection attempt. Default 5s.
	Timeout time.Duration
	// ReplyWait is how long a probe waits for a reaction to what it sent.
	// Default 2s.
	ReplyWait time.Duration
	// IdleWait is how long the idle check waits for the server to close a
	// silent connection. Default 5s.
	IdleWait time.Duration
	// FloodMessages and FloodWindow bound the message flood: at most this
	// many messages, sent within this window. Defaults 2000 and 2s.
	FloodMessages int
	FloodWindow   time.Duration
	// FloodConns is the number of concurrent connections of the connection
	// flood. Default 60.
	FloodConns int
	// PlainPorts are extra ports tried with ws:// when the target is wss://
	// (the target's own port is always tried). At most 4.
	PlainPorts []int
	// CertExpiryWarn: a certificate expiring sooner is a WARN. Default 14 days.
	CertExpiryWarn time.Duration
	// SigningKey is the integrity key object {"alg":"HS256","kid":…,"key":…}
	// for the replay check; without it the check is skipped.
	SigningKey []byte

	// KeepaliveWait is how long the keepalive check waits for a server
	// ping. Default 10s (wsgate pings every 25s: raise it to confirm).
	KeepaliveWait time.Duration
	// SlowWait is how long the slowloris check drips a request head before
	// concluding the server holds it open. Default 12s.
	SlowWait time.Duration
	// SlotCycles bounds the connect/close cycles of the slot-leak check.
	// Default 12.
	SlotCycles int
	// HeldConns bounds the connections the XFF check holds open from one
	// address to find a per-address limit. Default 24.
	HeldConns int
	// Amplification enables the broadcast/slow-reader probe (it sends
	// chat messages other clients may see). Off by default.
	Amplification bool
	// NoIsolation makes every probe use the system's source address even
	// against loopback targets.
	NoIsolation bool
	// Profile encodes the team's expectations (e.g. binary frames are part
	// of the protocol); nil: the defaults of the guide.
	Profile *Profile

	// Only and Skip select checks by name.
	Only, Skip []string
	// Progress receives one line per check as it starts (stderr in the CLI).
	Progress io.Writer
}

// Validate reports options that cannot work.
func (o *Options) Validate() error {
	var errs []error
	if _, err := transport.ParseURL(o.URL); err != nil {
		errs = append(errs, fmt.Errorf("target URL: %w", err))
	}
	if o.Secret != "" && len(o.KeyPEM) > 0 {
		errs = append(errs, errors.New("give --secret or --key, not both"))
	}
	switch v := o.TokenVia; {
	case v == "", v == "header", v == "query":
	case v == "subprotocol":
		if len(o.Subprotocols) == 0 {
			errs = append(errs, errors.New("token via subprotocol needs an application --subprotocol for the server to pick"))
		}
	case strings.HasPrefix(v, "cookie:") && len(v) > len("cookie:"):
	default:
		errs = append(errs, fmt.Errorf("token via %q: want header, subprotocol, query or cookie:NAME", v))
	}
	if o.SlowWait > maxSlowWait || o.KeepaliveWait > maxSlowWait {
		errs = append(errs, fmt.Errorf("slow and keepalive waits are at most %s", maxSlowWait))
	}
	if o.SlotCycles < 0 || o.SlotCycles > maxSlotCycles {
		errs = append(errs, fmt.Errorf("slot cycles %d out of range 0..%d", o.SlotCycles, maxSlotCycles))
	}
	if o.HeldConns < 0 || o.HeldConns > maxHeldConns {
		errs = append(errs, fmt.Errorf("held connections %d out of range 0..%d", o.HeldConns, maxHeldConns))
	}
	for _, d := range []time.Duration{o.Timeout, o.ReplyWait, o.IdleWait, o.FloodWindow, o.CertExpiryWarn, o.KeepaliveWait, o.SlowWait} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("duration %s is negative", d))
		}
	}
	if o.FloodMessages < 0 || o.FloodMessages > maxFloodMessages {
		errs = append(errs, fmt.Errorf("flood messages %d out of range 0..%d", o.FloodMessages, maxFloodMessages))
	}
	if o.FloodWindow > maxFloodWindow {
		errs = append(errs, fmt.Errorf("flood window %s exceeds %s", o.FloodWindow, maxFloodWindow))
	}
	if o.FloodConns < 0 || o.FloodConns > maxFloodConns {
		errs = append(errs, fmt.Errorf("flood connections %d out of range 0..%d", o.FloodConns, maxFloodConns))
	}
	if o.IdleWait > maxIdleWait {
		errs = append(errs, fmt.Errorf("idle wait %s exceeds %s", o.IdleWait, maxIdleWait))
	}
	if len(o.PlainPorts) > maxPlainPorts {
		errs = append(errs, fmt.Errorf("at most %d plaintext ports", maxPlainPorts))
	}
	for _, p := range o.PlainPorts {
		if p < 1 || p > 65535 {
			errs = append(errs, fmt.Errorf("plaintext port %d out of range", p))
		}
	}
	names := append(slices.Clone(o.Only), o.Skip...)
	if o.Profile != nil {
		names = append(names, o.Profile.ids()...)
	}
	for _, n := range names {
		if checkByName(n) == nil {
			errs = append(errs, fmt.Errorf("unknown check %q (known: %s)", n, strings.Join(CheckNames(), ", ")))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("check options: %w", err)
	}
	return nil
}

// withDefaults returns a copy with zero fields defaulted.
func (o Options) withDefaults() Options {
	o.TokenVia = cmp.Or(o.TokenVia, "header")
	o.Subject = cmp.Or(o.Subject, DefaultSubject)
	o.Message = cmp.Or(o.Message, DefaultMessage)
	o.Timeout = cmp.Or(o.Timeout, DefaultTimeout)
	o.ReplyWait = cmp.Or(o.ReplyWait, DefaultReplyWait)
	o.IdleWait = cmp.Or(o.IdleWait, DefaultIdleWait)
	o.FloodMessages = cmp.Or(o.FloodMessages, DefaultFloodMessages)
	o.FloodWindow = cmp.Or(o.FloodWindow, DefaultFloodWindow)
	o.FloodConns = cmp.Or(o.FloodConns, DefaultFloodConns)
	o.KeepaliveWait = cmp.Or(o.KeepaliveWait, DefaultKeepaliveWait)
	o.SlowWait = cmp.Or(o.SlowWait, DefaultSlowWait)
	o.SlotCycles = cmp.Or(o.SlotCycles, DefaultSlotCycles)
	o.HeldConns = cmp.Or(o.HeldConns, DefaultHeldConns)
	o.CertExpiryWarn = cmp.Or(o.CertExpiryWarn, DefaultCertExpiryWarn)
	return o
}
