// Package porttest provides in-memory vswitch.Ports for tests: a Port whose
// "wire" is the test itself (Inject to receive, Sent to see what the switch
// sent), and Pipe, two ports joined like the ends of a cable.
package porttest

import (
	"errors"
	"sync"
	"sync/atomic"

	vswitch "github.com/switchyard-net/switchyard/switch"
)

// ErrNotStarted is returned by Inject before the port is attached.
var ErrNotStarted = errors.New("porttest: port not attached to a switch")

// Port is an in-memory vswitch.Port. The zero value is not usable; call New.
type Port struct {
	info vswitch.PortInfo
	// Discard makes Write count frames without keeping copies, so the
	// port itself allocates nothing (for allocation tests and
	// benchmarks). Set it before attaching.
	Discard bool
	// WriteErr, if set before attaching, is returned by every Write.
	WriteErr error

	in      atomic.Pointer[ingressBox]
	written atomic.Uint64
	closed  atomic.Bool

	mu     sync.Mutex
	sent   []vswitch.Frame
	notify chan struct{}
}

type ingressBox struct{ vswitch.Ingress }

var _ vswitch.Port = (*Port)(nil)

// New returns a port with the given name and MTU (0 means 1500) that
// accepts no offloaded frames.
func New(name string, mtu int) *Port {
	return &Port{
		info:   vswitch.PortInfo{Name: name, Kind: "mem", MTU: mtu},
		notify: make(chan struct{}, 1),
	}
}

// WithOffloads makes the port advertise offload capabilities. Call it
// before attaching.
func (p *Port) WithOffloads(o vswitch.Offloads) *Port {
	p.info.Offloads = o
	return p
}

// Info implements vswitch.Port.
func (p *Port) Info() vswitch.PortInfo { return p.info }

// Start implements vswitch.Port.
func (p *Port) Start(in vswitch.Ingress) error {
	p.in.Store(&ingressBox{in})
	return nil
}

// Write implements vswitch.Port: it records a copy of the frame (or only
// counts it, with Discard).
func (p *Port) Write(f vswitch.Frame) error {
	if p.closed.Load() {
		return errors.New("porttest: port closed")
	}
	if p.WriteErr != nil {
		return p.WriteErr
	}
	p.written.Add(1)
	if p.Discard {
		return nil
	}
	c := vswitch.Frame{Data: append([]byte(nil), f.Data...), Offload: f.Offload, Direct: f.Direct}
	p.mu.Lock()
	p.sent = append(p.sent, c)
	p.mu.Unlock()
	select {
	case p.notify <- struct{}{}:
	default:
	}
	return nil
}

// Close implements vswitch.Port.
func (p *Port) Close() error {
	p.closed.Store(true)
	p.in.Store(nil)
	return nil
}

// Closed reports whether Close has been called.
func (p *Port) Closed() bool { return p.closed.Load() }

// Inject delivers b to the switch as a frame received on this port. The
// switch sees b itself, not a copy.
func (p *Port) Inject(b []byte) error {
	return p.InjectFrame(vswitch.Frame{Data: b})
}

// InjectFrame delivers f to the switch as a frame received on this port.
func (p *Port) InjectFrame(f vswitch.Frame) error {
	in := p.in.Load()
	if in == nil {
		return ErrNotStarted
	}
	in.Receive(f)
	return nil
}

// Written returns how many frames the switch has written to the port.
func (p *Port) Written() uint64 { return p.written.Load() }

// Sent returns copies of the frames written so far (none with Discard).
func (p *Port) Sent() []vswitch.Frame {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]vswitch.Frame(nil), p.sent...)
}

// Take returns the frames written so far and forgets them.
func (p *Port) Take() []vswitch.Frame {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.sent
	p.sent = nil
	return s
}

// Notify returns a channel that receives a value after each Write (at most
// one pending), for tests that wait for traffic.
func (p *Port) Notify() <-chan struct{} { return p.notify }
