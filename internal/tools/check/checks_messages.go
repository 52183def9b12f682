package check

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/wsgate/wsgate/client"
)

// openOrExplain opens a connection for a message check.
func (e *env) openOrExplain(ctx context.Context) (*session, *Result) {
	if err := e.baseline(ctx); err != nil {
		r := e.needConn(err)
		return nil, &r
	}
	s, err := e.open(ctx)
	if err != nil {
		r := e.needConn(err)
		return nil, &r
	}
	return s, nil
}

// reaction is what a connection did after a probe message.
type reaction struct {
	msgs      [][]byte
	closed    bool
	code      uint16
	reason    string
	echo      bool
	errReply  bool
	rate      bool
	writeErr  error
	otherMsgs int
}

func (r reaction) String() string {
	var parts []string
	if r.writeErr != nil {
		parts = append(parts, "write failed: "+clip(r.writeErr.Error(), 100))
	}
	if len(r.msgs) > 0 {
		parts = append(parts, "messages: "+summarize(r.msgs))
	}
	if r.closed {
		parts = append(parts, fmt.Sprintf("closed with %d %q", r.code, r.reason))
	}
	if len(parts) == 0 {
		return "nothing: no reply and no close"
	}
	return strings.Join(parts, "; ")
}

// probe sends msg and watches the connection until a decisive reply (an
// echo or an error), a close, or ReplyWait.
func (e *env) probe(ctx context.Context, s *session, msg []byte) reaction {
	var r reaction
	if err := s.send(msg); err != nil {
		r.writeErr = err
	}
	r.msgs, r.closed = s.collect(ctx, e.o.ReplyWait, func(m []byte) bool {
		k := classify(m, msg)
		return k != replyOther
	})
	for _, m := range r.msgs {
		switch classify(m, msg) {
		case replyEcho:
			r.echo = true
		case replyError:
			r.errReply = true
		case replyRateLimited:
			r.errReply, r.rate = true, true
		default:
			r.otherMsgs++
		}
	}
	if r.closed || s.cl.isClosed() {
		r.closed = true
		r.code, r.reason = s.cl.closeInfo()
	}
	return r
}

// refused reports whether the server clearly did not accept the message.
func (r reaction) refused() bool { return !r.echo && (r.errReply || r.closed || r.writeErr != nil) }

// padded builds a JSON message of about n bytes.
func padded(n int) []byte {
	const head = `{"type":"ping","pad":"`
	b := make([]byte, 0, n)
	b = append(b, head...)
	for len(b) < n-2 {
		b = append(b, 'a')
	}
	return append(b, '"', '}')
}

func checkOversize(ctx context.Context, e *env) Result {
	res := Result{Sent: "a 64 KiB JSON text message; if accepted, a 1 MiB one on a new connection"}
	var gots []string
	for i, n := range []int{64 << 10, 1 << 20} {
		s, bad := e.openOrExplain(ctx)
		if bad != nil {
			return *bad
		}
		r := e.probe(ctx, s, padded(n))
		s.close()
		gots = append(gots, fmt.Sprintf("%d KiB: %s", n>>10, r))
		if r.refused() {
			res.Status = Pass
			if i == 1 {
				res.Status = Warn
				res.Why = "64 KiB messages are accepted: the limit is far above what most applications need (the guide suggests ~8 KB), and memory per connection follows it"
				res.Fix = "lower the maximum message size to what the protocol needs (wsgate: limits.max_message_bytes, default 8192)"
			}
			if r.closed && r.code != 1009 {
				gots = append(gots, "(1009 Message Too Big is the close code that tells the client why)")
			}
			break
		}
		res.Status = Fail
	}
	res.Got = strings.Join(gots, "\n")
	return res
}

// judgeBadInput grades the reaction to a message the server must not act on.
func judgeBadInput(r reaction) (Status, string) {
	switch {
	case r.echo:
		return Fail, "the message came back as if valid: " + r.String()
	case r.closed && r.code == 1011:
		return Warn, r.String() + " (1011: the server failed internally on bad input)"
	case r.errReply || r.closed || r.writeErr != nil:
		return Pass, r.String()
	case r.otherMsgs > 0:
		return Warn, "answered without an error: " + r.String()
	default:
		return Warn, "dropped silently: " + r.String()
	}
}

func checkInvalidJSON(ctx context.Context, e *env) Result {
	s, bad := e.openOrExplain(ctx)
	if bad != nil {
		return *bad
	}
	defer s.close()
	msg := []byte(`{"type":"ping","id":"wsgate-check",`)
	st, got := judgeBadInput(e.probe(ctx, s, msg))
	return Result{Status: st, Sent: fmt.Sprintf("the truncated JSON %q", msg), Got: got}
}

func checkUnknownType(ctx context.Context, e *env) Result {
	s, bad := e.openOrExplain(ctx)
	if bad != nil {
		return *bad
	}
	defer s.close()
	msg := []byte(`{"type":"wsgate-check.unknown-type","id":"wsgate-check-unknown","data":{"x":1}}`)
	st, got := judgeBadInput(e.probe(ctx, s, msg))
	return Result{Status: st, Sent: string(msg), Got: got}
}

func checkErrorLeak(ctx context.Context, e *env) Result {
	provocations := [][]byte{
		[]byte(`{"type":`),
		[]byte(`{"type":{"$ne":null},"id":[]}`),
		[]byte(`{"type":"ping","id":1e999999999}`),
		[]byte(`{"type":"ping","id":"\ud800"}`),
		[]byte(strings.Repeat("[", 512) + strings.Repeat("]", 512)),
	}
	sent := "5 hostile messages (truncated JSON, an object as type, a huge number, a lone surrogate, 512-deep nesting); then every answer of the whole run is scanned for stack traces and internals"
	if s, bad := e.openOrExplain(ctx); bad == nil {
		for _, p := range provocations {
			r := e.probe(ctx, s, p)
			if r.closed || r.writeErr != nil {
				s.close()
				if s, bad = e.openOrExplain(ctx); bad != nil {
					break
				}
			}
		}
		if s != nil {
			s.close()
		}
	}
	findings, scanned := e.obs.result()
	if len(findings) > 0 {
		return Result{Status: Fail, Sent: sent, Got: strings.Join(findings, "\n")}
	}
	return Result{Status: Pass, Sent: sent, Got: fmt.Sprintf("no stack trace or internal path in %d answers (messages, close reasons, HTTP bodies)", scanned)}
}

func checkCompression(ctx context.Context, e *env) Result {
	sent := "an upgrade with the valid credential offering Sec-WebSocket-Extensions: permessage-deflate"
	raw, h, sp := e.target.String(), e.baseHeader(), e.o.Subprotocols
	if e.tok != "" {
		raw, h, sp = e.credential(e.target, h, sp, e.tok)
	}
	a := e.retry(ctx, dialSpec{url: raw, header: h, subprotocols: sp, compression: true})
	if a.sess == nil {
		r := e.needConn(fmt.Errorf("upgrade refused: %s", a.describe()))
		r.Sent = sent
		return r
	}
	a.sess.close()
	ext := a.header.Get("Sec-WebSocket-Extensions")
	if strings.Contains(strings.ToLower(ext), "permessage-deflate") {
		return Result{Status: Warn, Sent: sent, Got: "accepted: Sec-WebSocket-Extensions: " + ext}
	}
	return Result{Status: Pass, Sent: sent, Got: "declined (no Sec-WebSocket-Extensions in the 101)"}
}

func checkIdle(ctx context.Context, e *env) Result {
	s, bad := e.openOrExplain(ctx)
	if bad != nil {
		return *bad
	}
	defer s.close()
	start := time.Now()
	sent := fmt.Sprintf("nothing for %s after the upgrade (answering the server's pings only)", e.o.IdleWait)
	select {
	case <-s.cl.closed:
		code, reason := s.cl.closeInfo()
		return Result{Status: Pass, Sent: sent, Got: fmt.Sprintf("closed after %s with %d %q", time.Since(start).Round(100*time.Millisecond), code, reason)}
	case <-time.After(e.o.IdleWait):
	case <-ctx.Done():
	}
	return Result{Status: Warn, Sent: sent,
		Got: fmt.Sprintf("not closed within %s (informational: this cannot prove a longer idle timeout exists)", e.o.IdleWait),
		Fix: "close connections that send nothing for a while (wsgate: timeouts.idle, default 5m); raise --idle-wait above your timeout to confirm it"}
}

func checkReplay(ctx context.Context, e *env) Result {
	if len(e.o.SigningKey) == 0 {
		return Result{Status: Skip, Got: "needs --signing-key (the integrity key object from the server's ticket/token endpoint)"}
	}
	kid, key, err := client.ParseHMACKey(e.o.SigningKey)
	if err != nil {
		return Result{Status: Error, Got: err.Error()}
	}
	sub := subjectOf(e.tok)
	if sub == "" {
		sub = e.o.Subject
	}
	signer, err := client.NewHMACSigner(kid, key, sub, nil)
	if err != nil {
		return Result{Status: Error, Got: err.Error()}
	}
	s, bad := e.openOrExplain(ctx)
	if bad != nil {
		return *bad
	}
	defer s.close()
	var w struct {
		ConnID string `json:"conn_id"`
	}
	if s.first == nil || json.Unmarshal(s.first, &w) != nil || w.ConnID == "" {
		return Result{Status: Error, Got: "no welcome message with a conn_id to bind signatures to"}
	}
	signer.Bind(w.ConnID)
	frame, err := signer.Seal([]byte(e.o.Message))
	if err != nil {
		return Result{Status: Error, Got: "seal --message: " + err.Error()}
	}
	sent := "one signed message (" + e.o.Message + "), then the identical frame again"
	first := e.probe(ctx, s, frame)
	if first.refused() {
		return Result{Status: Error, Sent: sent, Got: "the first, fresh signed message was refused: " + first.String(),
			Fix: "check --signing-key and that the credential's subject matches it"}
	}
	second := e.probe(ctx, s, frame)
	got := "first: " + first.String() + "\nreplay: " + second.String()
	if second.refused() {
		return Result{Status: Pass, Sent: sent, Got: got}
	}
	return Result{Status: Fail, Sent: sent, Got: got}
}

func checkConnFlood(ctx context.Context, e *env) Result {
	e, _ = e.pinned() // the flood comes from one address
	n := e.o.FloodConns
	sent := fmt.Sprintf("%d concurrent upgrades from this address with a valid credential", n)
	if e.cred.canMint() {
		sent = fmt.Sprintf("%d concurrent upgrades from this address, each with a valid token for a different subject", n)
	}
	atts := make([]attempt, n)
	var wg sync.WaitGroup
	for i := range n {
		tok := e.tok
		if e.cred.canMint() {
			if t, err := e.cred.mint(fmt.Sprintf("%s-%d", e.sub, i), nil); err == nil {
				tok = t
			}
		}
		raw, h, sp := e.target.String(), e.baseHeader(), e.o.Subprotocols
		if tok != "" {
			raw, h, sp = e.credential(e.target, h, sp, tok)
		}
		wg.Go(func() { atts[i] = e.dial(ctx, dialSpec{url: raw, header: h, subprotocols: sp}) })
	}
	wg.Wait()
	// Accepted connections a server closes right away were refused too.
	time.Sleep(300 * time.Millisecond)
	accepted, closedSoon, errs, unauth := 0, 0, 0, 0
	statuses := map[int]int{}
	for _, a := range atts {
		switch {
		case a.sess != nil:
			if a.sess.cl.isClosed() {
				closedSoon++
			} else {
				accepted++
			}
			a.sess.close()
		case a.status != 0:
			statuses[a.status]++
			if a.status == http.StatusUnauthorized {
				unauth++
			}
		default:
			errs++
		}
	}
	got := fmt.Sprintf("%d accepted and kept open, %d accepted then closed, %d refused %v, %d without HTTP answer", accepted, closedSoon, n-accepted-closedSoon-errs, statuses, errs)
	switch {
	case unauth == n && e.cred.valid == "":
		return Result{Status: Skip, Sent: sent, Got: got + " (all refused for lack of credential)"}
	case accepted == n:
		return Result{Status: Warn, Sent: sent, Got: got}
	case accepted == 0 && closedSoon == 0 && len(statuses) == 0:
		return Result{Status: Error, Sent: sent, Got: got + ": " + clip(errString(atts[0].err), 120)}
	default:
		return Result{Status: Pass, Sent: sent, Got: got}
	}
}

func checkMessageFlood(ctx context.Context, e *env) Result {
	s, bad := e.openOrExplain(ctx)
	if bad != nil {
		return *bad
	}
	defer s.close()
	msg := []byte(e.o.Message)
	sent, start := 0, time.Now()
	var werr error
	for sent < e.o.FloodMessages && time.Since(start) < e.o.FloodWindow && ctx.Err() == nil {
		if werr = s.send(msg); werr != nil {
			break
		}
		sent++
	}
	msgs, closed := s.collect(ctx, time.Second, nil)
	for len(msgs) < sent && !closed && ctx.Err() == nil {
		more, c := s.collect(ctx, 500*time.Millisecond, nil)
		if len(more) == 0 {
			break
		}
		msgs, closed = append(msgs, more...), c
	}
	closed = closed || s.cl.isClosed()
	answered, rate, errs := 0, 0, 0
	for _, m := range msgs {
		switch classify(m, msg) {
		case replyRateLimited:
			if rate == 0 {
				e.sh.mu.Lock()
				e.sh.throttleAfter = max(answered, 1)
				e.sh.mu.Unlock()
			}
			rate++
		case replyError:
			errs++
		default:
			answered++
		}
	}
	desc := fmt.Sprintf("%q × %d in %s", msg, sent, e.o.FloodWindow)
	got := fmt.Sprintf("%d answered, %d rate-limit errors, %d other errors", answered, rate, errs)
	if werr != nil {
		got += "; write failed after " + fmt.Sprint(sent) + ": " + clip(werr.Error(), 80)
	}
	if closed {
		code, reason := s.cl.closeInfo()
		got += fmt.Sprintf("; closed with %d %q", code, reason)
	}
	switch {
	case rate > 0 || closed || werr != nil:
		return Result{Status: Pass, Sent: desc, Got: got}
	case answered >= sent && sent > 0:
		return Result{Status: Fail, Sent: desc, Got: got + " (every message answered)"}
	case answered+errs == 0:
		return Result{Status: Warn, Sent: desc, Got: got + " (the server answers none of these: give --message a message it answers)"}
	default:
		return Result{Status: Warn, Sent: desc, Got: got + " (some unanswered, but no throttling signal)"}
	}
}
