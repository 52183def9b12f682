// Package bench is wsgate's load generator (`wsgate bench`): it opens many
// WebSocket connections to a server the user owns and measures echo round
// trips, idle memory per connection, channel fan-out latency and handshake rate.
//
// The stable figures on a small machine, where client and server share the
// cores, are the server's CPU time per operation and its resident memory per
// connection, both read from /proc/PID of the server (--pid). Round trips per
// second are bounded by the client and are reported as seen.
//
// A run has three phases so that the server can be sampled between them:
// prepare (ramp the connections up at a bounded rate), measure (bounded by
// Duration and Count), close. Run does this in the calling process; RunProcs
// splits the connections over several child processes (a process here may
// hold at most RLIMIT_NOFILE open files, 20,000 on the reference machine),
// drives their phases over stdin/stdout (ServeChild) and merges their results.
//
// Everything is bounded in count and time, and targets outside loopback are
// refused unless Options.AllowRemote is set: load tests are for servers you own.
package bench
