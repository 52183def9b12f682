// Package jsonbytes holds the small byte-level JSON string helpers that the
// message scanner (internal/conn/pipeline) and the fast schema validator
// (internal/conn/schema) both need on their allocation-free paths: one copy of the
// \u escape and surrogate-pair rules, so the two can never disagree about what a
// string's content is.
//
// It works on raw message bytes, depends on nothing but the standard library and
// never allocates beyond appending to the caller's buffer.
package jsonbytes
