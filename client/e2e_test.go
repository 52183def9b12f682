package client_test

// End-to-end tests of the reconnecting client against real wsgate servers
// started in-process on loopback (internal/tools/wsgatetest), with real TLS,
// the real admin API and, for restarts, a real redis-server.

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wsgate/wsgate/client"
	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/conn/integrity"
	"github.com/wsgate/wsgate/internal/state/redis/redistest"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest"
)

const wait = 15 * time.Second

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var chatClaims = map[string]any{"channels": map[string]any{"sub": []string{"chat:*"}, "pub": []string{"chat:*"}}}

// recorder collects events and messages for bounded waits.
type recorder struct {
	events chan client.Event
	msgs   chan client.Message
	rf     chan client.RecoveryFailed
}

func newRecorder() *recorder {
	return &recorder{events: make(chan client.Event, 1000), msgs: make(chan client.Message, 1000), rf: make(chan client.RecoveryFailed, 10)}
}

func (r *recorder) onEvent(e client.Event) {
	select {
	case r.events <- e:
	default:
	}
}

func (r *recorder) subOpts() *client.SubscribeOptions {
	return &client.SubscribeOptions{
		OnMessage:        func(m client.Message) { r.msgs <- m },
		OnRecoveryFailed: func(rf client.RecoveryFailed) { r.rf <- rf },
	}
}

// event waits for an event of kind.
func (r *recorder) event(t *testing.T, kind client.EventKind) client.Event {
	t.Helper()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		select {
		case e := <-r.events:
			if e.Kind == kind {
				return e
			}
		case <-deadline.C:
			t.Fatalf("no %q event within %s", kind, wait)
		}
	}
}

// texts waits for n messages and returns their payload texts.
func (r *recorder) texts(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for len(out) < n {
		select {
		case m := <-r.msgs:
			var p struct{ Text string }
			_ = json.Unmarshal(m.Payload, &p)
			out = append(out, p.Text)
		case <-deadline.C:
			t.Fatalf("got %d of %d messages within %s: %v", len(out), n, wait, out)
		}
	}
	return out
}

func (r *recorder) noMoreMessages(t *testing.T) {
	t.Helper()
	select {
	case m := <-r.msgs:
		t.Fatalf("unexpected extra message %s at %d", m.Payload, m.Offset)
	default:
	}
}

func opts(s *wsgatetest.Server, tok client.TokenFunc, r *recorder) *client.DialOptions {
	o := &client.DialOptions{Token: tok, RootCAs: s.RootCAs, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}
	if r != nil {
		o.OnEvent = r.onEvent
	}
	return o
}

func staticToken(t *testing.T, s *wsgatetest.Server, sub string) client.TokenFunc {
	return func(context.Context) (string, error) { return s.Token(t, sub, chatClaims), nil }
}

func dial(t testing.TB, s *wsgatetest.Server, o *client.DialOptions) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := client.Dial(ctx, s.URL, o)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

func publishN(t *testing.T, c *client.Client, channel, prefix string, n int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		if _, err := c.Publish(ctxT(t), channel, map[string]any{"text": fmt.Sprintf("%s%d", prefix, i)}); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
}

// published is the texts publishN sends.
func published(prefix string, n int) []string {
	var s []string
	for i := 1; i <= n; i++ {
		s = append(s, fmt.Sprintf("%s%d", prefix, i))
	}
	return s
}

// expectTexts fails unless the texts of the next messages are want.
func (r *recorder) expectTexts(t *testing.T, want ...string) {
	t.Helper()
	if got := r.texts(t, len(want)); !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// expectLive publishes "live1" on channel from pub and expects it.
func (r *recorder) expectLive(t *testing.T, pub *client.Client, channel string) {
	t.Helper()
	publishN(t, pub, channel, "live", 1)
	r.expectTexts(t, "live1")
}

// gate lets a test hold a client away from the server: the token getter
// blocks on every call after the first until the test opens it.
type gate struct {
	calls atomic.Int32
	open  chan struct{}
	once  sync.Once
}

func newGate() *gate { return &gate{open: make(chan struct{})} }

func (g *gate) wrap(f client.TokenFunc) client.TokenFunc {
	return func(ctx context.Context) (string, error) {
		if g.calls.Add(1) > 1 {
			select {
			case <-g.open:
			case <-ctx.Done():
				return "", ctx.Err()
			}
		}
		return f(ctx)
	}
}

func (g *gate) release() { g.once.Do(func() { close(g.open) }) }

func kick(t *testing.T, s *wsgatetest.Server, connID string) {
	t.Helper()
	adminPost(t, s, "/api/v1/connections/"+connID+"/kick", `{"note":"test"}`)
}

// adminPost posts a JSON body to the admin API and expects 200.
func adminPost(t *testing.T, s *wsgatetest.Server, path, body string) {
	t.Helper()
	req, _ := http.NewRequest("POST", s.AdminURL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+s.Cfg.Admin.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST %s: %d", path, resp.StatusCode)
	}
}

func TestCredentialPlacements(t *testing.T) {
	s := wsgatetest.Start(t, nil)
	for name, cred := range map[string]client.Credential{"header": client.CredentialHeader, "subprotocol": client.CredentialSubprotocol, "ticket": client.CredentialTicket} {
		t.Run(name, func(t *testing.T) {
			o := opts(s, staticToken(t, s, "cred-"+name), nil)
			o.Credential = cred
			c := dial(t, s, o)
			if w := c.Welcome(); w.User != "cred-"+name || w.ConnID == "" || w.ExpiresAt == 0 {
				t.Fatalf("welcome %+v", w)
			}
			if err := c.Ping(ctxT(t)); err != nil {
				t.Fatal(err)
			}
		})
	}
	if strings.Contains(s.Logs.String(), "ticket=") {
		t.Fatal("a ticket reached the log")
	}
}

func TestPubSubRequestsAndTypedErrors(t *testing.T) {
	s := wsgatetest.Start(t, nil)
	ra := newRecorder()
	a := dial(t, s, opts(s, staticToken(t, s, "alice"), ra))
	b := dial(t, s, opts(s, func(context.Context) (string, error) {
		return s.Token(t, "bob", map[string]any{"channels": map[string]any{"sub": []string{"chat:*"}, "pub": []string{"chat:lobby"}}}), nil
	}, nil))
	sub, err := a.Subscribe(ctxT(t), "chat:lobby", ra.subOpts())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Subscribe(ctxT(t), "chat:lobby", nil); err != nil {
		t.Fatal(err)
	}
	publishN(t, b, "chat:lobby", "m", 3)
	ra.expectTexts(t, published("m", 3)...)
	if p := sub.Position(); p.Offset != 3 || p.Epoch == "" {
		t.Fatalf("position %+v", p)
	}
	users, err := sub.Presence(ctxT(t))
	if err != nil || len(users) != 2 {
		t.Fatalf("presence %v %v", users, err)
	}
	h, err := sub.History(ctxT(t), &client.HistoryOptions{Since: &client.Position{Offset: 1, Epoch: sub.Position().Epoch}})
	if err != nil || len(h.Publications) != 2 || h.Publications[0].Offset != 2 {
		t.Fatalf("history %+v %v", h, err)
	}
	// The server's refusal is a typed error.
	_, err = b.Publish(ctxT(t), "chat:private", map[string]any{"text": "x"})
	var se *client.ServerError
	if !errors.As(err, &se) || se.Code != "permission_denied" {
		t.Fatalf("publish without permission: %v", err)
	}
	_, err = a.Subscribe(ctxT(t), "nope:x", nil)
	if !errors.As(err, &se) || se.Code != "unknown_namespace" {
		t.Fatalf("subscribe unknown namespace: %v", err)
	}
	if _, err := a.Command(ctxT(t), "add", map[string]int{"a": 1}); !errors.As(err, &se) || se.Code != "command_unavailable" {
		t.Fatalf("command without backend: %v", err)
	}
	// A request that cannot be answered in time times out (the context ends first).
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	if err := a.Ping(ctx); !errors.Is(err, client.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ping with an ended context: %v", err)
	}
	if err := sub.Unsubscribe(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	publishN(t, b, "chat:lobby", "after", 1)
	if err := a.Ping(ctxT(t)); err != nil { // a round trip after the publish: nothing came
		t.Fatal(err)
	}
	ra.noMoreMessages(t)
}

// TestKickReconnectRecovers: the operator kicks the client (admin API); it
// reconnects with backoff and gets exactly the messages published while it
// was away, in order, then live ones.
func TestKickReconnectRecovers(t *testing.T) {
	s := wsgatetest.Start(t, nil)
	ra := newRecorder()
	g := newGate()
	a := dial(t, s, opts(s, g.wrap(staticToken(t, s, "kicked-user")), ra))
	pub := dial(t, s, opts(s, staticToken(t, s, "publisher"), nil))
	if _, err := a.Subscribe(ctxT(t), "chat:k", ra.subOpts()); err != nil {
		t.Fatal(err)
	}
	publishN(t, pub, "chat:k", "before", 2)
	ra.texts(t, 2)
	ra.event(t, client.EventConnected)

	kick(t, s, a.Welcome().ConnID)
	d := ra.event(t, client.EventDisconnected)
	if d.Code != 1008 || d.Reason != "kicked" || !d.WillReconnect {
		t.Fatalf("disconnected %+v", d)
	}
	publishN(t, pub, "chat:k", "away", 5)
	// Sent while disconnected: queued and delivered after the reconnect.
	if err := a.Send(ctxT(t), "chat", map[string]any{"channel": "chat:k", "text": "queued"}); err != nil {
		t.Fatal(err)
	}
	g.release()
	ra.event(t, client.EventConnected)
	ra.expectTexts(t, append(published("away", 5), "queued")...)
	ra.expectLive(t, pub, "chat:k")
	ra.noMoreMessages(t)
}

// TestRestartRecovers: the server shuts down (1001) and comes back on the
// same address sharing Redis; the client reconnects at once and recovers.
func TestRestartRecovers(t *testing.T) {
	rs := redistest.Start(t)
	cfgFor := func(listen string) *config.Config {
		cfg := wsgatetest.Config()
		cfg.InsecurePlaintext = true // the second server must present the same address; no certificate to carry over
		cfg.Listen = listen
		cfg.State.Backend = "redis"
		cfg.State.Redis.Addrs = []string{rs.Addr()}
		cfg.State.Redis.Prefix = "wsgate-client:"
		cfg.Log.Level = "info"
		return cfg
	}
	s1 := wsgatetest.Start(t, cfgFor("127.0.0.1:0"))
	ra := newRecorder()
	g := newGate()
	a := dial(t, s1, opts(s1, g.wrap(staticToken(t, s1, "restart-user")), ra))
	if _, err := a.Subscribe(ctxT(t), "chat:r", ra.subOpts()); err != nil {
		t.Fatal(err)
	}
	p1 := dial(t, s1, opts(s1, staticToken(t, s1, "p1"), nil))
	publishN(t, p1, "chat:r", "before", 2)
	ra.texts(t, 2)
	p1.Close()

	if err := s1.Stop(t); err != nil {
		t.Fatalf("stop: %v", err)
	}
	d := ra.event(t, client.EventDisconnected)
	if d.Code != 1001 || !d.WillReconnect || d.Delay != 0 {
		t.Fatalf("disconnected %+v", d)
	}
	s2 := wsgatetest.Start(t, cfgFor(s1.Addr))
	p2 := dial(t, s2, opts(s2, staticToken(t, s2, "p2"), nil))
	publishN(t, p2, "chat:r", "away", 4)
	g.release()
	ra.expectTexts(t, published("away", 4)...)
	ra.expectLive(t, p2, "chat:r")
	ra.noMoreMessages(t)
}

// TestRecoveryFailedBeyondHistory: more was published while away than the
// history keeps; the client gets a RecoveryFailed event, never a silent gap.
func TestRecoveryFailedBeyondHistory(t *testing.T) {
	cfg := wsgatetest.Config()
	ns := cfg.Channels.Namespaces["chat"]
	ns.HistorySize = 3
	cfg.Channels.Namespaces["chat"] = ns
	s := wsgatetest.Start(t, cfg)
	ra := newRecorder()
	g := newGate()
	a := dial(t, s, opts(s, g.wrap(staticToken(t, s, "gap-user")), ra))
	sub, err := a.Subscribe(ctxT(t), "chat:g", ra.subOpts())
	if err != nil {
		t.Fatal(err)
	}
	pub := dial(t, s, opts(s, staticToken(t, s, "publisher"), nil))
	publishN(t, pub, "chat:g", "before", 1)
	ra.texts(t, 1)
	kick(t, s, a.Welcome().ConnID)
	ra.event(t, client.EventDisconnected)
	publishN(t, pub, "chat:g", "away", 10)
	g.release()
	var rf client.RecoveryFailed
	select {
	case rf = <-ra.rf:
	case <-time.After(wait):
		t.Fatal("no recovery_failed within the wait")
	}
	if rf.Previous.Offset != 1 || rf.Position.Offset != 11 {
		t.Fatalf("recovery failed %+v", rf)
	}
	ra.noMoreMessages(t)
	ra.expectLive(t, pub, "chat:g")
	if p := sub.Position(); p.Offset != 12 {
		t.Fatalf("position %+v", p)
	}
}

// TestTokenRefreshKeepsSubscription: a 3 s token is refreshed in band before
// it expires, twice, without the connection dropping.
func TestTokenRefreshKeepsSubscription(t *testing.T) {
	s := wsgatetest.Start(t, nil)
	ra := newRecorder()
	var calls atomic.Int32
	tok := func(context.Context) (string, error) {
		calls.Add(1)
		return s.TokenTTL(t, "short-lived", 3*time.Second, chatClaims), nil
	}
	a := dial(t, s, opts(s, tok, ra))
	if _, err := a.Subscribe(ctxT(t), "chat:t", ra.subOpts()); err != nil {
		t.Fatal(err)
	}
	first := a.Welcome().ExpiresAt
	for i := 0; i < 2; i++ {
		e := ra.event(t, client.EventRefreshed)
		if e.ExpiresAt.UnixMilli() <= first {
			t.Fatalf("refresh %d did not extend expiry: %v", i, e.ExpiresAt)
		}
	}
	// Both refreshes happened on the first connection: the original token's
	// expiry has passed and nothing dropped.
	if time.Now().UnixMilli() < first {
		t.Fatal("second refresh before the first token expired")
	}
	select {
	case e := <-ra.events:
		if e.Kind == client.EventDisconnected {
			t.Fatalf("disconnected during refresh: %+v", e)
		}
	default:
	}
	pub := dial(t, s, opts(s, staticToken(t, s, "publisher"), nil))
	publishN(t, pub, "chat:t", "m", 1)
	ra.texts(t, 1)
	if a.Welcome().ExpiresAt != first {
		t.Fatal("reconnected (new welcome) instead of refreshing")
	}
}

// TestExpiredTokenReconnects: when refresh cannot happen (the getter fails
// while connected), the server closes with 4001 and the client reconnects at
// once with a new token.
func TestExpiredTokenReconnects(t *testing.T) {
	s := wsgatetest.Start(t, nil)
	ra := newRecorder()
	var calls atomic.Int32
	tok := func(context.Context) (string, error) {
		n := calls.Add(1)
		if n == 2 { // the refresh attempt
			return "", errors.New("token service down")
		}
		return s.TokenTTL(t, "expiring", 2*time.Second, chatClaims), nil
	}
	a := dial(t, s, opts(s, tok, ra))
	if _, err := a.Subscribe(ctxT(t), "chat:e", ra.subOpts()); err != nil {
		t.Fatal(err)
	}
	d := ra.event(t, client.EventDisconnected)
	if d.Code != 4001 || !d.WillReconnect || d.Delay != 0 {
		t.Fatalf("disconnected %+v", d)
	}
	ra.event(t, client.EventConnected)
	pub := dial(t, s, opts(s, staticToken(t, s, "publisher"), nil))
	publishN(t, pub, "chat:e", "m", 1)
	ra.texts(t, 1)
}

// TestUnauthorizedNoLoop: a refused credential ends the client with a
// *HandshakeError; the token getter is not called again.
func TestUnauthorizedNoLoop(t *testing.T) {
	s := wsgatetest.Start(t, nil)
	var calls atomic.Int32
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	_, err := client.Dial(ctx, s.URL, opts(s, func(context.Context) (string, error) {
		calls.Add(1)
		return "not-a-jwt", nil
	}, nil))
	var he *client.HandshakeError
	if !errors.As(err, &he) || he.Status != 401 || !he.Terminal() {
		t.Fatalf("dial with a bad token: %v", err)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("token getter called %d times", n)
	}

	// The same when the refusal comes on a reconnect: a token revoked
	// (here: for a banned user) stops the client instead of looping.
	ra := newRecorder()
	var bad atomic.Bool
	a := dial(t, s, opts(s, func(context.Context) (string, error) {
		if bad.Load() {
			return "not-a-jwt", nil
		}
		return s.Token(t, "revoked", nil), nil
	}, ra))
	bad.Store(true)
	kick(t, s, a.Welcome().ConnID)
	ra.event(t, client.EventDisconnected) // the kick
	d := ra.event(t, client.EventDisconnected)
	if d.WillReconnect || !errors.As(d.Err, &he) || he.Status != 401 {
		t.Fatalf("second disconnect %+v", d)
	}
	if a.State() != client.StateClosed || !errors.As(a.Err(), &he) {
		t.Fatalf("state %v err %v", a.State(), a.Err())
	}
}

// TestRetryAfterHonoured: a 429 with Retry-After makes the client wait at
// least that long before the next attempt.
func TestRetryAfterHonoured(t *testing.T) {
	cfg := wsgatetest.Config()
	cfg.Limits.HandshakeRate = config.RateLimit{Rate: 0.5, Burst: 1} // refills in 2 s: room for a slow machine
	s := wsgatetest.Start(t, cfg)
	// Spend the bucket with a plain connection.
	if _, _, err := s.Dial(t, wsgatetest.DialOptions{Header: http.Header{"Authorization": {"Bearer " + s.Token(t, "x", nil)}}}); err != nil {
		t.Fatal(err)
	}
	ra := newRecorder()
	start := time.Now()
	a := dial(t, s, opts(s, staticToken(t, s, "patient"), ra))
	took := time.Since(start)
	d := ra.event(t, client.EventDisconnected)
	var he *client.HandshakeError
	if !errors.As(d.Err, &he) || he.Status != 429 || he.RetryAfter < time.Second || d.Delay < he.RetryAfter {
		t.Fatalf("first attempt %+v", d)
	}
	if took < he.RetryAfter {
		t.Fatalf("connected after %s, before Retry-After %s", took, he.RetryAfter)
	}
	if a.State() != client.StateConnected {
		t.Fatalf("state %v", a.State())
	}
}

func integrityServer(t *testing.T) *wsgatetest.Server {
	cfg := wsgatetest.Config()
	cfg.Integrity.Mode = "hmac"
	cfg.Integrity.MasterKeys = []config.IntegrityKey{{ID: "k1", Secret: strings.Repeat("m", 40)}}
	cfg.Abuse.MaxStrikes = 100
	return wsgatetest.Start(t, cfg)
}

// TestSignedHMAC: with integrity hmac the client signs every message with the
// key from the ticket endpoint; a client signing with a wrong key is refused
// with a typed integrity error.
func TestSignedHMAC(t *testing.T) {
	s := integrityServer(t)
	ra := newRecorder()
	o := opts(s, staticToken(t, s, "signer"), ra)
	o.Integrity = client.IntegrityHMAC
	a := dial(t, s, o)
	if _, err := a.Subscribe(ctxT(t), "chat:s", ra.subOpts()); err != nil {
		t.Fatal(err)
	}
	publishN(t, a, "chat:s", "signed", 2)
	ra.expectTexts(t, published("signed", 2)...)
	// Unsigned messages are refused on this endpoint.
	plain := dial(t, s, opts(s, staticToken(t, s, "plain"), nil))
	var se *client.ServerError
	if _, err := plain.Publish(ctxT(t), "chat:s", map[string]any{"text": "x"}); !errors.As(err, &se) || se.Code != "integrity_unsigned" {
		t.Fatalf("unsigned publish: %v", err)
	}
	// A key that is not the user's (a tampering proxy, a guessed key).
	forged := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		key := make([]byte, 32)
		_, _ = rand.Read(key)
		_ = json.NewEncoder(w).Encode(map[string]any{"ticket": "unused", "integrity": map[string]string{"alg": "HS256", "kid": "k1", "key": integrity.B64(key)}})
	}))
	defer forged.Close()
	rf := newRecorder()
	fo := opts(s, staticToken(t, s, "forger"), rf)
	fo.Integrity, fo.TicketURL = client.IntegrityHMAC, forged.URL
	f := dial(t, s, fo)
	// The server cannot trust the id inside a body it failed to verify, so the
	// refusal has no ref: it arrives as an EventError and the request times out.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := f.Publish(ctx, "chat:s", map[string]any{"text": "forged"}); !errors.Is(err, client.ErrTimeout) {
		t.Fatalf("forged publish: %v", err)
	}
	if e := rf.event(t, client.EventError); !errors.As(e.Err, &se) || se.Code != "integrity_bad_signature" {
		t.Fatalf("forged publish error event: %v", e.Err)
	}
	ra.noMoreMessages(t)
}

// TestSignedPop: pop mode with an Ed25519 key named by the token's cnf.jkt.
func TestSignedPop(t *testing.T) {
	cfg := wsgatetest.Config()
	cfg.Integrity.Mode = "pop"
	s := wsgatetest.Start(t, cfg)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := client.NewPopSigner(priv, "x", nil)
	o := opts(s, func(context.Context) (string, error) {
		return s.Token(t, "popper", map[string]any{"cnf": map[string]any{"jkt": signer.Thumbprint()}, "channels": chatClaims["channels"]}), nil
	}, nil)
	o.Integrity, o.PopKey = client.IntegrityPop, priv
	a := dial(t, s, o)
	if _, err := a.Subscribe(ctxT(t), "chat:p", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Publish(ctxT(t), "chat:p", map[string]any{"text": "pop"}); err != nil {
		t.Fatal(err)
	}
	// Someone else's key cannot even connect.
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	o2 := *o
	o2.PopKey = other
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var he *client.HandshakeError
	if _, err := client.Dial(ctx, s.URL, &o2); !errors.As(err, &he) || he.Status != 401 {
		t.Fatalf("wrong pop key: %v", err)
	}
}

// TestQueueBounded: while disconnected, at most QueueSize messages wait.
func TestQueueBounded(t *testing.T) {
	s := wsgatetest.Start(t, nil)
	ra := newRecorder()
	g := newGate()
	o := opts(s, g.wrap(staticToken(t, s, "queuer")), ra)
	o.QueueSize = 3
	a := dial(t, s, o)
	kick(t, s, a.Welcome().ConnID)
	ra.event(t, client.EventDisconnected)
	for i := 0; i < 3; i++ {
		if err := a.Send(ctxT(t), "chat", map[string]any{"text": "q"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Send(ctxT(t), "chat", map[string]any{"text": "q"}); !errors.Is(err, client.ErrQueueFull) {
		t.Fatalf("4th queued send: %v", err)
	}
	g.release()
	ra.event(t, client.EventConnected)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Ping(ctxT(t)); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("ping after close: %v", err)
	}
}

// TestBanWaitsRetryAfter: an operator ban with kick closes the connection
// (1008 banned); the reconnect is refused with 403 banned and Retry-After, and
// the client waits that long instead of giving up or hammering.
func TestBanWaitsRetryAfter(t *testing.T) {
	s := wsgatetest.Start(t, nil)
	ra := newRecorder()
	a := dial(t, s, opts(s, staticToken(t, s, "banned-user"), ra))
	adminPost(t, s, "/api/v1/bans", `{"user":"banned-user","ttl":"2s","kick":true}`)
	if d := ra.event(t, client.EventDisconnected); d.Code != 1008 || d.Reason != "banned" || !d.WillReconnect {
		t.Fatalf("ban close %+v", d)
	}
	var he *client.HandshakeError
	d := ra.event(t, client.EventDisconnected)
	if !errors.As(d.Err, &he) || he.Status != 403 || he.Code != "banned" || !d.WillReconnect {
		t.Fatalf("refusal while banned %+v", d)
	}
	if he.RetryAfter <= 0 || d.Delay < he.RetryAfter {
		t.Fatalf("banned refusal without a wait: %+v %+v", he, d)
	}
	ra.event(t, client.EventConnected) // the ban ended
	if a.State() != client.StateConnected {
		t.Fatalf("state %v", a.State())
	}
}

// TestVerifyServerSignedOutput: in a namespace with sign_output the client
// verifies the server's signature (JWKS fetched on connect) and delivers the
// signed body.
func TestVerifyServerSignedOutput(t *testing.T) {
	cfg := wsgatetest.Config()
	cfg.Channels.Namespaces["signed"] = config.Namespace{ClientPublish: true, HistorySize: 10, HistoryTTL: time.Minute, SignOutput: true}
	s := wsgatetest.Start(t, cfg)
	ra := newRecorder()
	o := opts(s, func(context.Context) (string, error) {
		return s.Token(t, "verifier", map[string]any{"channels": map[string]any{"sub": []string{"signed:*"}, "pub": []string{"signed:*"}}}), nil
	}, ra)
	o.VerifyServer = true
	a := dial(t, s, o)
	if _, err := a.Subscribe(ctxT(t), "signed:news", ra.subOpts()); err != nil {
		t.Fatal(err)
	}
	publishN(t, a, "signed:news", "s", 2)
	ra.expectTexts(t, published("s", 2)...)
}
