// Package check audits a WebSocket endpoint against the validation steps of
// the security guide wsgate is built to beat, and more: `wsgate check URL`.
//
// [Run] probes one target and returns a [Report]: one [Result] per check,
// each PASS, WARN, FAIL, SKIP or ERROR, with what was sent, what came back,
// why it matters and how to fix it. [NewCommand] is the cobra command behind
// `wsgate check`; it prints the report as text or JSON and returns an
// [*ExitError] with status 2 when a check FAILs, so the command can gate a CI
// pipeline.
//
// The probes send attack traffic (forged tokens, oversized messages, floods),
// so they are bounded in count and time and the target must be on loopback
// unless [Options.AllowRemote] is set: test only endpoints you own.
//
// The tool is a black box: it knows nothing of the server it probes beyond
// what travels on the wire, so a verdict is what a client can observe. It
// speaks wsgate's message conventions ({"type":…} JSON, {"type":"error"}
// replies) but judges other servers by loose signals (an echo, an error-ish
// reply, a close code), which docs/check.md lists per check.
package check
