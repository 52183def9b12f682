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
package outbox
