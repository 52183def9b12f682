package hook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/wsgate/wsgate/internal/defaults"
	"github.com/wsgate/wsgate/internal/route/upstream"
)

// HeaderBodySignature binds a hook request's body to its identity headers:
// "v1=" + hex HMAC-SHA256(key, "wsgate-hook-v1\n" + kind + "\n" +
// X-Wsgate-Signature + "\n" + hex(SHA-256(body))). The identity headers
// themselves (X-Wsgate-User, -Claims, -Conn-Id, -Client-Ip, -Timestamp,
// -Signature) are set by upstream.SignIdentity, exactly as on a gateway
// route's upgrade request, so one verifier serves both.
const HeaderBodySignature = "X-Wsgate-Hook-Signature"

// HeaderKind names the hook kind of a request (connect, subscribe, publish).
const HeaderKind = "X-Wsgate-Hook"

// HTTPOptions configure an HTTP backend.
type HTTPOptions struct {
	URL string
	// Key signs every request (identity headers and body). Required.
	Key []byte
	// MaxResponseBytes caps a response body; longer ones are a failure.
	// Default DefaultMaxResponseBytes.
	MaxResponseBytes int64
	// Client sends the requests; default a client that follows no redirects.
	Client *http.Client
}

// HTTP POSTs each call as JSON to one URL and decodes the JSON answer
// strictly (unknown fields, trailing data, a missing "allow" or a non-200
// status are failures).
type HTTP struct {
	url    string
	key    []byte
	max    int64
	client *http.Client

	mu     sync.Mutex
	calls  int  // in flight
	closed bool // Close was called: the last call to end drops the idle connections again
}

// NewHTTP checks o and returns the backend.
func NewHTTP(o HTTPOptions) (*HTTP, error) {
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("hook: url must be http(s), got %q", o.URL)
	}
	if len(o.Key) < 32 {
		return nil, errors.New("hook: signing key must be at least 32 bytes")
	}
	defaults.Positive(&o.MaxResponseBytes, DefaultMaxResponseBytes)
	c := o.Client
	if c == nil {
		c = &http.Client{
			// A redirect would send the signed identity somewhere not configured.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			Transport:     &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second},
		}
	}
	return &HTTP{url: o.URL, key: append([]byte(nil), o.Key...), max: o.MaxResponseBytes, client: c}, nil
}

// wire is what goes on the wire: the event plus the raw payload of a publish.
type wireReq struct {
	Kind     string          `json:"kind"`
	User     string          `json:"user"`
	ConnID   string          `json:"conn_id"`
	ClientIP string          `json:"client_ip,omitempty"`
	Claims   map[string]any  `json:"claims,omitempty"`
	Tier     string          `json:"tier,omitempty"`
	Channel  string          `json:"channel,omitempty"`
	Payload  json.RawMessage `json:"payload,omitempty"`
}

type wireReply struct {
	Allow    *bool           `json:"allow"`
	Reason   string          `json:"reason"`
	Channels *Channels       `json:"channels"`
	Tier     string          `json:"tier"`
	Payload  json.RawMessage `json:"payload"`
}

// Close drops the backend's idle connections, at shutdown or when a reload
// replaced the hook. Calls still in flight (they started under the old
// configuration) finish; the connections they used are dropped when the last
// of them ends, so a closed backend keeps no connection, and no connection
// goroutine, alive. A call made after Close still works and is cleaned up the
// same way.
func (b *HTTP) Close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.client.CloseIdleConnections()
}

func (b *HTTP) begin() {
	b.mu.Lock()
	b.calls++
	b.mu.Unlock()
}

// end runs after the call's response body is closed. Its connection may reach
// the idle pool a moment later; CloseIdleConnections also makes the transport
// close connections that become idle until its next request, which covers that.
func (b *HTTP) end() {
	b.mu.Lock()
	b.calls--
	last := b.closed && b.calls == 0
	b.mu.Unlock()
	if last {
		b.client.CloseIdleConnections()
	}
}

// Call implements Backend.
func (b *HTTP) Call(ctx context.Context, kind string, ev, out any) error {
	w := wireReq{Kind: kind}
	var id Identity
	switch e := ev.(type) {
	case *ConnectEvent:
		id, w.Tier = e.Identity, e.Tier
	case *SubscribeEvent:
		id, w.Channel = e.Identity, e.Channel
	case *PublishEvent:
		id, w.Channel, w.Payload = e.Identity, e.Channel, e.Payload
	default:
		return fmt.Errorf("hook: unknown event %T", ev)
	}
	w.User, w.ConnID, w.ClientIP, w.Claims = id.User, id.ConnID, id.ClientIP, id.Claims
	body, err := json.Marshal(w)
	if err != nil {
		return fmt.Errorf("hook: encode %s request: %w", kind, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("hook: %s request: %w", kind, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if _, err := upstream.SignIdentity(req.Header, b.key, upstream.Identity{User: id.User, Claims: id.Claims, ConnID: id.ConnID, ClientIP: id.ClientIP}, 0); err != nil {
		return fmt.Errorf("hook: sign %s request: %w", kind, err)
	}
	req.Header.Set(HeaderKind, kind)
	req.Header.Set(HeaderBodySignature, "v1="+hex.EncodeToString(bodyMAC(b.key, kind, req.Header.Get(upstream.HeaderSignature), body)))
	b.begin()
	defer b.end() // after the body's Close below
	resp, err := b.client.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrBackend, kind, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, b.max+1))
	if err != nil {
		return fmt.Errorf("%w: %s: read: %w", ErrBackend, kind, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: %s: status %d", ErrBackend, kind, resp.StatusCode)
	}
	if int64(len(data)) > b.max {
		return fmt.Errorf("%w: %s: response over %d bytes", ErrBadResponse, kind, b.max)
	}
	return decodeReply(kind, data, out)
}

// decodeReply decodes a backend's answer strictly into out.
func decodeReply(kind string, data []byte, out any) error {
	var r wireReply
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrBadResponse, kind, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: %s: trailing data", ErrBadResponse, kind)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: %s: trailing data", ErrBadResponse, kind)
	}
	if r.Allow == nil {
		return fmt.Errorf("%w: %s: no \"allow\"", ErrBadResponse, kind)
	}
	bad := func(field string) error {
		return fmt.Errorf("%w: %s: %q is not allowed in a %s reply", ErrBadResponse, kind, field, kind)
	}
	switch o := out.(type) {
	case *ConnectReply:
		if r.Payload != nil {
			return bad("payload")
		}
		*o = ConnectReply{Allow: *r.Allow, Reason: r.Reason, Channels: r.Channels, Tier: r.Tier}
	case *SubscribeReply:
		switch {
		case r.Payload != nil:
			return bad("payload")
		case r.Channels != nil:
			return bad("channels")
		case r.Tier != "":
			return bad("tier")
		}
		*o = SubscribeReply{Allow: *r.Allow, Reason: r.Reason}
	case *PublishReply:
		switch {
		case r.Channels != nil:
			return bad("channels")
		case r.Tier != "":
			return bad("tier")
		}
		if r.Payload != nil && (bytes.Equal(bytes.TrimSpace(r.Payload), []byte("null")) || !json.Valid(r.Payload)) {
			return fmt.Errorf("%w: %s: payload is not a JSON value", ErrBadResponse, kind)
		}
		*o = PublishReply{Allow: *r.Allow, Reason: r.Reason}
		if r.Payload != nil {
			o.Payload = append([]byte(nil), r.Payload...)
		}
	default:
		return fmt.Errorf("hook: unknown reply %T", out)
	}
	return nil
}

func bodyMAC(key []byte, kind, identitySig string, body []byte) []byte {
	sum := sha256.Sum256(body)
	m := hmac.New(sha256.New, key)
	m.Write([]byte("wsgate-hook-v1\n" + kind + "\n" + identitySig + "\n" + hex.EncodeToString(sum[:])))
	return m.Sum(nil)
}

// ErrBadBodySignature means a hook request's body does not match its signature.
var ErrBadBodySignature = errors.New("hook: body signature mismatch")

// VerifyRequest is for backend authors in Go: it checks the identity headers
// (upstream.VerifyIdentity: signature, then timestamp within maxSkew) and the
// body signature, and returns the identity and the hook kind. Refuse the
// request on any error.
func VerifyRequest(h http.Header, body, key []byte, maxSkew time.Duration) (upstream.Identity, string, error) {
	id, err := upstream.VerifyIdentity(h, key, maxSkew)
	if err != nil {
		return upstream.Identity{}, "", fmt.Errorf("hook: identity: %w", err)
	}
	kind := h.Get(HeaderKind)
	s, ok := stringsCutPrefix(h.Get(HeaderBodySignature), "v1=")
	got, err := hex.DecodeString(s)
	if !ok || err != nil || !hmac.Equal(got, bodyMAC(key, kind, h.Get(upstream.HeaderSignature), body)) {
		return upstream.Identity{}, "", ErrBadBodySignature
	}
	return id, kind, nil
}

func stringsCutPrefix(s, p string) (string, bool) {
	if len(s) >= len(p) && s[:len(p)] == p {
		return s[len(p):], true
	}
	return s, false
}

// Funcs are Go hook functions for embedders; a nil field means no hook of
// that kind.
type Funcs struct {
	Connect   func(ctx context.Context, ev ConnectEvent) (ConnectReply, error)
	Subscribe func(ctx context.Context, ev SubscribeEvent) (SubscribeReply, error)
	Publish   func(ctx context.Context, ev PublishEvent) (PublishReply, error)
}

// funcBackend adapts Funcs to Backend. The function runs on the caller's
// goroutine with the hook's timeout in ctx: it must return when ctx ends (a
// function that ignores ctx holds its caller, and one concurrency slot, for as
// long as it runs).
type funcBackend struct{ f Funcs }

// NewFunc returns the Backend for kind from f (nil when f has none).
func NewFunc(kind string, f Funcs) Backend {
	switch {
	case kind == KindConnect && f.Connect != nil, kind == KindSubscribe && f.Subscribe != nil, kind == KindPublish && f.Publish != nil:
		return funcBackend{f}
	}
	return nil
}

func (b funcBackend) Call(ctx context.Context, kind string, ev, out any) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("%w: %s hook panicked: %v", ErrBackend, kind, v)
		}
	}()
	switch e := ev.(type) {
	case *ConnectEvent:
		var r ConnectReply
		if r, err = b.f.Connect(ctx, *e); err == nil {
			*out.(*ConnectReply) = r
		}
	case *SubscribeEvent:
		var r SubscribeReply
		if r, err = b.f.Subscribe(ctx, *e); err == nil {
			*out.(*SubscribeReply) = r
		}
	case *PublishEvent:
		var r PublishReply
		if r, err = b.f.Publish(ctx, *e); err == nil {
			if r.Payload != nil && !json.Valid(r.Payload) {
				return fmt.Errorf("%w: publish: payload is not JSON", ErrBadResponse)
			}
			*out.(*PublishReply) = r
		}
	default:
		return fmt.Errorf("hook: unknown event %T", ev)
	}
	if err == nil && ctx.Err() != nil {
		// Answered after the deadline: too late to count as an answer.
		err = ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrBackend, kind, err)
	}
	return nil
}
