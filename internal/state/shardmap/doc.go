// Package shardmap is the bounded, sharded map the in-memory state stores keep
// their per-key state in (rate limits, strikes, bans, tickets, quotas, replay
// nonces, alert counters, the Redis limiter's leases and ban cache, the session
// registry): one copy of the sharding, the per-shard bound, the Len loop and
// the sweep that drops stale entries and gives memory back after a spike.
//
// A [Map] only holds entries and reports a full shard; what a store evicts when
// a shard is full, and what counts as stale, stay the store's policy, applied
// under the shard's lock:
//
//	s := m.For(key)
//	s.Lock()
//	v, ok := s.Get(key)
//	if !ok && s.Full() {
//		evict(s) // the store's policy, e.g. sample s.All() for a victim
//	}
//	s.Set(key, update(v))
//	s.Unlock()
//
// A read-mostly store reads under [Shard.RLock], and [Map.Range] visits
// every entry with no lock held while its callback runs.
//
// [Map.StartSweeper] runs [Map.Sweep] on a goroutine the map owns
// (internal/state/sweep); the store's Close calls [Map.Close], which stops it.
package shardmap
