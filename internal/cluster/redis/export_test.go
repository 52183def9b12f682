package redis

// Kill simulates SIGKILL for the node's quota leases: the heartbeat stops, the
// lease is not withdrawn.
func (q *QuotaStore) Kill() { q.kill() }
