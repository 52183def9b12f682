// Package redact keeps secrets out of logs.
//
// A Redactor holds the secret values wsgate learns at run time (bearer tokens,
// tickets, cookies, API keys, the admin token) and rewrites any string that
// contains one of them. Independently of that registry it always masks things
// that look like JWTs and the query strings of URLs, because a token that was
// never registered (an attacker's forged JWT, a token passed in a URL) must not
// reach a log either.
//
// NewHandler wraps any slog.Handler so every record passes through the
// Redactor before it is formatted; attributes whose key names a credential
// ("token", "password", "cookie", ...) are masked whatever their value.
//
// Lookups are built for the log hot path: a string with no registered secret
// costs one pass over its bytes with a lock-free bit-set probe per 8-byte
// window, and no allocation.
package redact
