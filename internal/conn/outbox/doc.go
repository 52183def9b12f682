// Package outbox is the per-connection bounded write queue and its slow-consumer
// policy.
//
// A broadcast encodes a message once and pushes the same bytes into many queues, so
// Push must never block: a reader that stops reading must not stall the room. Each
// Queue is bounded by message count and bytes; when a push would exceed a bound it is
// refused with ErrFull and the caller closes the connection as a slow consumer
// (nats-server's MaxPending, centrifuge's ClientQueueMaxSize).
//
// Idle connections are the common case, so an idle Queue holds no goroutine: a
// drainer goroutine is started when the queue becomes non-empty and exits as soon
// as it is empty again.
//
// Request/response traffic is the other common case: a connection's reader
// answers its own client (a pong, an error reply) while nothing else is queued.
// PushOrWrite writes such a reply on the reader's goroutine when the queue is
// empty and nobody is writing, which spares a goroutine start, a hand-off and a
// park per reply; anything else (a broadcast, a reply behind queued messages)
// goes through the queue, so order is the order of the calls either way. The
// upstream leg of a gateway connection relays through PushOrWriteOp too: it
// serves that one client only, so an inline write is backpressure on its own
// upstream, and a message arriving while one is written is batched behind it.
//
// A queue that built up (a client reading slower than it is written to, a
// burst) drains in batches when its Writer is a BatchWriter (the session is,
// over transport.Conn.WriteMessages): up to transport.MaxBatch consecutive
// messages of one opcode in one call, one writev per socket wake-up instead
// of one per message, so that catching up costs a slow connection less CPU,
// not more.
//
// Every message carries its opcode (NewOp, PushOp), so binary stays binary in
// the same order as the text around it.
package outbox
