// Package brokertest is the conformance suite every broker.Broker implementation
// must pass: per-channel ordering under concurrent publishers, delivery only to
// subscribed channels, history bounds and expiry, exact recovery (no gap, no
// duplicate, or ErrRecoveryFailed), epochs and presence.
//
// Run(t, newBroker) starts one fresh broker per subtest and uses unique channel
// names, so it also works against a shared Redis. It waits by polling with
// generous deadlines and never asserts on elapsed time; the only real waits are
// for short history TTLs to pass.
package brokertest
