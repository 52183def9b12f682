// Package protocol is wsgate's wire vocabulary in one place: the WebSocket close
// codes and the one table mapping a close reason to its code and text
// (docs/protocol.md, "Close codes"), the client error reply with its one encoder and
// error codes, and the message type names. Session, pipeline, room and the root
// wiring all speak it, so a code or text cannot mean one thing in one package and
// another elsewhere.
package protocol
