// Package alert watches streams of security events (failed authentications,
// handshakes, invalid or oversize messages, bans) and raises an Alert when a
// rule's threshold is reached within its sliding window, globally or per
// client IP.
//
// An alert fires once, carries its evidence (count, window, top IPs), and
// stays quiet until its cooldown has passed. Alerts go to sinks — the log
// (LogSink), a webhook with retries from a bounded queue (WebhookSink), live
// subscribers such as the dashboard (Subscribe) — are kept in a ring for
// Recent, and are handed to Options.OnAlert, where the server applies
// auto-bans.
//
// Observe is cheap and never blocks: per-rule state is sharded by IP, each
// IP costs a fixed-size bucket ring, and the number of IPs tracked per rule
// is bounded, idle ones evicted first.
package alert
