package porttest

import (
	"errors"
	"sync"
	"sync/atomic"

	vswitch "github.com/switchyard-net/switchyard/switch"
)

// pipeQueueLen bounds each direction of a Pipe; frames beyond it are
// dropped, as a real link would.
const pipeQueueLen = 1024

// ErrQueueFull is returned by PipeEnd.Write when the peer is not keeping up.
var ErrQueueFull = errors.New("porttest: pipe queue full")

// PipeEnd is one end of a Pipe: frames the switch writes to it arrive, in
// order, at the other end as received frames. Each end delivers from one
// goroutine of its own, started by Start and stopped by Close.
type PipeEnd struct {
	info vswitch.PortInfo
	peer *PipeEnd

	rxq     chan []byte // frames the peer sent, waiting to be received here
	stop    chan struct{}
	stopped sync.Once
	wg      sync.WaitGroup
	closed  atomic.Bool
	dropped atomic.Uint64
}

var _ vswitch.Port = (*PipeEnd)(nil)

// Pipe returns two connected ends, like a cable between two switches.
func Pipe(nameA, nameB string, mtu int) (*PipeEnd, *PipeEnd) {
	a := &PipeEnd{info: vswitch.PortInfo{Name: nameA, Kind: "pipe", MTU: mtu}, rxq: make(chan []byte, pipeQueueLen), stop: make(chan struct{})}
	b := &PipeEnd{info: vswitch.PortInfo{Name: nameB, Kind: "pipe", MTU: mtu}, rxq: make(chan []byte, pipeQueueLen), stop: make(chan struct{})}
	a.peer, b.peer = b, a
	return a, b
}

// Info implements vswitch.Port.
func (e *PipeEnd) Info() vswitch.PortInfo { return e.info }

// Start implements vswitch.Port.
func (e *PipeEnd) Start(in vswitch.Ingress) error {
	e.wg.Add(1)
	go e.deliver(in)
	return nil
}

func (e *PipeEnd) deliver(in vswitch.Ingress) {
	defer e.wg.Done()
	for {
		select {
		case <-e.stop:
			return
		case b := <-e.rxq:
			in.Receive(vswitch.Frame{Data: b})
		}
	}
}

// Write implements vswitch.Port: a copy of f is queued for the peer.
func (e *PipeEnd) Write(f vswitch.Frame) error {
	if e.closed.Load() || e.peer.closed.Load() {
		return errors.New("porttest: pipe closed")
	}
	select {
	case e.peer.rxq <- append([]byte(nil), f.Data...):
		return nil
	default:
		e.dropped.Add(1)
		return ErrQueueFull
	}
}

// Dropped returns how many frames Write dropped because the peer's queue
// was full.
func (e *PipeEnd) Dropped() uint64 { return e.dropped.Load() }

// Close implements vswitch.Port.
func (e *PipeEnd) Close() error {
	e.closed.Store(true)
	e.stopped.Do(func() { close(e.stop) })
	e.wg.Wait()
	return nil
}
