package check

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// rawProbe opens a raw connection from a fresh address, lets send write
// the probe, and watches until a message, a close or ReplyWait.
func (e *env) rawProbe(ctx context.Context, send func(rc *rawConn) error) (rawReaction, error) {
	rc, _, err := e.rawOpen(ctx, e.source())
	if err != nil {
		return rawReaction{}, err
	}
	defer rc.Close()
	if err := send(rc); err != nil {
		r := rc.watch(e, 500*time.Millisecond, func(r rawReaction) bool { return r.gone() })
		if !r.gone() {
			r.err = err
		}
		return r, nil
	}
	return rc.watch(e, e.o.ReplyWait, func(r rawReaction) bool { return len(r.msgs) > 0 || r.gone() }), nil
}

// inputVerdict grades a reaction to input the server must refuse. good
// says which close codes are the right answer (nil: any but 1011).
func (e *env) inputVerdict(ctx context.Context, r rawReaction, sent []byte, acceptOK bool, good ...uint16) (Status, string) {
	got := r.String()
	switch {
	case r.closed && r.code == 1011, !r.closed && r.err != nil:
		alive, how := e.stillServes(ctx)
		if !alive {
			return Fail, got + "; afterwards the server no longer answers (" + how + "): it CRASHED"
		}
		return Fail, got + " (the handler failed on this input: an unhandled exception)"
	case r.closed:
		if len(good) > 0 && !containsCode(good, r.code) {
			return Warn, got + fmt.Sprintf(" (refused, but %d is the close code that says why)", good[0])
		}
		return Pass, got
	}
	for _, m := range r.msgs {
		if k := classify(m, sent); k == replyError || k == replyRateLimited {
			if len(good) > 0 {
				return Warn, got + fmt.Sprintf(" (an error reply; closing with %d is the protocol's answer)", good[0])
			}
			return Pass, got
		}
	}
	if len(r.msgs) > 0 {
		if acceptOK {
			return Pass, got + " (accepted, as the profile allows)"
		}
		return Fail, got + " (accepted as valid)"
	}
	return Warn, got + " (dropped silently)"
}

func containsCode(cs []uint16, c uint16) bool {
	for _, x := range cs {
		if x == c {
			return true
		}
	}
	return false
}

// bufferProbeBytes is the size the size-buffering check announces.
const bufferProbeBytes = 512 << 10

func checkSizeBuffering(ctx context.Context, e *env) Result {
	sent := fmt.Sprintf("a text frame announcing %d KiB: the header and 4 KiB, a pause of %s, then the rest", bufferProbeBytes>>10, e.o.ReplyWait)
	rc, _, err := e.rawOpen(ctx, e.source())
	if err != nil {
		return e.needConn(err)
	}
	defer rc.Close()
	payload := padded(bufferProbeBytes)
	m := newMask()
	maskAt(m, 0, payload)
	_ = rc.c.SetWriteDeadline(time.Now().Add(e.o.Timeout))
	if _, err := rc.c.Write(append(frameHeader(opText, len(payload), m), payload[:4096]...)); err != nil {
		return Result{Status: Pass, Sent: sent, Got: "refused at the header: " + err.Error()}
	}
	// A server that enforces its limit on the header closes now; the wait
	// is generous because a loaded server may take a while to say so.
	early := rc.watch(e, e.o.ReplyWait, func(r rawReaction) bool { return len(r.msgs) > 0 || r.gone() })
	if early.gone() || len(early.msgs) > 0 {
		return Result{Status: Pass, Sent: sent, Got: "refused from the announced size, before the payload: " + early.String()}
	}
	start := time.Now()
	written := 4096
	for written < len(payload) {
		_ = rc.c.SetWriteDeadline(time.Now().Add(e.o.Timeout))
		n, err := rc.c.Write(payload[written:min(written+64<<10, len(payload))])
		written += n
		if err != nil {
			return Result{Status: Pass, Sent: sent, Got: fmt.Sprintf("the server stopped reading after about %d KiB: %s", written>>10, clip(err.Error(), 80))}
		}
	}
	r := rc.watch(e, e.o.ReplyWait, func(r rawReaction) bool { return len(r.msgs) > 0 || r.gone() })
	got := fmt.Sprintf("all %d KiB written in %s; then %s", written>>10, time.Since(start).Round(time.Millisecond), r)
	if r.gone() || len(r.msgs) > 0 {
		return Result{Status: Fail, Sent: sent, Got: got + " (the server read the whole message before judging its size: every connection can make it buffer that much)"}
	}
	return Result{Status: Warn, Sent: sent, Got: got}
}

// jsonBombs are structure bombs that fit in 8 KB (the guide's limit).
func jsonBombs() []struct{ name, msg string } {
	depth := 4000
	deep := `{"type":"ping","x":` + strings.Repeat("[", depth) + strings.Repeat("]", depth) + `}`
	var b strings.Builder
	b.WriteString(`{"type":"ping"`)
	for i := 0; b.Len() < 8000; i++ {
		b.WriteString(`,"k` + strconv.Itoa(i) + `":0`)
	}
	b.WriteString("}")
	return []struct{ name, msg string }{{"4000-deep nesting", deep}, {"~1000 keys", b.String()}}
}

func checkJSONBomb(ctx context.Context, e *env) Result {
	res := Result{Status: Skip, Sent: `two ~8 KB messages of type ping, each on its own connection: {"type":"ping","x":[[[…4000 deep…]]]} and {"type":"ping","k0":0,…~1000 keys…}`}
	var gots []string
	for _, bomb := range jsonBombs() {
		r, err := e.rawProbe(ctx, func(rc *rawConn) error { return rc.writeFrame(e, opText, []byte(bomb.msg)) })
		if err != nil {
			return e.needConn(err)
		}
		st, got := e.inputVerdict(ctx, r, []byte(bomb.msg), false)
		res.Status = worst(res.Status, st)
		gots = append(gots, bomb.name+": "+got)
	}
	res.Got = strings.Join(gots, "\n")
	return res
}

func checkBinary(ctx context.Context, e *env) Result {
	msg := []byte(e.o.Message)
	r, err := e.rawProbe(ctx, func(rc *rawConn) error { return rc.writeFrame(e, opBinary, msg) })
	if err != nil {
		return e.needConn(err)
	}
	st, got := e.inputVerdict(ctx, r, msg, e.o.Profile.allowBinary())
	return Result{Status: st, Sent: fmt.Sprintf("%s as a binary frame", msg), Got: got}
}

func checkInvalidUTF8(ctx context.Context, e *env) Result {
	msg := []byte("{\"type\":\"ping\",\"x\":\"\xff\xfe\xc0\xaf\"}")
	r, err := e.rawProbe(ctx, func(rc *rawConn) error { return rc.writeFrame(e, opText, msg) })
	if err != nil {
		return e.needConn(err)
	}
	st, got := e.inputVerdict(ctx, r, msg, false, 1007)
	return Result{Status: st, Sent: `a text frame {"type":"ping","x":"\xff\xfe\xc0\xaf"} (invalid UTF-8)`, Got: got}
}

func checkInvalidRate(ctx context.Context, e *env) Result {
	s, bad := e.openOrExplain(ctx)
	if bad != nil {
		return *bad
	}
	defer s.close()
	msg := []byte(`{"type":"wsgate-check.invalid",`)
	sent, start := 0, time.Now()
	for sent < e.o.FloodMessages && time.Since(start) < e.o.FloodWindow && ctx.Err() == nil {
		if s.send(msg) != nil {
			break
		}
		sent++
	}
	msgs, closed := s.collect(ctx, time.Second, nil)
	closed = closed || s.cl.isClosed()
	rate, errs := 0, 0
	for _, m := range msgs {
		switch classify(m, msg) {
		case replyRateLimited:
			rate++
		case replyError:
			errs++
		}
	}
	desc := fmt.Sprintf("%q (invalid JSON) × %d within %s", msg, sent, e.o.FloodWindow)
	got := fmt.Sprintf("%d rate-limit replies, %d other error replies", rate, errs)
	if closed {
		code, reason := s.cl.closeInfo()
		got += fmt.Sprintf("; closed with %d %q", code, reason)
	}
	e.sh.mu.Lock()
	after := e.sh.throttleAfter
	e.sh.mu.Unlock()
	switch {
	case rate > 0 || closed:
		return Result{Status: Pass, Sent: desc, Got: got}
	case after > 0 && sent > after:
		return Result{Status: Fail, Sent: desc, Got: got + fmt.Sprintf(" (valid messages were throttled after %d in message-flood; %d invalid ones were all processed: invalid input bypasses the rate limit)", after, sent)}
	}
	return Result{Status: Warn, Sent: desc, Got: got + " (no throttling seen, for valid messages either: see message-flood)"}
}

func checkKeepalive(ctx context.Context, e *env) Result {
	s, bad := e.openOrExplain(ctx)
	if bad != nil {
		return *bad
	}
	defer s.close()
	sent := fmt.Sprintf("an open connection, silent for up to %s, answering pings", e.o.KeepaliveWait)
	start := time.Now()
	select {
	case <-s.cl.pinged:
		return Result{Status: Pass, Sent: sent, Got: fmt.Sprintf("the server pinged after %s", time.Since(start).Round(100*time.Millisecond))}
	case <-s.cl.closed:
		code, reason := s.cl.closeInfo()
		return Result{Status: Pass, Sent: sent, Got: fmt.Sprintf("no ping, but the server closed the silent connection after %s with %d %q", time.Since(start).Round(100*time.Millisecond), code, reason)}
	case <-time.After(e.o.KeepaliveWait):
	case <-ctx.Done():
	}
	return Result{Status: Warn, Sent: sent, Got: fmt.Sprintf("no ping within %s (informational: a longer ping interval cannot be ruled out; raise --keepalive-wait above it to confirm)", e.o.KeepaliveWait)}
}

// pingFloodCount bounds the ping flood.
const pingFloodCount = 1000

func checkPingFlood(ctx context.Context, e *env) Result {
	rc, _, err := e.rawOpen(ctx, e.source())
	if err != nil {
		return e.needConn(err)
	}
	defer rc.Close()
	sent := 0
	payload := []byte("wsgate-check-ping")
	start := time.Now()
	var werr error
	for sent < pingFloodCount && time.Since(start) < 2*time.Second {
		if werr = rc.writeFrame(e, opPing, payload); werr != nil {
			break
		}
		sent++
	}
	r := rc.watch(e, time.Second, func(r rawReaction) bool { return r.pongs >= sent })
	desc := fmt.Sprintf("%d ping frames of %d bytes as fast as possible", sent, len(payload))
	got := r.String()
	switch {
	case r.closed || werr != nil:
		return Result{Status: Pass, Sent: desc, Got: got}
	case r.pongs >= sent:
		return Result{Status: Warn, Sent: desc, Got: got + " (every ping answered: control frames cost a write each and are not limited)"}
	}
	return Result{Status: Pass, Sent: desc, Got: got + " (not every ping answered)"}
}

// Amplification probe bounds.
const (
	ampReceivers = 3
	ampMessages  = 20
	ampBytes     = 2048
)

func checkAmplification(ctx context.Context, e *env) Result {
	if !e.o.Amplification {
		return Result{Status: Skip, Got: "opt-in: pass --amplification (it sends chat messages other clients of the server may see)"}
	}
	marker := "wsgate-check-amplification"
	msg := []byte(fmt.Sprintf(`{"type":"chat","text":%q}`, marker+strings.Repeat("x", ampBytes)))
	sent := fmt.Sprintf("%d receivers connect (one reads, the others never read), then a sender sends %d chat messages of %d bytes without anyone subscribing", ampReceivers, ampMessages, len(msg))
	var recv []*rawConn
	defer func() {
		for _, rc := range recv {
			_ = rc.Close()
		}
	}()
	for i := range ampReceivers {
		rc, _, err := e.rawOpenAs(ctx, e.source(), e.mintFor(fmt.Sprintf("r%d", i)))
		if err != nil {
			return e.needConn(err)
		}
		recv = append(recv, rc)
	}
	sender, _, err := e.rawOpenAs(ctx, e.source(), e.mintFor("sender"))
	if err != nil {
		return e.needConn(err)
	}
	defer sender.Close()
	for range ampMessages {
		if err := sender.writeFrame(e, opText, msg); err != nil {
			break
		}
	}
	r := recv[0].watch(e, e.o.ReplyWait, func(r rawReaction) bool { return len(r.msgs) >= ampMessages || r.gone() })
	got := 0
	for _, m := range r.msgs {
		if bytes.Contains(m, []byte(marker)) {
			got++
		}
	}
	if got == 0 {
		return Result{Status: Pass, Sent: sent, Got: "no receiver got the sender's messages: " + r.String()}
	}
	return Result{Status: Fail, Sent: sent, Got: fmt.Sprintf("the reading receiver got %d of %d messages it never subscribed to: each message is written to every client (×%d here), unsanitised, and queued for clients that never read", got, ampMessages, ampReceivers)}
}
