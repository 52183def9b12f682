//go:build !linux

package transport

import (
	"errors"
	"syscall"
)

// parkingSupported: the parked reader needs epoll; elsewhere ReaderParked
// reads like ReaderEvent.
const parkingSupported = false

type registration struct{}

func newRegistration(syscall.RawConn) *registration { return nil }

func (*registration) add(*Conn) error {
	return errors.New("transport: parking needs epoll (linux)")
}
func (*registration) arm() error     { return errors.New("transport: parking needs epoll (linux)") }
func (*registration) remove(c *Conn) {}

type workerPool struct{}

var workers workerPool

func (workerPool) submit(c *Conn) { go c.resume(true) }
