// Package transport is the only package of wsgate that speaks the WebSocket
// wire protocol. It wraps github.com/lxzan/gws so that no other package
// imports it: a later transport (for example an event-driven one built on
// epoll) can replace this package without touching sessions, pipelines or the
// gateway.
//
// Entry points:
//
//   - [ValidateUpgradeRequest] decides handshake protocol errors (400/426)
//     before any library sees the request.
//   - [NewUpgrader] and [Upgrader.Upgrade] turn an HTTP request into a [Conn]
//     (server side); [Conn.Serve] then runs the read loop in the caller's
//     goroutine until the connection ends. With [ReaderParked],
//     [Conn.ServeDetached] returns once the connection is idle: it waits in
//     an epoll set of this package's own with no goroutine, and a worker
//     pool reads it when bytes arrive (parked.go, poller_linux.go; ADR 0002).
//     Its socket leaves Go's netpoller at the upgrade (fdconn_linux.go: the
//     bare descriptor with a lifetime guard written here because
//     internal/poll's cannot be imported; an *os.File takes it over only
//     when a use must wait).
//   - [Dial] opens a client connection (gateway upstreams, tools, tests) and
//     returns the HTTP response of a refused handshake.
//
// Strictness is enforced before gws reads a frame: a streaming frame-header
// observer sits between the socket and gws and refuses oversized messages
// (announced by a frame header, without reading the payload), too many
// fragments, binary messages when they are not allowed and every header-level
// protocol error of RFC 6455 (masking, RSV bits, reserved opcodes,
// continuation order, control frame rules). The same observer validates the
// UTF-8 of uncompressed text as it streams, so invalid text fails with 1007
// at the fragment where it becomes invalid (RFC 6455 §8.1). gws then checks
// compressed text, close payloads and inflated sizes; the close codes it would send wrongly are
// corrected on the way out (an inflate overflow closes with 1009, not 1011).
//
// Writes: gws writes client connections, compressed connections and those it
// reads; a server connection read by the transport's own reader (event,
// parked) without compression is written by writer.go, and gws makes no
// connection for it at all (ADR 0002 step 4: ≈ 640 B less per idle
// connection). Both writers serialize frames under one lock with the direct
// fan-out writes (direct.go) and keep the same close rules.
//
// permessage-deflate is negotiated by wsgate (negotiateDeflate, RFC 7692),
// not by gws, which answers offers it cannot honour: gws is handed the chosen
// offer and the 101 carries wsgate's answer.
package transport
