// Package auth turns the credentials of a WebSocket upgrade request into an
// [Identity], before any 101 is sent.
//
// The entry points are:
//
//   - [Extract] finds the one credential a request carries (Authorization
//     bearer, a Sec-WebSocket-Protocol entry, a cookie, a ?ticket= or, only when
//     allowed, a ?token=) and returns the client's offered subprotocols with
//     every token-carrying entry removed, so a token is never echoed.
//   - [NewVerifier] builds a [Verifier] from static keys ([Key]) and/or a JWKS
//     URL; [Verifier.Verify] checks a JWT and returns an [Identity] or an
//     [*Error] whose [Reason] is a short, bounded label for logs and metrics.
//   - [Signer] mints tokens (the `wsgate token` command, dev mode, tests).
//   - [IdentityFromCert], [CertIdentity] and [BindCert] cover mTLS.
//   - [RedactURL] keeps query values (tickets, tokens) out of logs.
//
// Security choices made here rather than left to configuration: the
// algorithm `none` is never accepted; every key carries an algorithm
// allow-list checked against its type at load time, so an RSA, ECDSA or
// Ed25519 key can never verify an HMAC token (the classic key-confusion
// attack); keys are never taken from token headers (jwk, jku, x5u are
// ignored); tokens with a `crit` header are refused; `exp` is required and
// lifetimes are capped.
package auth
