package tap

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"

	vswitch "github.com/switchyard-net/switchyard/switch"
)

// reader is what Port and VMPort share: one goroutine reading frames from
// file into one buffer and handing them to the switch, started by start,
// and a close that closes the file (which ends the goroutine's blocked
// read) and waits for the goroutine.
type reader struct {
	file    *os.File
	done    chan struct{}
	started atomic.Bool
	closed  atomic.Bool
	once    sync.Once

	readErrors atomic.Uint64
}

// frameSource is a port's side of the read loop.
type frameSource interface {
	// deliver hands b, read from the device, to in. b is the loop's
	// buffer: it is valid only until deliver returns.
	deliver(in vswitch.Ingress, b []byte)
	// gone reports whether a read error means the device is gone, which
	// ends the loop; any other error is counted and reading goes on.
	gone(err error) bool
}

// start runs the read loop on the reader goroutine.
func (r *reader) start(in vswitch.Ingress, src frameSource) {
	r.started.Store(true)
	go func() {
		defer close(r.done)
		r.loop(in, src)
	}()
}

// loop is a port's one reader: a frame at a time from the device into one
// buffer, handed to the switch, which forwards it before returning.
//
// It reads through Go's netpoller. Two alternatives were measured and
// rejected (benchmarks/RESULTS.md): handing frames to a second goroutine
// to overlap reads with writes (no throughput gain, request/response rate
// down 40%), and blocking in poll(2) on a locked thread as vde_switch does
// (request/response rate down 35%: the thread must win a P back after
// every wakeup). A port given a Config.Loop does not use this loop: the
// shared evloop reads it (loop.go), which saves the wake-up per hop that
// this reader costs.
func (r *reader) loop(in vswitch.Ingress, src frameSource) {
	buf := make([]byte, readBufLen)
	for {
		n, err := r.file.Read(buf)
		if err != nil {
			if r.stopping(err) || src.gone(err) {
				return
			}
			r.readErrors.Add(1)
			continue
		}
		src.deliver(in, buf[:n])
	}
}

// stopping reports whether a read error comes from close.
func (r *reader) stopping(err error) bool {
	return r.closed.Load() || errors.Is(err, os.ErrClosed)
}

// close closes the file, once, and waits for the reader to end.
func (r *reader) close() error {
	var err error
	r.once.Do(func() {
		r.closed.Store(true)
		err = r.file.Close()
		if r.started.Load() {
			<-r.done
		}
	})
	return err
}
