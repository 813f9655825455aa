package gateway

import (
	"bytes"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/waiter"
)

// UDP egress flows, and what an idle one costs. A flow relays one
// container↔destination pair of addresses until it is quiet for
// UDPTimeout:
//
//	container ─► netstack endpoint ──readable──► udpPump (one goroutine per gateway)
//	                                               └─ read into a pooled buffer ─► host socket (never waits)
//	destination ─► host socket ──readable──► the flow's goroutine, parked in RawConn.Read
//	                                           └─ read into a pooled buffer ─► netstack endpoint
//
// An idle flow holds no buffer: the container side has no goroutine at all
// (the netstack's readable event queues the flow on the pump), and the
// host side's goroutine waits in the runtime's poller without a buffer,
// which RawConn.Read allows and net.Conn.Read does not. So an idle flow
// costs one parked goroutine (a few KiB of stack), one host socket, the
// netstack endpoint and this struct: TestUDPFlowIdleMemory measures it.
// Buffers (64 KiB, the largest datagram) come from a pool only while a
// datagram is in hand.

// datagramPool holds buffers for one datagram.
var datagramPool = sync.Pool{New: func() any { return new([65535]byte) }}

type udpFlow struct {
	e     *egress
	wq    *waiter.Queue
	ep    tcpip.Endpoint
	host  net.Conn
	raw   syscall.RawConn // host's, if it has one (a real socket)
	id    stack.TransportEndpointID
	entry waiter.Entry
	// queued is set while the flow waits on the pump's queue, so that it
	// is queued at most once.
	queued atomic.Bool
	last   atomic.Int64 // unix nanoseconds of the last datagram either way
	// lastLen is the length of the last datagram sent out, to quote its
	// UDP header in a port unreachable error if the destination refuses it.
	lastLen atomic.Int64
}

func newUDPFlow(e *egress, wq *waiter.Queue, ep tcpip.Endpoint, host net.Conn, id stack.TransportEndpointID) *udpFlow {
	f := &udpFlow{e: e, wq: wq, ep: ep, host: host, id: id}
	if sc, ok := host.(syscall.Conn); ok {
		f.raw, _ = sc.SyscallConn()
	}
	f.last.Store(e.g.clock.Now().UnixNano())
	f.entry = waiter.NewFunctionEntry(waiter.ReadableEvents, func(waiter.EventMask) { e.udpReadable(f) })
	wq.EventRegister(&f.entry)
	return f
}

// run is the flow's one goroutine: it carries the destination's datagrams
// to the container and ends the flow when it is idle, or when the host
// socket is closed (Gateway.Close). handleUDP counted it in e.flows and
// tracked its host socket; run undoes both.
func (f *udpFlow) run() {
	defer f.e.flows.Done()
	defer f.e.untrack(f.host)
	defer f.e.udpActive.Add(-1)
	defer f.e.release()
	e := f.e
	e.udpReadable(f) // a datagram that came with the first may wait already
	f.host.SetReadDeadline(e.g.clock.Now().Add(e.cfg.UDPTimeout))
	for {
		err := f.hostToInner()
		if errors.Is(err, syscall.ECONNREFUSED) {
			f.refused()
			continue
		}
		if isTimeout(err) && !f.idle() {
			continue
		}
		break
	}
	f.wq.EventUnregister(&f.entry)
	f.host.Close()
	f.ep.Close()
}

// hostToInner carries datagrams from the host socket to the container
// until an error (a deadline included).
func (f *udpFlow) hostToInner() error {
	if f.raw == nil {
		return f.hostToInnerBuffered()
	}
	var rerr error
	err := f.raw.Read(func(fd uintptr) bool {
		for {
			buf := datagramPool.Get().(*[65535]byte)
			n, err := unix.Read(int(fd), buf[:])
			if err == nil {
				f.deliver(buf[:n])
			}
			datagramPool.Put(buf)
			switch {
			case err == nil:
				continue
			case err == unix.EAGAIN:
				return false // park, holding no buffer
			case err == unix.EINTR:
				continue
			default:
				rerr = err
				return true
			}
		}
	})
	if err != nil {
		return err
	}
	return rerr
}

// hostToInnerBuffered is hostToInner for a host connection that is no
// socket (EgressConfig.Dial in tests): it holds a buffer while it waits.
func (f *udpFlow) hostToInnerBuffered() error {
	buf := datagramPool.Get().(*[65535]byte)
	defer datagramPool.Put(buf)
	for {
		n, err := f.host.Read(buf[:])
		if err != nil {
			return err
		}
		f.deliver(buf[:n])
	}
}

// deliver sends one datagram from the destination to the container.
func (f *udpFlow) deliver(b []byte) {
	f.touch()
	var r bytes.Reader
	r.Reset(b)
	f.ep.Write(&r, tcpip.WriteOptions{}) // a full or closed endpoint drops it, as a full socket would
}

// udpReadable queues f on the pump (the netstack calls it, inline, when
// the container's side has datagrams): it must not block.
func (e *egress) udpReadable(f *udpFlow) {
	if !f.queued.CompareAndSwap(false, true) {
		return
	}
	select {
	case e.udpReady <- f:
	default:
		// Cannot happen: the queue holds every flow once. Let the next
		// datagram queue it again.
		f.queued.Store(false)
	}
}

// udpPump is the one goroutine that carries every flow's datagrams from
// the container to the host: each flow's pending datagrams, one pooled
// buffer at a time. A host socket that cannot take a datagram at once
// drops it, as a full socket buffer would: the pump never waits.
func (e *egress) udpPump() {
	defer e.flows.Done()
	for {
		select {
		case <-e.ctx.Done():
			return
		case f := <-e.udpReady:
			f.queued.Store(false) // before reading: a datagram after the read queues it again
			f.innerToHost()
		}
	}
}

// innerToHost sends every datagram waiting on f's netstack endpoint.
func (f *udpFlow) innerToHost() {
	buf := datagramPool.Get().(*[65535]byte)
	defer datagramPool.Put(buf)
	for {
		w := tcpip.SliceWriter(buf[:])
		res, terr := f.ep.Read(&w, tcpip.ReadOptions{})
		if terr != nil {
			return // *tcpip.ErrWouldBlock: nothing more; or closed
		}
		n := res.Count
		f.touch()
		f.lastLen.Store(int64(n))
		if err := f.send(buf[:n]); errors.Is(err, syscall.ECONNREFUSED) {
			f.refused()
		}
	}
}

// send writes one datagram to the host socket without waiting.
func (f *udpFlow) send(b []byte) error {
	if f.raw == nil {
		_, err := f.host.Write(b)
		return err
	}
	var werr error
	err := f.raw.Write(func(fd uintptr) bool {
		for {
			_, werr = unix.Write(int(fd), b)
			if werr != unix.EINTR {
				return true // EAGAIN included: dropped, never waited for
			}
		}
	})
	if err != nil {
		return err
	}
	return werr
}

func (f *udpFlow) touch() { f.last.Store(f.e.g.clock.Now().UnixNano()) }

// idle reports whether the flow has been quiet for UDPTimeout, and moves
// the host socket's deadline on otherwise.
func (f *udpFlow) idle() bool {
	now := f.e.g.clock.Now()
	quiet := now.Sub(time.Unix(0, f.last.Load()))
	if quiet >= f.e.cfg.UDPTimeout {
		return true
	}
	f.host.SetReadDeadline(now.Add(f.e.cfg.UDPTimeout - quiet))
	return false
}

// refused answers the container with ICMP port unreachable, as the
// destination answered the host.
func (f *udpFlow) refused() {
	f.e.udpRefused.Add(1)
	f.e.g.unreachableUDP(f.id, int(f.lastLen.Load()))
}
