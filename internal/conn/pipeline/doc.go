// Package pipeline checks every client message before anything acts on it.
//
// The transport hands each complete text message to [Pipeline.Process], which runs
// ordered stages, each able to refuse with a [protocol.Error] that says what to reply
// ([EncodeError]) and whether to close (Close) or count a strike (Strike):
// size limits, a hand-written iterative JSON scanner enforcing RFC 8259 and structure
// limits (depth, keys, array elements, string and number length, duplicate keys),
// per-type size limits, rate limits (per connection, user and IP, messages and bytes,
// by tier, with a sustained-abuse close), an optional [Verifier], dispatch by "type"
// and JSON Schema validation against the [schema.Registry].
//
// The scanner allocates nothing for well-formed input once its pooled buffers have
// grown, and refuses hostile nesting after MaxDepth frames, so a message of 20,000 '['
// costs a few dozen bytes of work. The schema's fast validator then checks the
// scanned bytes directly (no value tree, no allocation); only a message it cannot
// prove valid is decoded, once, for jsonschema, which decides and words the error.
package pipeline
