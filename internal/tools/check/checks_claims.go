package check

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// needKey is the result of a check that must sign tokens itself.
func needKey() Result {
	return Result{Status: Skip, Got: "needs --secret or --key to sign tokens with chosen claims",
		Fix: "rerun with --secret or --key (on a test deployment)"}
}

func checkAuthAfterUpgrade(ctx context.Context, e *env) Result {
	bad, err := flipSignature(e.cred.forgeBase())
	if err != nil {
		bad = "wsgate-check.not-a-token"
	}
	res := Result{Status: Pass, Sent: "an upgrade without credential, and one with a wrongly signed token"}
	var gots []string
	for _, tc := range []struct{ what, tok string }{{"no credential", ""}, {"bad signature", bad}} {
		sp := e.withCred(dialSpec{}, tc.tok)
		a := e.dial(ctx, sp)
		got := a.describe()
		if a.sess != nil {
			s := a.sess
			s.collect(ctx, 500*time.Millisecond, func([]byte) bool { return true })
			code, reason := s.cl.closeInfo()
			if s.cl.isClosed() {
				got = fmt.Sprintf("101 Switching Protocols, then closed with %d %q", code, reason)
			} else {
				got = "101 Switching Protocols, connection stayed open"
			}
			s.close()
			res.Status = Fail
		}
		gots = append(gots, tc.what+": "+got)
	}
	res.Got = strings.Join(gots, "\n")
	return res
}

// claimsProbe mints a token with the given claim overrides (nil deletes a
// claim) and lifetime and reports whether the server accepted it.
func (e *env) claimsProbe(ctx context.Context, ttl time.Duration, claims map[string]any) (Status, string) {
	tok, err := e.cred.signer.Mint(e.sub, ttl, mergeClaims(e.cred.claims, claims))
	if err != nil {
		return Error, err.Error()
	}
	return e.judgeRefused(ctx, e.dialWith(ctx, tok, nil))
}

func mergeClaims(base, over map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		out[k] = v
	}
	return out
}

func checkClaimsNoExp(ctx context.Context, e *env) Result {
	if !e.cred.canMint() {
		return needKey()
	}
	st, got := e.claimsProbe(ctx, time.Minute, map[string]any{"exp": nil})
	return Result{Status: st, Sent: e.sentWith("a correctly signed token without exp"), Got: got}
}

func checkClaimsLifetime(ctx context.Context, e *env) Result {
	if !e.cred.canMint() {
		return needKey()
	}
	st, got := e.claimsProbe(ctx, 10*365*24*time.Hour, nil)
	return Result{Status: st, Sent: e.sentWith("a correctly signed token issued now, valid for 10 years"), Got: got}
}

func checkClaimsSubject(ctx context.Context, e *env) Result {
	if !e.cred.canMint() {
		return needKey()
	}
	res := Result{Status: Skip, Sent: e.sentWith(`correctly signed tokens without sub, with sub "" and with sub 12345 (a number)`)}
	var gots []string
	for _, tc := range []struct {
		what string
		sub  any
	}{{"no sub", nil}, {`sub ""`, ""}, {"sub 12345", 12345}} {
		st, got := e.claimsProbe(ctx, time.Minute, map[string]any{"sub": tc.sub})
		res.Status = worst(res.Status, st)
		gots = append(gots, tc.what+": "+got)
	}
	res.Got = strings.Join(gots, "\n")
	return res
}

// expiryTTL is the lifetime of the token-expiry probe's token.
const expiryTTL = 3 * time.Second

func checkTokenExpiry(ctx context.Context, e *env) Result {
	if !e.cred.canMint() {
		return needKey()
	}
	exp := time.Now().Add(expiryTTL).Unix()
	tok, err := e.cred.mint(e.sub, map[string]any{"exp": exp})
	if err != nil {
		return Result{Status: Error, Got: err.Error()}
	}
	sent := fmt.Sprintf("an upgrade with a token expiring in %s, then nothing until 1.5 s after exp, then %s", expiryTTL, e.o.Message)
	a := e.dialWith(ctx, tok, nil)
	if a.sess == nil {
		r := e.needConn(&refusedError{a: a})
		r.Sent = sent
		return r
	}
	s := a.sess
	defer s.close()
	wait := time.Until(time.Unix(exp, 0).Add(1500 * time.Millisecond))
	select {
	case <-s.cl.closed:
		code, reason := s.cl.closeInfo()
		return Result{Status: Pass, Sent: sent, Got: fmt.Sprintf("closed when the token expired: %d %q", code, reason)}
	case <-time.After(wait):
	case <-ctx.Done():
		return Result{Status: Error, Sent: sent, Got: "run cancelled"}
	}
	r := e.probe(ctx, s, []byte(e.o.Message))
	if r.closed || r.writeErr != nil || r.errReply {
		return Result{Status: Pass, Sent: sent, Got: "still open after exp, but the next message was refused: " + r.String()}
	}
	return Result{Status: Fail, Sent: sent, Got: "the connection outlived its token by 1.5 s and still served: " + r.String()}
}

func checkTokenEcho(ctx context.Context, e *env) Result {
	offer := append([]string{"token." + e.tok}, e.o.Subprotocols...)
	sent := "an upgrade offering Sec-WebSocket-Protocol: token.<jwt>"
	if len(e.o.Subprotocols) > 0 {
		sent += ", " + strings.Join(e.o.Subprotocols, ", ")
	}
	a := e.rawUpgrade(ctx, e.source(), rawRequest{header: http.Header{"Sec-WebSocket-Protocol": {strings.Join(offer, ", ")}}})
	if a.conn != nil {
		_ = a.conn.Close()
	}
	picked := ""
	if a.header != nil {
		picked = a.header.Get("Sec-WebSocket-Protocol")
	}
	if picked != "" && (strings.Contains(picked, e.tok) || strings.HasPrefix(picked, "token.")) {
		return Result{Status: Fail, Sent: sent, Got: a.describe() + " with Sec-WebSocket-Protocol: token.<the JWT> (the credential echoed in a response header, where proxies and logs keep it)"}
	}
	got := a.describe()
	if picked != "" {
		got += "; Sec-WebSocket-Protocol: " + clip(picked, 60)
	} else if a.status == http.StatusSwitchingProtocols {
		got += "; no subprotocol selected"
	}
	return Result{Status: Pass, Sent: sent, Got: got}
}
