package check

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

func checkVersion426(ctx context.Context, e *env) Result {
	sent := "an upgrade with the valid credential and Sec-WebSocket-Version: 12"
	a := e.rawUpgrade(ctx, e.source(), rawRequest{tok: e.tok, version: "12"})
	got := a.describe()
	switch {
	case a.conn != nil:
		_ = a.conn.Close()
		return Result{Status: Fail, Sent: sent, Got: got + " (a version the server cannot speak was accepted)"}
	case a.status == http.StatusUpgradeRequired && strings.Contains(a.header.Get("Sec-WebSocket-Version"), "13"):
		return Result{Status: Pass, Sent: sent, Got: got + "; Sec-WebSocket-Version: " + a.header.Get("Sec-WebSocket-Version")}
	case a.status == http.StatusUnauthorized && e.tok == "":
		return Result{Status: Skip, Sent: sent, Got: got + " (refused for lack of credential)"}
	case a.status != 0:
		return Result{Status: Warn, Sent: sent, Got: got + " (RFC 6455 §4.4: answer 426 Upgrade Required with Sec-WebSocket-Version: 13, so clients can negotiate)"}
	}
	return Result{Status: Warn, Sent: sent, Got: got}
}

func checkOversizedHeaders(ctx context.Context, e *env) Result {
	h := http.Header{}
	for i := range 8 {
		h.Set("X-Wsgate-Check-Pad-"+strconv.Itoa(i), strings.Repeat("a", 8000))
	}
	sent := "an upgrade with the valid credential and 64 KB of extra headers (8 × 8000 bytes)"
	a := e.rawUpgrade(ctx, e.source(), rawRequest{tok: e.tok, header: h})
	if a.conn != nil {
		_ = a.conn.Close()
		return Result{Status: Fail, Sent: sent, Got: a.describe() + " (64 KB request heads accepted: memory per pending handshake follows)"}
	}
	return Result{Status: Pass, Sent: sent, Got: a.describe()}
}

func checkSlowloris(ctx context.Context, e *env) Result {
	sent := fmt.Sprintf("a request head dripped one header line per second for up to %s, never finished", e.o.SlowWait)
	rc, err := e.rawDial(ctx, e.source())
	if err != nil {
		return Result{Status: Error, Sent: sent, Got: "connect: " + err.Error()}
	}
	defer rc.Close()
	start := time.Now()
	lines := []string{"GET " + e.target.RequestURI() + " HTTP/1.1\r\n", "Host: " + e.target.Host + "\r\n", "Upgrade: websocket\r\n", "Connection: Upgrade\r\n"}
	buf := make([]byte, 512)
	for i := 0; time.Since(start) < e.o.SlowWait; i++ {
		line := "X-Wsgate-Check-Slow-" + strconv.Itoa(i) + ": 1\r\n"
		if i < len(lines) {
			line = lines[i]
		}
		_ = rc.c.SetWriteDeadline(time.Now().Add(e.o.Timeout))
		if _, err := rc.c.Write([]byte(line)); err != nil {
			return Result{Status: Pass, Sent: sent, Got: fmt.Sprintf("the server dropped the connection after %s (%d lines): %s", time.Since(start).Round(100*time.Millisecond), i, clip(err.Error(), 80))}
		}
		_ = rc.c.SetReadDeadline(time.Now().Add(time.Second))
		n, err := rc.br.Read(buf)
		if n > 0 || err != nil && !isTimeout(err) {
			what := "closed"
			if n > 0 {
				what = "answered " + strconv.Quote(clip(string(buf[:n]), 40)) + " and closed"
			}
			return Result{Status: Pass, Sent: sent, Got: fmt.Sprintf("the server %s after %s (%d lines)", what, time.Since(start).Round(100*time.Millisecond), i+1)}
		}
		if ctx.Err() != nil {
			return Result{Status: Error, Sent: sent, Got: "run cancelled"}
		}
	}
	return Result{Status: Fail, Sent: sent, Got: fmt.Sprintf("the half-sent request was still held open after %s: a few hundred such sockets exhaust the server's file descriptors", e.o.SlowWait)}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// handshakeFlood is the number of unauthenticated upgrades of the
// handshake-rate check, sent by handshakeWorkers concurrent workers.
const (
	handshakeFlood   = 60
	handshakeWorkers = 6
)

func checkHandshakeRate(ctx context.Context, e *env) Result {
	pe, _ := e.pinned()
	sent := fmt.Sprintf("%d upgrades without credential from one address, %d at a time", handshakeFlood, handshakeWorkers)
	var mu sync.Mutex
	statuses := map[string]int{}
	limited := 0
	jobs := make(chan struct{}, handshakeFlood)
	for range handshakeFlood {
		jobs <- struct{}{}
	}
	close(jobs)
	var wg sync.WaitGroup
	deadline := time.Now().Add(10 * time.Second)
	for range handshakeWorkers {
		wg.Go(func() {
			for range jobs {
				if ctx.Err() != nil || time.Now().After(deadline) {
					return
				}
				a := pe.rawUpgrade(ctx, pe.source(), rawRequest{})
				key := strconv.Itoa(a.status)
				if a.conn != nil {
					_ = a.conn.Close()
				}
				if a.status == 0 {
					key = "no answer"
				}
				mu.Lock()
				statuses[key]++
				if a.status == http.StatusTooManyRequests || a.status == http.StatusServiceUnavailable || a.status == http.StatusForbidden {
					limited++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	got := fmt.Sprintf("answers: %v", statuses)
	switch {
	case limited > 0:
		return Result{Status: Pass, Sent: sent, Got: got + fmt.Sprintf(" (%d limited)", limited)}
	case statuses["no answer"] > 0:
		return Result{Status: Warn, Sent: sent, Got: got + " (some dropped without an answer: a limit, or overload)"}
	}
	return Result{Status: Fail, Sent: sent, Got: got + " (every unauthenticated upgrade was processed: nothing limits handshake floods)"}
}

// tryOpen dials with tok from src and reports whether the connection was
// accepted and kept (a 101 closed at once is a refusal after the upgrade).
func (e *env) tryOpen(ctx context.Context, sp dialSpec) (*session, attempt, bool) {
	a := e.dial(ctx, sp)
	if a.sess == nil {
		return nil, a, false
	}
	if a.sess.cl.isClosed() {
		a.sess.close()
		return nil, a, false
	}
	return a.sess, a, true
}

func describeTry(a attempt, ok bool) string {
	if a.sess != nil && !ok {
		code, reason := a.sess.cl.closeInfo()
		return fmt.Sprintf("101 then closed at once with %d %q", code, reason)
	}
	return a.describe()
}

func checkSlotLeak(ctx context.Context, e *env) Result {
	pe, _ := e.pinned() // needsPin
	n := e.o.SlotCycles
	sent := fmt.Sprintf("up to %d sequential connect/close cycles from %s; on a refusal, a retry from it and one from a fresh address", n, pe.pin)
	for i := 1; i <= n; i++ {
		s, a, ok := pe.tryOpen(ctx, pe.withCred(dialSpec{}, pe.tok))
		if ok {
			s.close()
			continue
		}
		first := describeTry(a, ok)
		wait := retryWait(a)
		if !sleepFor(ctx, wait) {
			return Result{Status: Error, Sent: sent, Got: "run cancelled"}
		}
		s, a2, ok2 := pe.tryOpen(ctx, pe.withCred(dialSpec{}, pe.tok))
		if ok2 {
			s.close()
			continue // a rate limit or a close not yet processed, not a leak
		}
		s, a3, ok3 := pe.tryOpen(ctx, pe.withCred(dialSpec{src: pe.fresh()}, pe.tok))
		if s != nil {
			s.close()
		}
		got := fmt.Sprintf("cycles 1-%d accepted and closed; cycle %d: %s; again %s later: %s; from a fresh address: %s", i-1, i, first, wait, describeTry(a2, ok2), describeTry(a3, ok3))
		if ok3 {
			return Result{Status: Fail, Sent: sent, Got: got + " (closed connections still count against the address: it is refused for good once its slots are used up)"}
		}
		return Result{Status: Warn, Sent: sent, Got: got + " (refused from a fresh address too: a global limit, or the credential)"}
	}
	return Result{Status: Pass, Sent: sent, Got: fmt.Sprintf("all %d cycles accepted: closed connections release their slot (or the per-address limit is above %d)", n, n)}
}

// retryWait is how long to wait before retrying a refused attempt: its
// Retry-After, between 1 and 2 s.
func retryWait(a attempt) time.Duration {
	if sec, err := strconv.Atoi(a.header.Get("Retry-After")); err == nil && sec > 0 {
		return min(time.Duration(sec)*time.Second, 2*time.Second)
	}
	return time.Second
}

// sleepFor waits d or until ctx ends; false when ctx ended.
func sleepFor(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func checkXFFSpoof(ctx context.Context, e *env) Result {
	pe, _ := e.pinned() // needsPin
	var held []*session
	defer func() {
		for _, s := range held {
			s.close()
		}
	}()
	sent := fmt.Sprintf("connections held open from %s until refused (at most %d), then one more with X-Forwarded-For: 203.0.113.7", pe.pin, e.o.HeldConns)
	var refusal string
	for i := 0; i < e.o.HeldConns && ctx.Err() == nil; i++ {
		sp := pe.withCred(dialSpec{}, pe.mintFor(fmt.Sprintf("held-%d", i)))
		s, a, ok := pe.tryOpen(ctx, sp)
		if !ok {
			// A rate limit refuses for a moment, a connection limit
			// until a held connection closes: only the latter is the
			// per-address limit to compare the spoofed request with.
			sleepFor(ctx, retryWait(a))
			if s, _, ok = pe.tryOpen(ctx, sp); ok {
				held = append(held, s)
				continue
			}
			refusal = fmt.Sprintf("connection %d refused, again after %s: %s", i+1, retryWait(a), describeTry(a, false))
			break
		}
		held = append(held, s)
	}
	if refusal == "" {
		return Result{Status: Skip, Sent: sent, Got: fmt.Sprintf("%d connections from one address all accepted: no per-address limit to bypass below %d (raise --held-conns above your per-IP limit to test)", len(held), e.o.HeldConns)}
	}
	sp := pe.withCred(dialSpec{}, pe.mintFor("xff"))
	sp.header.Set("X-Forwarded-For", "203.0.113.7")
	sp.header.Set("X-Real-IP", "203.0.113.7")
	s, a, ok := pe.tryOpen(ctx, sp)
	if s != nil {
		s.close()
	}
	got := fmt.Sprintf("%d held; %s; with X-Forwarded-For: 203.0.113.7: %s", len(held), refusal, describeTry(a, ok))
	if ok {
		return Result{Status: Fail, Sent: sent, Got: got + " (the per-address limit is keyed on a header any client sets)"}
	}
	return Result{Status: Pass, Sent: sent, Got: got}
}

// mintFor returns a token for a sub-user of this check (the check's token
// when the tool cannot mint).
func (e *env) mintFor(suffix string) string {
	if !e.cred.canMint() || e.o.Token != "" {
		return e.tok
	}
	tok, err := e.cred.mint(e.sub+"-"+suffix, nil)
	if err != nil {
		return e.tok
	}
	return tok
}

// crashVerdict judges a probe that may crash the server: a 5xx, a close
// 1011 or a server that stops answering is a FAIL.
func (e *env) crashVerdict(ctx context.Context, sent string, a rawAnswer) Result {
	got := a.describe()
	st := Pass
	if a.conn != nil {
		r := a.conn.watch(e, e.o.ReplyWait, func(r rawReaction) bool { return r.gone() })
		_ = a.conn.Close()
		got += "; then " + r.String()
		if r.closed && r.code == 1011 {
			st = Fail
			got += " (1011: an unhandled exception in the handler)"
		}
	}
	if a.status >= 500 {
		st = Fail
		got += " (a server error: the input is not handled)"
	}
	alive, how := e.stillServes(ctx)
	if !alive {
		return Result{Status: Fail, Sent: sent, Got: got + "\nafterwards the server no longer answers (" + how + "): it CRASHED"}
	}
	return Result{Status: st, Sent: sent, Got: got + "\nafterwards a new connection: " + how}
}

func checkMalformedQuery(ctx context.Context, e *env) Result {
	q := e.target.RawQuery
	if q != "" {
		q += "&"
	}
	target := e.target.EscapedPath() + "?" + q + "x=a=b&y=%zz&=&z"
	sent := "an upgrade with the valid credential and the query ?x=a=b&y=%zz&=&z, then a normal upgrade to see the server still answers"
	a := e.rawUpgrade(ctx, e.source(), rawRequest{tok: e.tok, target: target})
	return e.crashVerdict(ctx, sent, a)
}

func checkMalformedHost(ctx context.Context, e *env) Result {
	sent := `an upgrade without credential and the header "Host: a b", then a normal upgrade to see the server still answers`
	a := e.rawUpgrade(ctx, e.source(), rawRequest{host: "a b"})
	return e.crashVerdict(ctx, sent, a)
}
