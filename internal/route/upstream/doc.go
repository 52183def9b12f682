// Package upstream is wsgate's gateway mode: it connects an admitted client
// connection to an existing WebSocket backend (the upstream) and relays both
// directions with bounds.
//
// Entry points:
//
//   - [NewDialer] builds one [Dialer] per route (URL, connect timeout, TLS/mTLS to
//     the upstream, identity key); [Dialer.Dial] opens the upstream leg during the
//     client's handshake, before the client's 101, so that an unreachable upstream
//     is an HTTP 502/503 and never a 101 that is then dropped.
//   - [Link] is the open upstream leg: [Link.Start] starts relaying upstream →
//     client into a [Client] (the wsgate session's bounded outbox, with
//     backpressure: the upstream is not read while the client's queue is above its
//     high-water mark); [Link.Forward] relays client → upstream what the route's
//     checks accepted; [Link.Close] propagates the client's close code.
//   - [SignIdentity] and [VerifyIdentity]: the X-Wsgate-* identity headers and
//     their HMAC-SHA256 signature. Upstream authors written in Go call
//     VerifyIdentity; docs/gateway.md gives the algorithm for other languages.
//   - [ClientCloseCode] and [UpstreamCloseCode]: the close-code mapping in one place.
//
// The package knows nothing of wsgate's configuration: internal/server builds
// Options from a config.Route.
package upstream
