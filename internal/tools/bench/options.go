package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"time"

	"github.com/wsgate/wsgate/internal/conn/transport"
)

// Mode is what a run measures.
type Mode string

// Modes.
const (
	// Echo: each connection sends {"type":"ping","id":k} and waits for the
	// pong (matched by "ref" when the server echoes it) before the next one.
	Echo Mode = "echo"
	// Idle: hold the connections open; with a server PID, RSS per connection.
	Idle Mode = "idle"
	// Fanout: subscribers on one channel, one publisher at a fixed rate,
	// delivery latency from the publish time carried in the payload.
	Fanout Mode = "fanout"
	// Handshake: authenticated connect, welcome, close, repeated.
	Handshake Mode = "handshake"
)

// Defaults.
const (
	DefaultDuration  = 10 * time.Second
	DefaultRamp      = 2000 // connections per second
	DefaultRate      = 100  // fan-out publications per second
	DefaultChannel   = "chat:bench"
	DefaultTimeout   = 5 * time.Second
	DefaultSettle    = 2 * time.Second
	DefaultSubPrefix = "bench-"

	maxDuration = time.Hour
	maxConns    = 1_000_000
	maxSources  = 250
	maxNodes    = 64
)

// DefaultConns is the connection count (concurrency for handshake, subscribers
// for fanout) when Options.Conns is 0.
var defaultConns = map[Mode]int{Echo: 100, Idle: 1000, Fanout: 100, Handshake: 10}

// Options configure a run. Zero fields take the documented defaults.
type Options struct {
	// URL is the ws:// or wss:// endpoint.
	URL string `json:"url"`
	// Nodes are further endpoints of the same cluster (several wsgate nodes
	// sharing one Redis): connection n goes to endpoint n mod (1+len(Nodes)),
	// counting URL as endpoint 0, so one run can load and measure all nodes.
	Nodes []string `json:"nodes,omitempty"`
	// Mode is echo, idle, fanout or handshake.
	Mode Mode `json:"mode"`
	// Conns is the number of connections (echo, idle), subscribers (fanout) or
	// concurrent handshakers (handshake). Defaults: echo 100, idle 1000,
	// fanout 100, handshake 10.
	Conns int `json:"conns"`
	// Duration bounds the measured phase. Default 10s, at most 1h.
	Duration time.Duration `json:"duration"`
	// Count, when > 0, ends the measured phase after this many round trips,
	// handshakes or publications (whichever comes first with Duration).
	Count int64 `json:"count"`
	// Rate is publications per second in fanout mode. Default 100.
	Rate float64 `json:"rate"`
	// Ramp is the rate at which connections are opened. Default 2000/s.
	Ramp float64 `json:"ramp"`
	// Channel is the fan-out channel. Default "chat:bench".
	Channel string `json:"channel"`
	// Broadcast makes fanout speak to a server that relays every message to
	// every other client (the guide's Node server): no subscribe, and the
	// publisher sends {"type":"data","payload":{...}}.
	Broadcast bool `json:"broadcast"`
	// NoWelcome: do not wait for a first server message after connecting.
	NoWelcome bool `json:"no_welcome"`
	// Sign is "" (plain messages) or "hmac": each connection fetches its
	// per-user integrity key from POST /v1/tickets on the target (same host,
	// http(s) for ws(s)) and every echo ping is sealed with the client package
	// (docs/integrity.md). Echo mode only; needs Secret (the key is per subject).
	Sign string `json:"sign,omitempty"`

	// Token is sent as "Authorization: Bearer" on every connection.
	Token string `json:"token,omitempty"`
	// Secret mints an HS256 token per connection with sub SubjectPrefix+n,
	// so that per-user quotas do not interfere. "base64:…" or raw text.
	Secret string `json:"secret,omitempty"`
	// KeyID is the JWT kid header for minted tokens (empty: none).
	KeyID string `json:"kid,omitempty"`
	// Claims are added to minted tokens. Default (nil): channel permissions
	// {"channels":{"sub":[Channel],"pub":[Channel]}}.
	Claims map[string]any `json:"claims,omitempty"`
	// SubjectPrefix of minted subjects. Default "bench-".
	SubjectPrefix string `json:"subject_prefix,omitempty"`
	// SubjectOffset is the number of the first subject (child processes).
	SubjectOffset int `json:"subject_offset,omitempty"`

	// Origin header, if set.
	Origin string `json:"origin,omitempty"`
	// Subprotocols offered in Sec-WebSocket-Protocol.
	Subprotocols []string `json:"subprotocols,omitempty"`
	// CACertFile is a PEM bundle to trust for wss://.
	CACertFile string `json:"cacert,omitempty"`
	// InsecureSkipVerify disables certificate verification for wss://.
	InsecureSkipVerify bool `json:"insecure_skip_verify,omitempty"`

	// ServerPID, when set, is sampled from /proc for CPU and RSS.
	ServerPID int `json:"server_pid,omitempty"`
	// ServerPIDs, when given, replace ServerPID for multi-node runs: one
	// process per endpoint, in the order URL, Nodes... Result.Nodes reports
	// each one (CPU, RSS, RSS per connection it holds), Result.Server their sum.
	ServerPIDs []int `json:"server_pids,omitempty"`
	// Sources is the number of 127.0.0.x source addresses connections are
	// spread over (loopback IPv4 targets only). 0: one per 16,000
	// connections, 8 for handshake mode (TIME_WAIT eats ports).
	Sources int `json:"sources,omitempty"`
	// SourceOffset shifts the source addresses to 127.0.0.(SourceOffset+1)...
	// RunProcs gives each child its own range: every source address has only
	// about 28,000 ephemeral ports, so children must not share them.
	SourceOffset int `json:"source_offset,omitempty"`
	// AllowRemote permits targets that are not loopback.
	AllowRemote bool `json:"allow_remote,omitempty"`
	// Timeout bounds each reply (pong, welcome, ack). Default 5s.
	Timeout time.Duration `json:"timeout,omitempty"`
	// Settle is the pause after the ramp before the server's memory is read
	// (idle and fanout modes; fanout publishes after it). Default 2s.
	Settle time.Duration `json:"settle,omitempty"`

	// NoPublisher: this process only subscribes (fanout children but the first).
	NoPublisher bool `json:"no_publisher,omitempty"`

	// Progress receives the ramp progress line (nil: none).
	Progress io.Writer `json:"-"`
	// Resolver looks up host names for the loopback check (nil: net.DefaultResolver).
	Resolver *net.Resolver `json:"-"`
}

// Validate checks the options without touching the network.
func (o *Options) Validate() error {
	var errs []error
	if _, err := transport.ParseURL(o.URL); err != nil {
		errs = append(errs, fmt.Errorf("url: %w", err))
	}
	for i, n := range o.Nodes {
		if _, err := transport.ParseURL(n); err != nil {
			errs = append(errs, fmt.Errorf("node %d: %w", i+1, err))
		}
	}
	if len(o.Nodes) > maxNodes {
		errs = append(errs, fmt.Errorf("%d nodes: at most %d", len(o.Nodes), maxNodes))
	}
	switch o.Mode {
	case Echo, Idle, Fanout, Handshake:
	default:
		errs = append(errs, fmt.Errorf("mode %q: want echo, idle, fanout or handshake", o.Mode))
	}
	switch o.Sign {
	case "":
	case "hmac":
		if o.Mode != Echo {
			errs = append(errs, errors.New("sign: echo mode only"))
		}
		if o.Secret == "" {
			errs = append(errs, errors.New("sign: needs --secret (a token per subject: the key is derived from it)"))
		}
	default:
		errs = append(errs, fmt.Errorf("sign %q: want hmac or nothing", o.Sign))
	}
	if o.Conns < 0 || o.Conns > maxConns {
		errs = append(errs, fmt.Errorf("conns %d out of range 0..%d", o.Conns, maxConns))
	}
	if o.Duration < 0 || o.Duration > maxDuration {
		errs = append(errs, fmt.Errorf("duration %s out of range 0..%s", o.Duration, maxDuration))
	}
	if o.Count < 0 {
		errs = append(errs, fmt.Errorf("count %d is negative", o.Count))
	}
	if o.Rate < 0 || o.Rate > 1e6 {
		errs = append(errs, fmt.Errorf("rate %g out of range 0..1e6", o.Rate))
	}
	if o.Ramp < 0 || o.Ramp > 1e6 {
		errs = append(errs, fmt.Errorf("ramp %g out of range 0..1e6", o.Ramp))
	}
	if o.Token != "" && o.Secret != "" {
		errs = append(errs, errors.New("give --token or --secret, not both"))
	}
	if o.Sources < 0 || o.Sources > maxSources {
		errs = append(errs, fmt.Errorf("sources %d out of range 0..%d", o.Sources, maxSources))
	}
	if o.SourceOffset < 0 || o.SourceOffset+o.Sources > maxSources {
		errs = append(errs, fmt.Errorf("source offset %d out of range 0..%d", o.SourceOffset, maxSources-o.Sources))
	}
	if o.Timeout < 0 || o.Settle < 0 {
		errs = append(errs, errors.New("timeouts must not be negative"))
	}
	if o.ServerPID < 0 {
		errs = append(errs, fmt.Errorf("server pid %d is negative", o.ServerPID))
	}
	if n := len(o.ServerPIDs); n > 0 && n != 1+len(o.Nodes) {
		errs = append(errs, fmt.Errorf("%d server pids for %d endpoints: give one per endpoint (URL, then each node)", n, 1+len(o.Nodes)))
	}
	for _, p := range o.ServerPIDs {
		if p <= 0 {
			errs = append(errs, fmt.Errorf("server pid %d is not positive", p))
			break
		}
	}
	if o.CACertFile != "" && o.InsecureSkipVerify {
		errs = append(errs, errors.New("give --cacert or --insecure, not both"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("bench options: %w", err)
	}
	return nil
}

func (o Options) withDefaults() Options {
	o.Conns = cmp.Or(o.Conns, defaultConns[o.Mode])
	o.Duration = cmp.Or(o.Duration, DefaultDuration)
	o.Rate = cmp.Or(o.Rate, DefaultRate)
	o.Ramp = cmp.Or(o.Ramp, DefaultRamp)
	o.Channel = cmp.Or(o.Channel, DefaultChannel)
	o.Timeout = cmp.Or(o.Timeout, DefaultTimeout)
	o.Settle = cmp.Or(o.Settle, DefaultSettle)
	o.SubjectPrefix = cmp.Or(o.SubjectPrefix, DefaultSubPrefix)
	if o.Claims == nil && o.Secret != "" {
		o.Claims = map[string]any{"channels": map[string]any{"sub": []string{o.Channel}, "pub": []string{o.Channel}}}
	}
	return o
}

// CheckTarget refuses hosts (URL and every node) that do not resolve to
// loopback only, unless AllowRemote is set.
func (o *Options) CheckTarget(ctx context.Context) error {
	if o.AllowRemote {
		return nil
	}
	for _, t := range o.targets() {
		if err := o.checkLoopback(ctx, t); err != nil {
			return err
		}
	}
	return nil
}

// targets are the endpoints in connection order: URL, then Nodes.
func (o *Options) targets() []string { return append([]string{o.URL}, o.Nodes...) }

// pids are the server processes to sample, one per endpoint or just one.
func (o *Options) pids() []int {
	if len(o.ServerPIDs) > 0 {
		return o.ServerPIDs
	}
	if o.ServerPID > 0 {
		return []int{o.ServerPID}
	}
	return nil
}

func (o *Options) checkLoopback(ctx context.Context, target string) error {
	u, err := url.Parse(target)
	if err != nil {
		return fmt.Errorf("url: %w", err)
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); ip != nil {
		if !ip.IsLoopback() {
			return fmt.Errorf("%s is not a loopback address: load tests only target servers you own; pass --allow-remote to confirm", host)
		}
		return nil
	}
	r := o.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	addrs, err := r.LookupIPAddr(ctx, host)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", host, err)
	}
	for _, a := range addrs {
		if !a.IP.IsLoopback() {
			return fmt.Errorf("%s resolves to %s, not loopback: pass --allow-remote to confirm you own it", host, a.IP)
		}
	}
	if len(addrs) == 0 {
		return fmt.Errorf("resolve %s: no addresses", host)
	}
	return nil
}
