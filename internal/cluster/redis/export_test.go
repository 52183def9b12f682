package redis

// Kill simulates SIGKILL for the node's quota leases: the heartbeat stops, the
// lease is not withdrawn.
func (q *QuotaStore) Kill() { q.kill() }

// Settle waits until no refill is queued or running (call it with no Allow in
// flight).
func (l *Limiter) Settle() { l.inflight.Wait() }

// PublishScripts is the number of publish scripts (batches) this broker ran.
func (b *Broker) PublishScripts() uint64 { return b.scripts.Load() }
