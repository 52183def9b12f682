package check

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/internal/conn/transport"
	"github.com/wsgate/wsgate/internal/truncate"
)

// clientMaxMessage lets a probe read back the largest thing it sends, so an
// echo is seen as an echo and not as our own 1009.
const clientMaxMessage = 4 << 20

// msgBuffer bounds the messages a probe keeps; beyond it they are counted.
const msgBuffer = 8192

// quietLogger drops gws and transport noise: failures show in the report.
var quietLogger = slog.New(slog.DiscardHandler)

// wsClient is the transport.Handler of every probe connection.
type wsClient struct {
	obs      *observer
	msgs     chan []byte
	received atomic.Int64
	closed   chan struct{}
	once     sync.Once
	mu       sync.Mutex
	code     uint16
	reason   string
	pings    atomic.Int64
	pinged   chan struct{}
	pingOnce sync.Once
}

func newClient(obs *observer) *wsClient {
	return &wsClient{obs: obs, msgs: make(chan []byte, msgBuffer), closed: make(chan struct{}), pinged: make(chan struct{})}
}

func (c *wsClient) OnMessage(_ *transport.Conn, _ transport.Opcode, data []byte) {
	c.received.Add(1)
	c.obs.see("message", data)
	select {
	case c.msgs <- data:
	default:
	}
}
func (c *wsClient) OnPing(*transport.Conn, []byte) {
	c.pings.Add(1)
	c.pingOnce.Do(func() { close(c.pinged) })
}
func (c *wsClient) OnPong(*transport.Conn, []byte) {}
func (c *wsClient) OnClose(_ *transport.Conn, err error) {
	c.mu.Lock()
	c.code, _ = transport.CloseCode(err)
	var ce *transport.CloseError
	if errors.As(err, &ce) {
		c.reason = ce.Reason
	}
	c.mu.Unlock()
	c.obs.see("close reason", []byte(c.reason))
	c.once.Do(func() { close(c.closed) })
}

func (c *wsClient) closeInfo() (uint16, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.code, c.reason
}

func (c *wsClient) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

// session is an open probe connection; close it when done.
type session struct {
	conn    *transport.Conn
	cl      *wsClient
	resp    *http.Response
	first   []byte // the first message, when it came right away (a welcome)
	serving chan struct{}
}

// close drops the connection and waits for its read loop to end.
func (s *session) close() {
	_ = s.conn.Close()
	<-s.serving
}

// send writes one text message; an error means the connection is gone.
func (s *session) send(b []byte) error { return s.conn.WriteMessage(transport.Text, b) }

// collect gathers messages for up to d, returning early when done says so or
// the connection closes.
func (s *session) collect(ctx context.Context, d time.Duration, done func([]byte) bool) (msgs [][]byte, closed bool) {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case m := <-s.cl.msgs:
			msgs = append(msgs, m)
			if done != nil && done(m) {
				return msgs, false
			}
		case <-s.cl.closed:
			for {
				select {
				case m := <-s.cl.msgs:
					msgs = append(msgs, m)
				default:
					return msgs, true
				}
			}
		case <-t.C:
			return msgs, false
		case <-ctx.Done():
			return msgs, s.cl.isClosed()
		}
	}
}

// attempt is the outcome of one upgrade attempt.
type attempt struct {
	sess   *session // nil unless 101
	status int      // HTTP status of a refusal, 0 when there was no response
	body   string
	header http.Header
	err    error
}

// describe says what came back, for the report.
func (a attempt) describe() string { return describeAnswer(a.sess != nil, a.status, a.body, a.err) }

// describeAnswer says what came back from an upgrade attempt, for the report:
// accepted (upgraded), an HTTP refusal (status and body), or no answer (err).
func describeAnswer(upgraded bool, status int, body string, err error) string {
	switch {
	case upgraded:
		return "101 Switching Protocols (connection accepted)"
	case status != 0:
		s := fmt.Sprintf("%d %s", status, http.StatusText(status))
		if b := strings.TrimSpace(body); b != "" {
			s += ": " + clip(b, 120)
		}
		return s
	default:
		return "no HTTP answer: " + clip(errString(err), 200)
	}
}

func errString(err error) string {
	if err == nil {
		return "none"
	}
	return err.Error()
}

// dialSpec is one upgrade request.
type dialSpec struct {
	url          string
	header       http.Header
	subprotocols []string
	compression  bool
	tls          *tls.Config // nil: the run's
	src          netip.Addr  // invalid: e.source()
}

// dial performs one upgrade attempt. On 101 it starts the read loop and
// waits briefly for a first message (a welcome).
func (e *env) dial(ctx context.Context, sp dialSpec) attempt {
	src := sp.src
	if !src.IsValid() {
		src = e.source()
	}
	do := &transport.DialOptions{
		Header:           sp.header,
		TLSConfig:        e.tls,
		Subprotocols:     sp.subprotocols,
		HandshakeTimeout: e.o.Timeout,
		NetDial:          e.netDialer(src).DialContext,
	}
	if sp.tls != nil {
		do.TLSConfig = sp.tls
	}
	do.Options.MaxMessageBytes = clientMaxMessage
	do.Options.AllowBinary = true
	do.Options.Logger = quietLogger
	do.Options.CloseTimeout = 500 * time.Millisecond
	do.Options.Compression.Enabled = sp.compression
	cl := newClient(e.obs)
	conn, resp, err := transport.Dial(ctx, sp.url, do, cl)
	if err != nil {
		a := attempt{err: err}
		if resp != nil {
			a.status, a.header = resp.StatusCode, resp.Header
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			a.body = string(b)
			e.obs.see(fmt.Sprintf("HTTP %d body", resp.StatusCode), b)
		}
		return a
	}
	s := &session{conn: conn, cl: cl, resp: resp, serving: make(chan struct{})}
	go func() {
		defer close(s.serving)
		conn.Serve()
	}()
	select {
	case m := <-cl.msgs:
		s.first = m
	case <-cl.closed:
	case <-time.After(300 * time.Millisecond):
	case <-ctx.Done():
	}
	return attempt{sess: s, status: http.StatusSwitchingProtocols, header: resp.Header}
}

// credential adds the valid token to a request the way Options.TokenVia says.
func (e *env) credential(u *url.URL, h http.Header, sp []string, tok string) (string, http.Header, []string) {
	h = h.Clone()
	if h == nil {
		h = http.Header{}
	}
	sp = append([]string(nil), sp...)
	raw := u.String()
	switch v := e.o.TokenVia; {
	case v == "query":
		raw = withQuery(u, "token", tok)
	case v == "subprotocol":
		sp = append(sp, "token."+tok)
	case strings.HasPrefix(v, "cookie:"):
		h.Add("Cookie", strings.TrimPrefix(v, "cookie:")+"="+tok)
	default:
		h.Set("Authorization", "Bearer "+tok)
	}
	return raw, h, sp
}

// baseHeader carries the legitimate Origin, if any.
func (e *env) baseHeader() http.Header {
	h := http.Header{}
	if e.o.Origin != "" {
		h.Set("Origin", e.o.Origin)
	}
	return h
}

// dialWith tries an upgrade carrying tok (the valid one when tok is "").
func (e *env) dialWith(ctx context.Context, tok string, h http.Header) attempt {
	if tok == "" {
		tok = e.tok
	}
	if h == nil {
		h = e.baseHeader()
	}
	raw, h, sp := e.target.String(), h, e.o.Subprotocols
	if tok != "" {
		raw, h, sp = e.credential(e.target, h, sp, tok)
	}
	return e.retry(ctx, dialSpec{url: raw, header: h, subprotocols: sp})
}

// retry repeats an attempt refused with 429/503 a few times, honouring a
// short Retry-After: an earlier probe may have spent the handshake budget,
// which proves the limit but must not hide the next check's answer.
func (e *env) retry(ctx context.Context, sp dialSpec) attempt {
	var a attempt
	for i := 0; i < 5; i++ {
		a = e.dial(ctx, sp)
		if a.status != http.StatusTooManyRequests && a.status != http.StatusServiceUnavailable {
			return a
		}
		wait := 500 * time.Millisecond
		if s, err := strconv.Atoi(a.header.Get("Retry-After")); err == nil && s > 0 {
			wait = min(time.Duration(s)*time.Second, 2*time.Second)
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return a
		}
	}
	return a
}

// withCred completes sp with the target URL, the base header, the
// configured subprotocols and tok (none when tok is "").
func (e *env) withCred(sp dialSpec, tok string) dialSpec {
	sp.url, sp.header, sp.subprotocols = e.target.String(), e.baseHeader(), e.o.Subprotocols
	if tok != "" {
		sp.url, sp.header, sp.subprotocols = e.credential(e.target, sp.header, sp.subprotocols, tok)
	}
	return sp
}

// open dials with the valid credential and fails with a reason the report
// can show when no connection could be opened.
func (e *env) open(ctx context.Context) (*session, error) {
	a := e.dialWith(ctx, "", nil)
	if a.sess == nil {
		return nil, &refusedError{a: a}
	}
	return a.sess, nil
}

// --- what came back ---

// replyKind classifies a server message relative to what the probe sent.
type replyKind int

const (
	replyOther       replyKind = iota
	replyEcho                  // the probe's payload came back
	replyError                 // an error reply
	replyRateLimited           // an error reply about rate limiting
)

var (
	errorWords = regexp.MustCompile(`(?i)error|invalid|malformed|too (large|big|long)|refused|denied|unknown|unsupported|not allowed|reject|limit`)
	rateWords  = regexp.MustCompile(`(?i)rate.?limit|throttl|too many|slow down|retry.?after|flood`)
)

// classify judges one message from an untrusted server. sent is what the
// probe sent (nil when unknown).
func classify(msg, sent []byte) replyKind {
	if len(sent) >= 8 && (bytes.Equal(msg, sent) || (len(sent) >= 64 && bytes.Contains(msg, sent[:64]))) {
		return replyEcho
	}
	var obj map[string]json.RawMessage
	isErr := false
	if len(msg) <= 1<<16 && json.Unmarshal(msg, &obj) == nil {
		var typ string
		if t, ok := obj["type"]; ok && json.Unmarshal(t, &typ) == nil && strings.EqualFold(typ, "error") {
			isErr = true
		}
		if _, ok := obj["error"]; ok {
			isErr = true
		}
		if _, ok := obj["errors"]; ok {
			isErr = true
		}
	} else if errorWords.Match(msg[:min(len(msg), 512)]) {
		isErr = true
	}
	if !isErr {
		return replyOther
	}
	if rateWords.Match(msg[:min(len(msg), 512)]) {
		return replyRateLimited
	}
	return replyError
}

// summarize renders up to three messages and a count for the report.
func summarize(msgs [][]byte) string {
	if len(msgs) == 0 {
		return "no message"
	}
	var parts []string
	for i, m := range msgs {
		if i == 3 {
			parts = append(parts, fmt.Sprintf("… %d more", len(msgs)-3))
			break
		}
		parts = append(parts, strconv.Quote(clip(string(m), 160)))
	}
	return strings.Join(parts, ", ")
}

// clip shortens s to n bytes at a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return truncate.UTF8(s, n) + fmt.Sprintf("… (%d bytes)", len(s))
}

// --- information leaks ---

// leakPatterns are marks of stack traces and internals in what servers say.
var leakPatterns = regexp.MustCompile(`goroutine \d+ \[|panic:|\.go:\d+|Traceback \(most recent call last\)|File "[^"]+", line \d+|\bat [\w.<>$]+ \([^)]*:\d+:\d+\)|node_modules/|\.(java|py|rb|php|js|ts|cs):\d+|Exception in thread|System\.[A-Z]\w+Exception|SQLSTATE|ORA-\d{5}`)

// maxLeakFindings bounds what the observer keeps.
const maxLeakFindings = 5

// observer scans everything servers send during a run for leaks, keeping a
// few findings.
type observer struct {
	mu       sync.Mutex
	findings []string
	scanned  int
}

func (o *observer) see(where string, b []byte) {
	if len(b) == 0 {
		return
	}
	b = b[:min(len(b), 16<<10)] // a trace shows in its first lines
	loc := leakPatterns.FindIndex(b)
	o.mu.Lock()
	defer o.mu.Unlock()
	o.scanned++
	if loc == nil || len(o.findings) >= maxLeakFindings {
		return
	}
	from := max(0, loc[0]-60)
	to := min(len(b), loc[1]+60)
	o.findings = append(o.findings, fmt.Sprintf("%s: …%s…", where, strings.ToValidUTF8(string(b[from:to]), "?")))
}

func (o *observer) result() (findings []string, scanned int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.findings...), o.scanned
}
