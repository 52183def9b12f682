// Package integrity signs and verifies individual WebSocket messages so that a
// tampered, replayed, reordered or forged message is rejected even when the
// transport and the bearer token are not enough (a stolen token, a buggy proxy,
// a message replayed to another node).
//
// A signed message is a version-tagged envelope
//
//	{"type":"chat.send","sig":{"v":1,"alg":"HS256","kid":"k1","seq":1,"ts":1700000000000,
//	  "nonce":"…","body":"<base64url of the exact inner message>","mac":"…"}}
//
// and the server acts on the decoded body bytes, never on a re-serialisation:
// the signature covers exactly those bytes plus type, seq, ts, nonce, key id,
// algorithm and a binding to the subject and the connection id. The full
// wire format, the signing input and test vectors are in docs/integrity.md and
// testdata/vectors.json.
//
// Two modes:
//   - hmac: HMAC-SHA256 with a per-user key derived from a server master key
//     (DeriveUserKey, KeyRing), handed to the client by the ticket/token endpoint.
//   - pop: proof of possession in the spirit of DPoP (RFC 9449): the client holds
//     an Ed25519 or ECDSA P-256 key whose RFC 7638 thumbprint is bound in the
//     token (cnf.jkt); the client proves possession at the handshake
//     (VerifyPopHandshake) and signs every message with it.
//
// Replay protection combines a strictly increasing per-connection seq, a ts
// window and a nonce remembered across all connections by a ReplayCache (an
// in-memory bounded implementation here; it fails closed when full).
//
// ServerSigner signs what the server sends with Ed25519 and publishes its keys
// as a JWKS; the public client package verifies them.
package integrity
