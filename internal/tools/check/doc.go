// Package check audits a WebSocket endpoint against every weakness class of
// the security guide wsgate is built to beat: `wsgate check URL`.
//
// [Run] probes one target and returns a [Report]: one [Result] per check,
// each PASS, WARN, FAIL, SKIP or ERROR, with what was sent, what came back,
// why it matters and how to fix it (wsgate's config key and a generic fix).
// [NewCommand] is the cobra command behind `wsgate check`; it prints the
// report as text, JSON, SARIF 2.1.0, JUnit XML or Markdown and returns an
// [*ExitError] with status 2 when a check FAILs and 3 when one could not
// run, so the command can gate a CI pipeline. A [Profile] encodes a team's
// own policy (e.g. binary frames allowed).
//
// The probes send attack traffic (forged tokens, oversized and malformed
// messages, floods, and two inputs that crash fragile servers), so they are
// bounded in count, bytes and time, and the target must be on loopback
// unless [Options.AllowRemote] is set: test only endpoints you own.
//
// Isolation: against loopback targets every probe connection comes from its
// own 127.x.y.z source address and every check mints tokens for its own user
// (unique per run), so a refusal, rate limit or ban one probe provokes
// cannot poison the next probe, the next run, or the user's browser on
// 127.0.0.1. Against remote targets the checks that may get the auditor
// banned run last. A refusal of a credential that worked earlier is
// reported as what it is (a slot leak, a limit, a ban), not as a credential
// problem.
//
// The tool is a black box: it knows nothing of the server it probes beyond
// what travels on the wire, so a verdict is what a client can observe. It
// speaks wsgate's message conventions ({"type":…} JSON, {"type":"error"}
// replies) but judges other servers by loose signals (an echo, an error-ish
// reply, a close code), which docs/check.md lists per check. Probes the
// transport refuses to send (wrong versions, invalid UTF-8, lying frame
// lengths, a request head dripped slowly) use a small raw client whose reads
// are bounded.
package check
