package vnettest

import (
	"errors"
	"net"
	"os"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// Listener is the net.Listener a host's Listen returns. Besides Accept,
// Close and Addr it has SetDeadline, as *net.TCPListener does: an Accept
// deadline on the World's clock (virtual under VirtualTime):
//
//	l, _ := srv.Listen("tcp", ":80")
//	l.(*vnettest.Listener).SetDeadline(w.Now().Add(30 * time.Second))
//	_, err := l.Accept() // os.ErrDeadlineExceeded after 30 s of the World's time
type Listener struct {
	ep     tcpip.Endpoint
	wq     *waiter.Queue
	host   *Host
	closed chan struct{}
	once   sync.Once

	// accept is the Accept deadline; due, guarded by accept.mu, is
	// closed while it has passed.
	accept deadline
	due    chan struct{}
}

var _ net.Listener = (*Listener)(nil)

// listenBacklog is the listeners' backlog, Linux's default somaxconn.
const listenBacklog = 4096

// listen opens a TCP listener on local.
func (h *Host) listen(local tcpip.FullAddress) (*Listener, error) {
	var wq waiter.Queue
	ep, terr := h.stack.NewEndpoint(tcp.ProtocolNumber, h.proto, &wq)
	if terr != nil {
		return nil, errors.New(terr.String())
	}
	if terr := ep.Bind(local); terr != nil {
		ep.Close()
		return nil, &net.OpError{Op: "bind", Net: "tcp", Addr: tcpAddr(local), Err: errors.New(terr.String())}
	}
	if terr := ep.Listen(listenBacklog); terr != nil {
		ep.Close()
		return nil, &net.OpError{Op: "listen", Net: "tcp", Addr: tcpAddr(local), Err: errors.New(terr.String())}
	}
	l := &Listener{ep: ep, wq: &wq, host: h, closed: make(chan struct{}), due: make(chan struct{})}
	var clk clock = realClock{}
	if h.world != nil {
		clk = h.world.clock()
	}
	l.accept = deadline{clk: clk, expire: l.expire}
	return l, nil
}

// expire opens or closes due; l.accept.mu is held.
func (l *Listener) expire(due bool) {
	select {
	case <-l.due:
		if !due {
			l.due = make(chan struct{})
		}
	default:
		if due {
			close(l.due)
		}
	}
}

// deadline returns the channel that is closed while the Accept deadline
// has passed.
func (l *Listener) deadline() <-chan struct{} {
	l.accept.mu.Lock()
	defer l.accept.mu.Unlock()
	return l.due
}

// Accept waits for and returns the next connection. After Close it
// returns an error that matches net.ErrClosed; once the deadline has
// passed, one that matches os.ErrDeadlineExceeded (a net.Error whose
// Timeout is true).
func (l *Listener) Accept() (net.Conn, error) {
	var we waiter.Entry
	var ready chan struct{}
	for {
		select {
		case <-l.closed:
			return nil, l.opError(net.ErrClosed)
		case <-l.deadline():
			return nil, l.opError(os.ErrDeadlineExceeded)
		default:
		}
		ep, wq, terr := l.ep.Accept(nil)
		if terr == nil {
			return l.host.wrapTCP(gonet.NewTCPConn(wq, ep)), nil
		}
		if _, ok := terr.(*tcpip.ErrWouldBlock); !ok {
			return nil, l.opError(errors.New(terr.String()))
		}
		if ready == nil { // register, then try once more before waiting
			we, ready = waiter.NewChannelEntry(waiter.ReadableEvents)
			l.wq.EventRegister(&we)
			defer l.wq.EventUnregister(&we)
			continue
		}
		select {
		case <-ready:
		case <-l.closed:
		case <-l.deadline():
		}
	}
}

func (l *Listener) opError(err error) error {
	return &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: err}
}

// SetDeadline sets the deadline of Accept calls, waiting or to come; a
// zero time clears it. Like a conn's deadline it is taken on the World's
// clock: under VirtualTime a time on the real clock, such as
// time.Now().Add(d), runs d of virtual time, and a time of the World's
// clock, such as World.Now().Add(d), is met exactly.
func (l *Listener) SetDeadline(t time.Time) error {
	l.accept.set(t)
	return nil
}

// Close stops the listener; waiting Accept calls return net.ErrClosed.
func (l *Listener) Close() error {
	l.once.Do(func() {
		close(l.closed)
		l.accept.stop()
		l.ep.Close()
	})
	return nil
}

// Addr returns the listener's address.
func (l *Listener) Addr() net.Addr {
	a, err := l.ep.GetLocalAddress()
	if err != nil {
		return nil
	}
	return tcpAddr(a)
}

func tcpAddr(a tcpip.FullAddress) *net.TCPAddr {
	return &net.TCPAddr{IP: net.IP(a.Addr.AsSlice()), Port: int(a.Port)}
}
