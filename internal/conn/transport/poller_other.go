//go:build !linux

package transport

import (
	"errors"
	"time"
)

// parkingSupported: the parked reader needs epoll; elsewhere ReaderParked
// reads like ReaderEvent.
const parkingSupported = false

// workerIdle is how long a worker waits for work (linux only).
var workerIdle = time.Second

type registration struct{}

func (*registration) add(*Conn) error {
	return errors.New("transport: parking needs epoll (linux)")
}
func (*registration) remove(c *Conn) {}

type workerPool struct{}

var workers workerPool

func (workerPool) submit(c *Conn) { go c.resume(true) }

// detach keeps the socket a *net.TCPConn (the bare descriptor needs epoll).
func (w *wireConn) detach() {}
