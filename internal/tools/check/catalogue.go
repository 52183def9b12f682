package check

import "context"

// catalogue is every check in run order. The order matters against servers
// with strikes and bans (wsgate among them): checks that break rules come
// after the ones that need a clean record, the floods after them, and the
// probes that may crash the server last. Against loopback targets every
// connection comes from its own source address (see srcAlloc), so the
// order only matters against remote targets, where ban-prone checks are
// moved to the end (selectChecks).
var catalogue = []checkDef{
	{name: "tls-version", title: "Old TLS versions refused", severity: "warning", dials: false, run: checkTLSVersion,
		why: "TLS 1.0 and 1.1 are deprecated (RFC 8996): weak ciphers, downgrade attacks",
		fix: "set the minimum TLS version to 1.2 (wsgate: tls.min_version: \"1.2\", the default)"},
	{name: "tls-cert", title: "Certificate valid, trusted, not expiring soon", severity: "warning", dials: false, run: checkTLSCert,
		why: "an invalid certificate makes clients fail, or teaches them to skip verification, which allows interception",
		fix: "serve a certificate for this host name from a trusted CA and renew it automatically"},
	{name: "baseline", title: "A legitimate client is accepted", severity: "warning", dials: true, run: checkBaseline,
		why: "checks that need an open connection cannot run if the credential is refused",
		fix: "check --token/--secret/--key, --claim, --origin and --subprotocol for this server"},
	{name: "no-credential", title: "Upgrade without credential refused", severity: "error", dials: true, run: checkNoCredential,
		why: "without handshake authentication anyone who reaches the endpoint gets a connection (the guide: 70% of implementations)",
		fix: "verify a token (or a client certificate) before answering 101 and refuse with 401"},
	{name: "auth-after-upgrade", title: "Authentication before the upgrade", severity: "error", dials: true, banProne: true, run: checkAuthAfterUpgrade,
		why: "a server that answers 101 and only then checks the token has already spent a WebSocket connection (memory, a file descriptor, handler work) on anyone; the guide requires refusing with 401 before the upgrade",
		fix: "verify the credential in the HTTP upgrade request and answer 401 without upgrading (wsgate does this always; Python websockets: process_request, Node ws: verifyClient or the upgrade handler)"},
	{name: "malformed-token", title: "Malformed token refused", severity: "error", banProne: true, dials: true, run: checkMalformed,
		why: "a parser that accepts garbage, or crashes on it, lets anyone in or down",
		fix: "parse tokens with a strict JWT library and refuse anything that does not verify with 401"},
	{name: "expired-token", title: "Expired token refused", severity: "error", banProne: true, dials: true, run: checkExpired,
		why: "a stolen token must stop working when it expires",
		fix: "require and check exp (with a small leeway) at the handshake, and close connections when the token expires"},
	{name: "bad-signature", title: "Wrongly signed token refused", severity: "error", banProne: true, dials: true, run: checkBadSignature,
		why: "a server that decodes tokens without verifying the signature accepts forged identities",
		fix: "verify the signature with the configured key; never use jwt.decode without verification"},
	{name: "alg-none", title: "Token with alg none refused", severity: "error", banProne: true, dials: true, run: checkAlgNone,
		why: "libraries that honour the token's alg header accept unsigned tokens (alg: none) as valid",
		fix: "pin the accepted algorithms per key on the server; never take the algorithm from the token"},
	{name: "key-confusion", title: "HS256 signed with the public key refused", severity: "error", banProne: true, dials: true, run: checkKeyConfusion,
		why: "a server that lets the token choose HS256 verifies it with the RSA/EC public key as HMAC secret: anyone can forge tokens",
		fix: "bind each key to its algorithm family (RS*/ES*/EdDSA for public keys, HS* only for secrets)"},
	{name: "claims-no-exp", title: "Token without exp refused", severity: "error", dials: true, banProne: true, run: checkClaimsNoExp,
		why: "a token without exp never expires: once stolen it works forever",
		fix: "require exp on every token (wsgate requires it; PyJWT: options={\"require\": [\"exp\"]}; jsonwebtoken: check decoded.exp)"},
	{name: "claims-subject", title: "Token without a string subject refused", severity: "error", dials: true, banProne: true, run: checkClaimsSubject,
		why: "a token without a subject (or an empty or non-string one) makes an anonymous or ambiguous user: per-user limits, bans and authorisation key on nothing",
		fix: "require a non-empty string subject (wsgate: auth.subject_claim, enforced)"},
	{name: "claims-lifetime", title: "Token with an excessive lifetime refused", severity: "warning", dials: true, banProne: true, run: checkClaimsLifetime,
		why: "a token valid for years is as good as a password that cannot be changed: a leak lasts",
		fix: "refuse tokens whose exp - iat exceeds what your issuer mints (wsgate: auth.max_lifetime, default 24h)"},
	{name: "token-expiry", title: "Connection closed when its token expires", severity: "error", dials: true, slow: true, run: checkTokenExpiry,
		why: "a connection opened with a token that then expires (or is revoked) keeps the access the token no longer grants, for as long as the socket lives",
		fix: "close the connection at the token's exp unless the client refreshes it (wsgate does: close 4001, refresh message)"},
	{name: "token-in-url", title: "Token not accepted in the URL", severity: "warning", dials: true, needsCred: true, run: checkTokenInURL,
		why: "URLs end up in access logs, proxies, browser history and Referer headers: a token there leaks",
		fix: "take the token from the Authorization header, a Sec-WebSocket-Protocol entry or a cookie; for browsers use a short one-time ticket (wsgate: keep auth.allow_query_token off)"},
	{name: "token-echo", title: "Token not echoed in Sec-WebSocket-Protocol", severity: "warning", dials: true, needsCred: true, run: checkTokenEcho,
		why: "a server that picks the first offered subprotocol echoes token.<jwt> in the 101 response, where proxies, CDNs and browser tools log it",
		fix: "select only known application subprotocols, never the token entry (wsgate does; Node ws: handleProtocols)"},
	{name: "cross-origin", title: "Cross-site Origin refused (CSWSH)", severity: "error", dials: true, run: checkOrigin,
		why: "browsers send cookies with cross-site WebSocket upgrades; without an Origin check any web page can open a connection as the victim (cross-site WebSocket hijacking)",
		fix: "check Origin against an exact allow-list before the 101 and refuse others with 403 (wsgate: origins.allowed)"},
	{name: "plaintext", title: "No plaintext ws:// endpoint", severity: "error", dials: true, run: checkPlaintext,
		why: "over ws:// tokens and messages travel in clear and can be read or changed on the path",
		fix: "serve only wss:// (TLS); close plaintext ports or redirect them to https"},
	{name: "compression", title: "permessage-deflate declined", severity: "warning", dials: true, run: checkCompression,
		why: "compression costs memory per connection and lets a small frame inflate into a huge message (decompression bomb); it also enables CRIME/BREACH-style leaks when secrets and attacker data share a message",
		fix: "leave compression off unless measured to help; if on, cap the inflated size and windows (wsgate: compression.enabled: false)"},
	{name: "version-426", title: "Wrong WebSocket version answered 426 with the supported version", severity: "warning", dials: true, run: checkVersion426,
		why: "RFC 6455 §4.4: a server must refuse versions it does not speak with 426 and Sec-WebSocket-Version so clients can negotiate; accepting one is undefined behaviour",
		fix: "answer 426 Upgrade Required with Sec-WebSocket-Version: 13 (wsgate does)"},
	{name: "oversized-headers", title: "Oversized request headers refused", severity: "warning", dials: true, banProne: true, run: checkOversizedHeaders,
		why: "every pending handshake holds its request head in memory; unbounded heads make that memory the attacker's choice",
		fix: "cap the request head (wsgate: limits.max_header_bytes, 8 KB; Node: --max-http-header-size)"},
	{name: "slowloris", title: "Slowly dripped request head dropped (slowloris)", severity: "warning", dials: true, slow: true, run: checkSlowloris,
		why: "a client that sends its request head a byte at a time holds a socket and a handler for as long as the server waits: a few hundred exhaust it",
		fix: "bound the time to receive the request head (wsgate: timeouts.read_header, 5s; Node: server.headersTimeout; Go: ReadHeaderTimeout)"},
	{name: "idle-timeout", title: "Idle connections closed", severity: "warning", slow: true, dials: true, run: checkIdle,
		why: "connections that never send anything hold memory and file descriptors forever",
		fix: "close connections idle for longer than the application needs (wsgate: timeouts.idle)"},
	{name: "keepalive", title: "Server keepalive pings (dead peers reaped)", severity: "warning", dials: true, slow: true, run: checkKeepalive,
		why: "without pings and a pong deadline, connections whose peer vanished (NAT timeout, crashed client) are never noticed and hold memory forever",
		fix: "ping every 20-30 s and close connections whose pong does not come (wsgate: timeouts.ping_interval, timeouts.pong_timeout; Node ws: a heartbeat interval with terminate())"},
	{name: "oversize", title: "Oversized message refused", severity: "warning", banProne: true, dials: true, run: checkOversize,
		why: "the guide: size-check every message; without a limit one client can make the server buffer megabytes per message",
		fix: "cap the message size before reading the payload and close with 1009 (wsgate: limits.max_message_bytes)"},
	{name: "size-buffering", title: "Message size refused before buffering", severity: "warning", dials: true, banProne: true, run: checkSizeBuffering,
		why: "a limit checked after the library has read the whole message does not bound memory: each connection can make the server buffer the library's maximum (ws: 100 MiB by default)",
		fix: "give the WebSocket library the limit so it refuses from the frame header (wsgate: limits.max_message_bytes; Node ws: maxPayload; Python websockets: max_size)"},
	{name: "json-bomb", title: "JSON structure bombs refused", severity: "error", dials: true, banProne: true, run: checkJSONBomb,
		why: "deep nesting and huge key counts within a small message cost recursion depth and CPU out of proportion to their size; recursive parsers crash on them",
		fix: "bound depth, keys, array length and string length before or while parsing (wsgate: limits.json.max_depth / max_keys / max_array_len)"},
	{name: "binary-frames", title: "Binary frames refused where the protocol is JSON", severity: "warning", dials: true, banProne: true, run: checkBinary,
		why: "a JSON protocol has no use for binary frames; handlers that treat them as text skip text-only validation, and some crash on them",
		fix: "close binary frames with 1003 unless the protocol uses them (wsgate: limits.allow_binary: false); if it does, say so with allow_binary in a --profile"},
	{name: "invalid-utf8", title: "Invalid UTF-8 closed with 1007", severity: "warning", dials: true, banProne: true, run: checkInvalidUTF8,
		why: "RFC 6455 requires text frames to be valid UTF-8 and the connection closed with 1007 otherwise; invalid bytes reaching handlers and logs break parsers and log pipelines",
		fix: "validate UTF-8 of text frames and close with 1007 (wsgate does)"},
	{name: "invalid-json", title: "Invalid JSON answered with an error", severity: "warning", banProne: true, dials: true, run: checkInvalidJSON,
		why: "the guide: validate every message; a server that acts on or reflects unparsed input is open to injection",
		fix: "parse strictly, answer invalid messages with an error reply or close 1007/1008, never echo them"},
	{name: "unknown-type", title: "Unknown message type answered with an error", severity: "warning", banProne: true, dials: true, run: checkUnknownType,
		why: "messages outside the protocol's schema must not reach handlers",
		fix: "validate against a schema per message type and refuse unknown types with an error reply"},
	{name: "replay", title: "Replayed signed message refused", severity: "error", banProne: true, dials: true, run: checkReplay,
		why: "the guide: a captured signed message must not be accepted twice",
		fix: "check a nonce/sequence and timestamp on signed messages (wsgate: integrity.mode)"},
	{name: "error-leak", title: "No stack traces or internals in answers", severity: "warning", banProne: true, dials: true, run: checkErrorLeak,
		why: "stack traces and file paths in error replies show attackers the code, versions and layout",
		fix: "send short static error codes; log details server side only"},
	{name: "ping-flood", title: "Ping flood bounded", severity: "warning", dials: true, banProne: true, run: checkPingFlood,
		why: "each ping costs the server a pong write; unbounded, a client turns that into write amplification",
		fix: "count control frames against the message budget or close peers that ping faster than the keepalive needs"},
	{name: "amplification", title: "No unsolicited broadcast to every client (amplification)", severity: "warning", dials: true, banProne: true, run: checkAmplification,
		why: "a server that relays one client's message to every other client turns one message into N writes, and without back-pressure queues them without bound for slow readers",
		fix: "deliver only to subscribers of a channel the sender may publish to, with per-connection outbox limits that drop slow consumers (wsgate: channels, limits.outbox)"},
	{name: "slot-leak", title: "Connection slots released on close", severity: "error", dials: true, banProne: true, needsCred: true, needsPin: true, run: checkSlotLeak,
		why: "a per-address counter incremented on connect and never decremented refuses the address forever once it had N connections in total: every user behind a NAT is locked out, and the limit does not bound concurrency",
		fix: "decrement the counter when the connection closes, whatever the reason (wsgate: limits.connections.per_ip counts open connections)"},
	{name: "xff-spoof", title: "Client address not taken from X-Forwarded-For", severity: "error", dials: true, banProne: true, needsCred: true, needsPin: true, run: checkXFFSpoof,
		why: "a server that trusts X-Forwarded-For from anyone lets every client pick its address: per-IP limits and bans are bypassed, and maps keyed on it grow without bound",
		fix: "take X-Forwarded-For only from known proxies (wsgate: trusted_proxies, empty by default)"},
	{name: "handshake-rate", title: "Unauthenticated handshake flood limited", severity: "warning", dials: true, banProne: true, run: checkHandshakeRate,
		why: "each refused handshake still costs a TLS handshake, parsing and token verification; without a per-address rate limit before authentication, floods cost nothing to send",
		fix: "rate-limit upgrades per address before verifying tokens, answering 429 (wsgate: limits.handshake_rate)"},
	{name: "conn-flood", title: "Connection flood from one address limited", severity: "warning", banProne: true, dials: true, run: checkConnFlood,
		why: "the guide: rate-limit connections per IP; otherwise one host can exhaust memory and file descriptors",
		fix: "limit handshakes per IP (token bucket) and concurrent connections per IP and per user, refusing with 429 (wsgate: limits.handshake_rate, limits.connections)"},
	{name: "message-flood", title: "Message flood throttled", severity: "warning", banProne: true, dials: true, run: checkMessageFlood,
		why: "the guide: rate-limit messages; otherwise one connection can monopolise the server",
		fix: "apply per-connection, per-user and per-IP message budgets, answer rate_limited errors and close persistent abusers with 1008 (wsgate: rate.tiers)"},
	{name: "invalid-rate", title: "Invalid messages charged to the rate limit", severity: "warning", dials: true, banProne: true, run: checkInvalidRate,
		why: "a server that validates before rate limiting answers every invalid message: a flood of invalid messages bypasses the limit and costs a reply each",
		fix: "charge every message to the rate limit before validating it, and count invalid ones as strikes (wsgate: rate.tiers, abuse.max_strikes)"},
	{name: "malformed-query", title: "Malformed query does not crash the server", severity: "error", dials: true, banProne: true, crash: true, run: checkMalformedQuery,
		why: "hand-written query parsing (split on = and &) throws on a value containing =; unhandled, one request kills the handler or the process",
		fix: "parse queries with the platform's URL parser and handle every error (wsgate uses net/url)"},
	{name: "malformed-host", title: "Malformed Host does not crash the server", severity: "error", dials: true, banProne: true, crash: true, run: checkMalformedHost,
		why: "building a URL from the Host header (new URL(path, 'http://' + host)) throws on a malformed one; thrown in an event handler it ends the process: a remote crash without a token",
		fix: "never build URLs from Host; parse the request target alone, catch errors in upgrade handlers, run under a supervisor"},
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
