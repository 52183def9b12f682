// Package audit writes wsgate's security events as JSON lines to an
// append-only file with size-based rotation.
//
// Callers never wait on the disk: Log encodes the event (after passing every
// string through a redact.Redactor) and hands the line to a bounded queue
// drained by one writer goroutine; when the queue is full the event is
// counted as dropped instead. The line schema is documented in docs/audit.md.
//
// Message logging (LogMessage) is off by default; when enabled it is sampled
// and truncated, because message bodies are user data and can be large.
//
// With Options.Chain the log is tamper-evident: the writer appends "seq" and
// "prev" (SHA-256 of the previous line) to every line, starts every file with
// a chain_anchor record linking it to the previous file, continues the chain
// of an existing file on restart, and, with a CheckpointKey, writes Ed25519
// signed checkpoint records (which a Shipper can send to a webhook or
// syslog). Verify and OrderFiles check a set of files offline (`wsgate audit
// verify`). The scheme is specified in docs/audit.md.
package audit
