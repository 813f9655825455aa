//go:build !linux

package evloop

import (
	"errors"
	"syscall"
)

// The loop needs Linux's epoll. Elsewhere New fails, so that packages
// which take a *Loop (tunnel, for its users of the wire format) still
// build, and read with goroutines of their own.

// Loop is never made outside Linux.
type Loop struct{}

// ErrUnsupported is New's error outside Linux.
var ErrUnsupported = errors.New("evloop: needs Linux (epoll)")

// New fails: the loop needs epoll.
func New(Config) (*Loop, error) { return nil, ErrUnsupported }

// Add fails: there is no loop.
func (*Loop) Add(int, Handler) (uint64, error) { return 0, ErrUnsupported }

// Remove does nothing.
func (*Loop) Remove(uint64) {}

// Close does nothing.
func (*Loop) Close() error { return nil }

// Stats returns zeros.
func (*Loop) Stats() Stats { return Stats{} }

// Dup fails: there is no loop to poll the duplicate.
func Dup(syscall.RawConn) (int, error) { return -1, ErrUnsupported }
