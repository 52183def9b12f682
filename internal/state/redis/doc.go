// Package redis holds the Redis implementations of every piece of state wsgate
// nodes share, so that several nodes behind any load balancer behave as one:
// the same rate limits, connection quotas and bans, tickets and nonces used once
// anywhere, and publications ordered per channel with history that survives a
// node restart.
//
// New connects one [Client] (a go-redis UniversalClient: a single server,
// Sentinel with MasterName, or Cluster with several Addrs) and hands out the
// stores: [Client.Limiter] (limit.Limiter), [Client.QuotaStore] (quota.Store),
// [Client.TicketStore] (ticket.Store), [Client.BanList] (ban.List, with
// kicks that close a banned subject's connections on every node),
// [Client.StrikeCounter] (ban.Counter), [Client.ReplayCache]
// (integrity.ReplayCache) and [Client.Broker] (broker.Broker). Every read-modify-write is one Lua script, so each
// operation is atomic across nodes; scripts use Redis' clock (TIME), so node
// clocks never need to agree.
//
// Failure policy when Redis cannot answer, per store (docs/scaling.md has the
// full design and measured costs):
//   - tickets and the replay cache fail closed: the error is returned and the
//     caller rejects;
//   - the limiter never makes a message wait for Redis (leases refilled in the
//     background, credit on a miss); once a refill fails or is late it falls
//     back to node-local limits (LimiterOptions.FailOpen) or returns the error
//     so the caller refuses;
//   - strikes are counted on the node alone;
//   - quota and ban lookups return the error (the guard's policy applies); quota
//     counts of a node that stops heartbeating expire after Options.LeaseTTL;
//   - the broker returns errors from Publish, ErrRecoveryFailed from History,
//     and fills delivery gaps from history once Redis is back.
//
// Reconnection (with backoff) is go-redis'; nothing here panics on a Redis
// error or on malformed data read back from Redis.
package redis
