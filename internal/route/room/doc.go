// Package room is the real-time core: channels, authorisation, broadcast, history
// recovery, presence, acknowledgements and `command` relaying.
//
// Entry points: New builds a Service over a broker.Broker; Run owns the broker's event
// loop; Handle processes one validated client message; Leave drops a finished
// connection; Publish and PublishHandler are the server-side publish API.
//
// Ordering: every reply and push for a client goes through its Client.Send, and
// Handle sends its replies itself (it never returns bytes for the caller to send),
// so a subscribe ack always precedes the channel's messages, and replayed history
// precedes live messages without gap or duplicate.
//
// Fan-out encodes each publication once and hands the same []byte to every local
// subscriber; the hub is sharded so fan-out and subscribe on different channels do
// not contend on one lock.
package room
