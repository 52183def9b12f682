// Package admin serves wsgate's admin API and live dashboard on the admin listener.
//
// The Handler is built from small interfaces (Connections, Bans, Alerts, Stats,
// Auditor) that the server implements, so this package knows nothing about
// sessions or configuration. Every API call must carry
// "Authorization: Bearer <admin token>", compared in constant time; with no token
// configured every call is refused with 403, so a forgotten token never means an
// open admin API. The dashboard page itself is static (embedded, no build step, no
// CDN) and holds no data: it asks for the token and calls the same API, reading
// the live event stream (server-sent events) with fetch so the token travels in a
// header rather than a URL.
//
// Live streams end when Options.Done closes, so a server shutdown is not held up
// by open dashboards.
package admin
