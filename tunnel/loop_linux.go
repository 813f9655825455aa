//go:build linux

package tunnel

import (
	"golang.org/x/sys/unix"

	vswitch "github.com/switchyard-net/switchyard/switch"
)

// loopBatches is how many recvmmsg batches (of up to rxBatchLen
// messages each) the port reads in one turn of its loop before the loop
// moves on to the next ready descriptor.
const loopBatches = 4

// loopReader reads the port's socket when Config.Loop does, instead of
// the reader goroutine: the same receive path (sender lookup, open,
// decode, coalescer), into the port's own buffers.
//
// The loop polls a duplicate of the socket's descriptor. Neither is in
// Go's netpoller: a port with a loop makes its socket blocking and takes
// it out (sysConn.unpoll), so that an arrival wakes no runtime thread but
// the loop's. The sender goroutine waits for room in the socket buffer in
// the kernel, and sends on the loop's goroutine never wait (a full buffer
// drops and counts, DropSend, see send.go).
type loopReader struct {
	p     *Port
	rx    *rxBatch
	fd    int
	token uint64
}

// startLoop hands the socket to p.loop.
func (p *Port) startLoop(in vswitch.Ingress) error {
	fd, err := p.sock.dupForLoop()
	if err != nil {
		return err
	}
	lr := &loopReader{p: p, rx: p.newRxBatch(in), fd: fd}
	if lr.token, err = p.loop.Add(fd, lr); err != nil {
		unix.Close(fd)
		return err
	}
	p.looped.Store(lr)
	// A Close that ran meanwhile did not see lr: whoever takes it stops it.
	if p.closed.Load() && p.looped.CompareAndSwap(lr, nil) {
		lr.stop()
	}
	return nil
}

// Readable implements evloop.Handler: it reads up to loopBatches batches
// without blocking and hands them on; each batch is flushed out of the
// coalescer before the next recvmmsg reuses the buffers. The loop's
// buffer is not used.
func (lr *loopReader) Readable([]byte) (int, bool) {
	p, r := lr.p, lr.rx
	msgs := 0
	for range loopBatches {
		n, err := p.sock.recvNow(lr.fd, r)
		if err != nil {
			// Unexpected (an unconnected UDP socket reports no ICMP
			// errors): count it; the socket is not gone.
			p.ctr.readErrors.Add(1)
			return msgs, false
		}
		if n == 0 {
			return msgs, false
		}
		p.receiveBatch(r, n)
		msgs += n
		if n < r.sys.vlen {
			return msgs, false // drained: the next recvmmsg would find nothing
		}
	}
	return msgs, false
}

// stop takes the socket out of the loop and closes the duplicate. When it
// returns, Readable is not running and will not run again.
func (lr *loopReader) stop() {
	lr.p.loop.Remove(lr.token)
	unix.Close(lr.fd)
}
