// Package ticket issues one-time tickets that let a browser open an
// authenticated WebSocket without putting a long-lived token in the URL.
//
// A client that holds a token (sent in an Authorization header to an
// ordinary HTTPS endpoint) gets a ticket from [Issuer.Issue]; it then dials
// wss://host/ws?ticket=<ticket>, and the gateway calls [Issuer.Redeem]. A
// ticket is 32 random bytes (base64url), lives [DefaultTTL] at most, is
// consumed atomically on first use and never extends the authority of the
// identity it stands for.
//
// Tickets live in a [Store]: [MemoryStore] is the sharded, bounded in-memory
// implementation; a Redis one can implement the same two methods.
package ticket
