// Package schema holds the JSON Schemas (draft 2020-12) that client messages are
// validated against, one schema per message type.
//
// A [Registry] is compiled once, from three layers where a later layer overrides an
// earlier one type by type:
//
//  1. the built-in schemas embedded in this package (ping, pong, refresh, subscribe,
//     unsubscribe, publish, chat, data, command, presence, history) and the shared
//     definitions file "defs.json";
//  2. the files "<type>.json" of [Options.Dir];
//  3. the inline schemas of [Options.Inline], keyed by type.
//
// Every schema lives at the URL https://schemas.wsgate.invalid/<type>.json, so a schema
// may reference the shared definitions as {"$ref": "defs.json#/$defs/channel"} (and a
// "defs.json" in Dir or Inline replaces the built-in one). Schemas are never fetched:
// references outside the registry fail at compile time, so an operator's schema cannot
// make the server read files or open connections.
//
// A Registry is immutable and safe for concurrent use; a reload builds a new one with
// [New] and swaps it in (the pipeline holds it behind an atomic pointer).
//
// Each Schema also gets, when its keywords allow, a fast validator compiled from the
// jsonschema result (see fast.go for the subset): [Schema.Accepts] proves a message
// valid from its JSON text, with no decoding and no allocation, and anything it cannot
// prove goes to [Schema.Validate] (jsonschema), which stays the authority on every
// verdict and every error. Patterns run as a byte DFA built from the regexp's own
// program when they only use ASCII classes and text anchors.
//
// Validation failures are reported as a [Violation]: a JSON pointer to the offending
// value and a short message written by this package, which never quotes the
// instance's values (only bounded key names may appear in the pointer).
package schema
