package room

import "github.com/wsgate/wsgate/internal/conn/protocol"

// Handle refuses with a *protocol.Error (codes protocol.CodeBadRequest …
// protocol.CodeRoomSchema) that it has already sent to the client; the caller uses
// Strike to count misbehaviour and Err (never sent) to log.

func newErr(code, msg string, strike bool) *protocol.Error {
	return &protocol.Error{Code: code, Message: msg, Strike: strike}
}
