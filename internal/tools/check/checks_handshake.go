package check

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// judgeRefused says whether an attempt that should have been refused was.
// A 101 followed at once by a close without data is authentication after
// the upgrade: a WARN, not a FAIL.
func (e *env) judgeRefused(ctx context.Context, a attempt) (Status, string) {
	if a.sess != nil {
		s := a.sess
		var msgs [][]byte
		if s.first != nil {
			msgs = append(msgs, s.first)
		}
		more, closed := s.collect(ctx, 500*time.Millisecond, func([]byte) bool { return true })
		msgs = append(msgs, more...)
		code, reason := s.cl.closeInfo()
		s.close()
		if closed && len(msgs) == 0 {
			return Warn, fmt.Sprintf("101 Switching Protocols, then closed at once with %d %q (authenticates after the upgrade)", code, reason)
		}
		got := "101 Switching Protocols; connection stayed open"
		if len(msgs) > 0 {
			got += "; server sent " + summarize(msgs)
		}
		return Fail, got
	}
	switch {
	case a.status == http.StatusUnauthorized || a.status == http.StatusForbidden:
		return Pass, a.describe()
	case a.status == http.StatusTooManyRequests || a.status == http.StatusServiceUnavailable:
		return Error, a.describe() + " (rate limited: inconclusive; rerun with fewer checks or later)"
	case a.status >= 500:
		return Warn, a.describe() + " (a server error on a bad credential: the failure path is not handled)"
	case a.status != 0:
		return Pass, a.describe()
	}
	var op *net.OpError
	if errors.As(a.err, &op) && op.Op == "dial" {
		return Error, a.describe()
	}
	return Pass, a.describe() + " (dropped without an HTTP answer; a 401 tells clients why)"
}

func (e *env) sentWith(what string) string {
	via := e.o.TokenVia
	switch {
	case via == "header":
		via = "Authorization: Bearer"
	case via == "subprotocol":
		via = "Sec-WebSocket-Protocol token.<jwt>"
	case via == "query":
		via = "?token="
	}
	return fmt.Sprintf("upgrade request to %s with %s (via %s)", e.target.Path, what, via)
}

func checkNoCredential(ctx context.Context, e *env) Result {
	a := e.retry(ctx, dialSpec{url: e.target.String(), header: e.baseHeader(), subprotocols: e.o.Subprotocols})
	st, got := e.judgeRefused(ctx, a)
	return Result{Status: st, Sent: "upgrade request to " + e.target.Path + " without any credential", Got: got}
}

func checkMalformed(ctx context.Context, e *env) Result {
	a := e.dialWith(ctx, "wsgate-check.malformed-token.!", nil)
	st, got := e.judgeRefused(ctx, a)
	return Result{Status: st, Sent: e.sentWith(`the malformed token "wsgate-check.malformed-token.!"`), Got: got}
}

func checkExpired(ctx context.Context, e *env) Result {
	if !e.cred.canMint() {
		return Result{Status: Warn, Got: "skipped: needs --secret or --key to sign an expired token",
			Why: "expiry is only tested with a token the server would otherwise accept, which takes the signing key",
			Fix: "rerun with --secret or --key (on a test deployment)"}
	}
	tok, err := e.cred.expired()
	if err != nil {
		return Result{Status: Error, Got: err.Error()}
	}
	st, got := e.judgeRefused(ctx, e.dialWith(ctx, tok, nil))
	return Result{Status: st, Sent: e.sentWith("a correctly signed token whose exp is one hour ago"), Got: got}
}

func checkBadSignature(ctx context.Context, e *env) Result {
	tok, err := flipSignature(e.cred.forgeBase())
	if err != nil {
		return Result{Status: Skip, Got: "the token is not a JWT: " + err.Error()}
	}
	st, got := e.judgeRefused(ctx, e.dialWith(ctx, tok, nil))
	return Result{Status: st, Sent: e.sentWith("the credential's claims with two signature bytes flipped"), Got: got}
}

func checkAlgNone(ctx context.Context, e *env) Result {
	base := e.cred.forgeBase()
	res := Result{Status: Skip, Sent: e.sentWith(`the credential's claims, header alg "none"/"None"/"NONE", empty signature`)}
	var gots []string
	for _, alg := range []string{"none", "None", "NONE"} {
		tok, err := withAlg(base, alg)
		if err != nil {
			return Result{Status: Skip, Got: "the token is not a JWT: " + err.Error()}
		}
		st, got := e.judgeRefused(ctx, e.dialWith(ctx, tok, nil))
		res.Status = worst(res.Status, st)
		gots = append(gots, fmt.Sprintf("alg %q: %s", alg, got))
	}
	res.Got = strings.Join(gots, "\n")
	return res
}

func checkKeyConfusion(ctx context.Context, e *env) Result {
	if e.cred.pubPEM == nil {
		return Result{Status: Skip, Got: "needs an asymmetric --key (RSA, ECDSA or Ed25519)"}
	}
	tok, err := keyConfusion(e.cred.forgeBase(), e.cred.pubPEM)
	if err != nil {
		return Result{Status: Error, Got: err.Error()}
	}
	st, got := e.judgeRefused(ctx, e.dialWith(ctx, tok, nil))
	return Result{Status: st, Sent: e.sentWith("the credential's claims signed HS256 with the public key PEM as HMAC secret"), Got: got}
}

func checkTokenInURL(ctx context.Context, e *env) Result {
	res := Result{Status: Pass, Sent: "upgrade requests carrying the valid token only in the URL: ?token=<token>, ?access_token=<token>"}
	var gots []string
	for _, p := range []string{"token", "access_token"} {
		a := e.retry(ctx, dialSpec{url: withQuery(e.target, p, e.tok), header: e.baseHeader(), subprotocols: e.o.Subprotocols})
		if a.sess != nil {
			a.sess.close()
			res.Status = Fail
		}
		gots = append(gots, fmt.Sprintf("?%s=: %s", p, a.describe()))
	}
	res.Got = strings.Join(gots, "\n")
	if e.o.TokenVia == "query" {
		res.Status = Fail
		res.Got += "\n(--token-via query: your clients send the token in the URL)"
	}
	return res
}

func checkOrigin(ctx context.Context, e *env) Result {
	origins := []string{"https://evil.example", "null"}
	if ou, err := url.Parse(e.o.Origin); err == nil && ou.Host != "" {
		origins = append(origins, ou.Scheme+"://"+ou.Host+".evil.example")
	}
	res := Result{Status: Skip, Sent: e.sentWith("a valid credential") + " and Origin: " + strings.Join(origins, ", ")}
	var gots []string
	for _, o := range origins {
		h := http.Header{"Origin": {o}}
		a := e.dialWith(ctx, "", h)
		var st Status
		switch {
		case a.sess != nil:
			a.sess.close()
			st = Fail
		case e.cred.valid == "" && a.status == http.StatusUnauthorized:
			st = Skip // refused for the credential, says nothing about Origin
		case a.status == http.StatusForbidden:
			st = Pass
		case a.status == http.StatusTooManyRequests || a.status == http.StatusServiceUnavailable:
			st = Error
		case a.status != 0:
			st = Warn // refused, but not with 403: maybe for another reason
		default:
			st = Pass
		}
		res.Status = worst(res.Status, st)
		gots = append(gots, fmt.Sprintf("Origin %s: %s", o, a.describe()))
	}
	res.Got = strings.Join(gots, "\n")
	if res.Status == Skip {
		res.Got += "\n(refused for lack of credential: give --token, --secret or --key to test the Origin check)"
	}
	return res
}

func checkPlaintext(ctx context.Context, e *env) Result {
	if e.target.Scheme == "ws" {
		host := e.target.Hostname()
		if err := checkLoopback(ctx, host); err == nil {
			return Result{Status: Warn, Sent: "nothing (the target itself is ws://)",
				Got: "the target is plaintext ws:// on loopback (fine behind a TLS-terminating proxy on the same host)"}
		}
		return Result{Status: Fail, Sent: "nothing (the target itself is ws://)", Got: "the target is plaintext ws:// on a network address"}
	}
	ports := []string{e.target.Port()}
	if ports[0] == "" {
		ports[0] = "443"
	}
	for _, p := range e.o.PlainPorts {
		ports = append(ports, strconv.Itoa(p))
	}
	res := Result{Status: Pass, Sent: "upgrade requests over plaintext ws:// (without credential) to port " + strings.Join(ports, ", ")}
	var gots []string
	for _, p := range ports {
		pu := *e.target
		pu.Scheme, pu.Host, pu.RawQuery = "ws", net.JoinHostPort(e.target.Hostname(), p), ""
		a := e.dial(ctx, dialSpec{url: pu.String(), header: e.baseHeader(), subprotocols: e.o.Subprotocols})
		st := Pass
		switch {
		case a.sess != nil:
			a.sess.close()
			st = Fail
		case a.status == http.StatusUnauthorized || a.status == http.StatusForbidden || a.status == http.StatusTooManyRequests:
			st = Warn // a plaintext WebSocket endpoint exists
		}
		res.Status = worst(res.Status, st)
		gots = append(gots, fmt.Sprintf("ws://…:%s: %s", p, a.describe()))
	}
	res.Got = strings.Join(gots, "\n")
	return res
}
