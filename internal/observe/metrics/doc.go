// Package metrics exposes wsgate's Prometheus metrics and a small in-process
// time series for the dashboard.
//
// Metrics owns its own prometheus.Registry (never the global default), so
// tests and multiple servers in one process do not collide, and callers
// record events through typed methods rather than label strings: every label
// value passes through a bound, so an attacker choosing message types,
// reasons or routes cannot blow up the series count — unknown values
// collapse to "other".
//
// Series keeps per-second counts of connections and handshakes for the last
// 15 minutes, for the admin dashboard's charts, without a Prometheus server.
package metrics
