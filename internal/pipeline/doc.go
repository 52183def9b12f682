// Package pipeline checks every client message before anything acts on it.
//
// The transport hands each complete text message to [Pipeline.Process], which runs
// ordered stages, each able to refuse with a [Reject] that says what to reply
// ([EncodeError]) and whether to close (CloseCode) or count a strike (Strike):
// size limits, a hand-written iterative JSON scanner enforcing RFC 8259 and structure
// limits (depth, keys, array elements, string and number length, duplicate keys),
// per-type size limits, rate limits (per connection, user and IP, messages and bytes,
// by tier, with a sustained-abuse close), an optional [Verifier], dispatch by "type"
// and JSON Schema validation against the [schema.Registry].
//
// The scanner allocates nothing for well-formed input once its pooled buffers have
// grown, and refuses hostile nesting after MaxDepth frames, so a message of 20,000 '['
// costs a few dozen bytes of work. A message is decoded once, for the schema
// validator, and only after the scanner has accepted it.
package pipeline
