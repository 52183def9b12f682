// Package quota caps concurrent connections per client IP, per user and globally.
//
// A Store counts live connections per key; MemoryStore is the in-process default and
// a Redis implementation (internal/state/redis, with per-node leases) makes the
// counts cluster-wide. Quotas acquires the three counts in a fixed order, rolls back
// on refusal, and hands out a Lease whose Release is idempotent, because a
// connection can end in many ways (read error, close frame, shutdown, kick) and each
// path calls Release: a double release must never free someone else's slot.
package quota
