// Package limit holds the rate limiters wsgate applies to handshakes, messages and bytes.
//
// A Limiter answers one question — may this key spend this much now? — so that the
// same interface serves per-IP handshake rates, per-connection/per-user/per-IP message
// rates and byte budgets. The in-memory implementation is the default; a Redis one
// (internal/state/redis) makes the budget shared between nodes.
//
// GCRA is the one rate rule: Memory stores one theoretical arrival time per key
// around it (a shardmap of up to 64 shards, bounded by MemoryOptions.MaxKeys, idle
// keys dropped by an owned sweeper), the pipeline keeps a connection's own budgets
// with it, and the Redis limiter runs it in Lua. limittest holds every Limiter to
// one table of its answers.
package limit
