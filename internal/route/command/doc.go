// Package command relays `command` messages to the application backend: an HTTP
// endpoint (NewHTTP) or, in library mode, a Go function (Func).
//
// A Backend answers with raw JSON that is relayed to the client untouched inside a
// `{"type":"command_result","ref":…,"result":…}` reply (see Result). Failures are
// typed (*Error with a Kind) so the caller can answer with a stable error code
// ("command_timeout", "command_backend_error", "command_bad_response") without
// leaking backend details to the client.
package command
