package pipeline

import "github.com/wsgate/wsgate/internal/conn/protocol"

// The pipeline refuses with a *protocol.Error: the codes it uses are
// protocol.CodeInvalidJSON, CodeInvalidMessage, CodeUnknownType, CodeTooLarge
// (closes 1009), CodeRateLimited (sustained abuse closes 1008), CodeLimitExceeded
// and CodeUnavailable (the limiter could not answer and Options.FailOpen is false;
// not the client's fault, no strike).

// EncodeError renders r as its error reply (protocol.Error.Encode) with ref, the raw
// JSON of the client's id (Message.ID), as "ref". The message may have been refused
// before its id was validated, so ref is included only if it is a JSON string of at
// most 66 bytes or a number of at most 24 bytes: a reply never carries more than a
// short piece of client data. r is not modified. One allocation: the result.
func EncodeError(r *protocol.Error, ref []byte) []byte {
	e := *r
	e.Ref = nil
	if safeRef(ref) {
		e.Ref = ref
	}
	return e.Encode()
}

// safeRef reports whether ref is a short JSON string or number, safe to splice raw
// into a reply.
func safeRef(ref []byte) bool {
	if len(ref) == 0 {
		return false
	}
	switch c := ref[0]; {
	case c == '"':
		if len(ref) > 66 {
			return false
		}
		end, _, _, f := scanString(ref, 0)
		return f == scanOK && end == len(ref)
	case c == '-' || c >= '0' && c <= '9':
		if len(ref) > 24 {
			return false
		}
		end, f := scanNumber(ref, 0, 24)
		return f == scanOK && end == len(ref)
	}
	return false
}
