// Package ban keeps the list of banned subjects (client IPs and users) and turns
// repeated misbehaviour into bans.
//
// A List answers "is this subject banned?" on every handshake; MemoryList is the
// in-process default (expiring, bounded) and a Redis implementation in
// internal/state/redis shares bans between nodes. Strikes counts offences per IP
// and per user in a sliding window and bans a subject that reaches the policy's
// limit, so that a client that keeps sending invalid frames, failing auth or
// tripping rate limits is shut out for a while instead of being refused one
// message at a time.
package ban
