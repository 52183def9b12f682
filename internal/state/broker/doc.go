// Package broker is the publish/subscribe seam of the real-time core: it orders
// publications per channel, keeps bounded history for recovery and tracks presence.
//
// The in-memory Broker (NewMemory) serves a single node; internal/state/redis
// implements the same interface so that several nodes behave as one, and both must
// pass the suite in internal/state/broker/brokertest. Keep the interface small and honest
// about ordering: offsets are assigned by the broker, strictly increasing by one per
// channel within an epoch, and an epoch changes whenever history may have been lost
// (restart of an in-memory broker, a stream forgotten after its history expired,
// Redis key eviction, …).
//
// Recovery contract: a client that saw position {N, E} and asks History for it gets
// exactly N+1..current, or ErrRecoveryFailed when the broker cannot vouch for that
// (other epoch, N ahead of current, N+1 older than what is retained). The usual
// sequence is Subscribe, then History: every publication whose Publish starts after
// Subscribe returned is delivered to the handler, so the caller merges both and
// drops duplicates by offset.
package broker
