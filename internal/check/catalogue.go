package check

import "context"

// catalogue is every check in run order. The order matters against servers
// with strikes and bans (wsgate among them): checks that break rules come
// after the ones that need a clean record, and the floods come last.
var catalogue = []checkDef{
	{name: "tls-version", title: "Old TLS versions refused", dials: false, run: checkTLSVersion,
		why: "TLS 1.0 and 1.1 are deprecated (RFC 8996): weak ciphers, downgrade attacks",
		fix: "set the minimum TLS version to 1.2 (wsgate: tls.min_version: \"1.2\", the default)"},
	{name: "tls-cert", title: "Certificate valid, trusted, not expiring soon", dials: false, run: checkTLSCert,
		why: "an invalid certificate makes clients fail, or teaches them to skip verification, which allows interception",
		fix: "serve a certificate for this host name from a trusted CA and renew it automatically"},
	{name: "baseline", title: "A legitimate client is accepted", dials: true, run: checkBaseline,
		why: "checks that need an open connection cannot run if the credential is refused",
		fix: "check --token/--secret/--key, --claim, --origin and --subprotocol for this server"},
	{name: "no-credential", title: "Upgrade without credential refused", dials: true, run: checkNoCredential,
		why: "without handshake authentication anyone who reaches the endpoint gets a connection (the guide: 70% of implementations)",
		fix: "verify a token (or a client certificate) before answering 101 and refuse with 401"},
	{name: "malformed-token", title: "Malformed token refused", dials: true, run: checkMalformed,
		why: "a parser that accepts garbage, or crashes on it, lets anyone in or down",
		fix: "parse tokens with a strict JWT library and refuse anything that does not verify with 401"},
	{name: "expired-token", title: "Expired token refused", dials: true, run: checkExpired,
		why: "a stolen token must stop working when it expires",
		fix: "require and check exp (with a small leeway) at the handshake, and close connections when the token expires"},
	{name: "bad-signature", title: "Wrongly signed token refused", dials: true, run: checkBadSignature,
		why: "a server that decodes tokens without verifying the signature accepts forged identities",
		fix: "verify the signature with the configured key; never use jwt.decode without verification"},
	{name: "alg-none", title: "Token with alg none refused", dials: true, run: checkAlgNone,
		why: "libraries that honour the token's alg header accept unsigned tokens (alg: none) as valid",
		fix: "pin the accepted algorithms per key on the server; never take the algorithm from the token"},
	{name: "key-confusion", title: "HS256 signed with the public key refused", dials: true, run: checkKeyConfusion,
		why: "a server that lets the token choose HS256 verifies it with the RSA/EC public key as HMAC secret: anyone can forge tokens",
		fix: "bind each key to its algorithm family (RS*/ES*/EdDSA for public keys, HS* only for secrets)"},
	{name: "token-in-url", title: "Token not accepted in the URL", dials: true, run: checkTokenInURL,
		why: "URLs end up in access logs, proxies, browser history and Referer headers: a token there leaks",
		fix: "take the token from the Authorization header, a Sec-WebSocket-Protocol entry or a cookie; for browsers use a short one-time ticket (wsgate: keep auth.allow_query_token off)"},
	{name: "cross-origin", title: "Cross-site Origin refused (CSWSH)", dials: true, run: checkOrigin,
		why: "browsers send cookies with cross-site WebSocket upgrades; without an Origin check any web page can open a connection as the victim (cross-site WebSocket hijacking)",
		fix: "check Origin against an exact allow-list before the 101 and refuse others with 403 (wsgate: origins.allowed)"},
	{name: "plaintext", title: "No plaintext ws:// endpoint", dials: true, run: checkPlaintext,
		why: "over ws:// tokens and messages travel in clear and can be read or changed on the path",
		fix: "serve only wss:// (TLS); close plaintext ports or redirect them to https"},
	{name: "compression", title: "permessage-deflate declined", dials: true, run: checkCompression,
		why: "compression costs memory per connection and lets a small frame inflate into a huge message (decompression bomb); it also enables CRIME/BREACH-style leaks when secrets and attacker data share a message",
		fix: "leave compression off unless measured to help; if on, cap the inflated size and windows (wsgate: compression.enabled: false)"},
	{name: "idle-timeout", title: "Idle connections closed", dials: true, run: checkIdle,
		why: "connections that never send anything hold memory and file descriptors forever",
		fix: "close connections idle for longer than the application needs (wsgate: timeouts.idle)"},
	{name: "oversize", title: "Oversized message refused", dials: true, run: checkOversize,
		why: "the guide: size-check every message; without a limit one client can make the server buffer megabytes per message",
		fix: "cap the message size before reading the payload and close with 1009 (wsgate: limits.max_message_bytes)"},
	{name: "invalid-json", title: "Invalid JSON answered with an error", dials: true, run: checkInvalidJSON,
		why: "the guide: validate every message; a server that acts on or reflects unparsed input is open to injection",
		fix: "parse strictly, answer invalid messages with an error reply or close 1007/1008, never echo them"},
	{name: "unknown-type", title: "Unknown message type answered with an error", dials: true, run: checkUnknownType,
		why: "messages outside the protocol's schema must not reach handlers",
		fix: "validate against a schema per message type and refuse unknown types with an error reply"},
	{name: "replay", title: "Replayed signed message refused", dials: true, run: checkReplay,
		why: "the guide: a captured signed message must not be accepted twice",
		fix: "check a nonce/sequence and timestamp on signed messages (wsgate: integrity.mode)"},
	{name: "error-leak", title: "No stack traces or internals in answers", dials: true, run: checkErrorLeak,
		why: "stack traces and file paths in error replies show attackers the code, versions and layout",
		fix: "send short static error codes; log details server side only"},
	{name: "conn-flood", title: "Connection flood from one address limited", dials: true, run: checkConnFlood,
		why: "the guide: rate-limit connections per IP; otherwise one host can exhaust memory and file descriptors",
		fix: "limit handshakes per IP (token bucket) and concurrent connections per IP and per user, refusing with 429 (wsgate: limits.handshake_rate, limits.connections)"},
	{name: "message-flood", title: "Message flood throttled", dials: true, run: checkMessageFlood,
		why: "the guide: rate-limit messages; otherwise one connection can monopolise the server",
		fix: "apply per-connection, per-user and per-IP message budgets, answer rate_limited errors and close persistent abusers with 1008 (wsgate: rate.tiers)"},
}

func checkBaseline(ctx context.Context, e *env) Result {
	what := "the valid credential (" + e.cred.source + ")"
	if e.cred.valid == "" {
		what = "no credential (none given)"
	}
	sent := "upgrade request with " + what
	if e.o.Origin != "" {
		sent += " and Origin " + e.o.Origin
	}
	if err := e.baseline(ctx); err != nil {
		r := e.needConn(err)
		r.Sent = sent
		if e.cred.valid == "" {
			r.Status = Skip
		}
		return r
	}
	return Result{Status: Pass, Sent: sent, Got: "101 Switching Protocols"}
}
