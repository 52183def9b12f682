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
package audit
