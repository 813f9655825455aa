package gateway

import (
	"net"
	"sync"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// udpConn is the Dialer's UDP connection into the network: a gonet.UDPConn
// (Read, Write, deadlines) that can also push its replies
// (proxy.ReplyPusher), so that a published port's flow needs no goroutine
// parked in Read.
//
// Pushing rests on how gVisor's UDP endpoint delivers (transport/udp,
// endpoint.HandlePacket): it queues the datagram under its receive lock,
// releases it, and only then notifies the endpoint's waiter queue, on the
// goroutine that delivered the packet into the netstack. For a frame from
// a container that goroutine is the TAP's reader (stackport delivers
// Direct frames inline), holding no lock of ours; the netstack's transport
// demuxer holds its read lock only for broadcast and multicast
// deliveries. The waiter queue's own read lock is held during the
// notification. So the listener may read the endpoint (its receive lock
// and last-error lock are free) and write to a host socket, but must not
// close the endpoint or touch the waiter queue: Close unregisters the
// listener first, which waits for a notification in progress.
type udpConn struct {
	*gonet.UDPConn
	ep tcpip.Endpoint
	wq *waiter.Queue

	entry     waiter.Entry
	push      func(p []byte, err error) // nil until PushReplies
	draining  atomic.Int32              // notifications since a drain began; >0 while one runs
	w         tcpip.SliceWriter         // the drain's view of its buffer
	closeOnce sync.Once
}

// datagrams are the buffers a drain holds while it runs, so an idle
// connection holds none.
var datagrams = sync.Pool{New: func() any { b := make([]byte, 65535); return &b }}

// dialUDP makes a netstack UDP endpoint bound to local and connected to
// remote.
func dialUDP(s *stack.Stack, local, remote tcpip.FullAddress, proto tcpip.NetworkProtocolNumber) (*udpConn, tcpip.Error) {
	wq := new(waiter.Queue)
	ep, err := s.NewEndpoint(udp.ProtocolNumber, proto, wq)
	if err != nil {
		return nil, err
	}
	if err := ep.Bind(local); err != nil {
		ep.Close()
		return nil, err
	}
	if err := ep.Connect(remote); err != nil {
		ep.Close()
		return nil, err
	}
	return &udpConn{UDPConn: gonet.NewUDPConn(wq, ep), ep: ep, wq: wq}, nil
}

// PushReplies implements proxy.ReplyPusher: from now on every datagram
// (and receive error) is handed to push on the goroutine that delivered
// it, instead of waiting for Read.
func (c *udpConn) PushReplies(push func(p []byte, err error)) bool {
	c.push = push
	c.entry.Init(c, waiter.ReadableEvents|waiter.EventErr|waiter.EventHUp)
	c.wq.EventRegister(&c.entry)
	// A datagram that arrived before the listener was there.
	c.NotifyEvent(waiter.ReadableEvents)
	return true
}

// NotifyEvent implements waiter.EventListener. Deliveries on several
// goroutines at once (two TAP readers) are serialised: the first drains
// the endpoint; the others only count, and the drainer goes round again if
// any counted while it ran, so no datagram waits for a next notification.
func (c *udpConn) NotifyEvent(waiter.EventMask) {
	if c.draining.Add(1) != 1 {
		return
	}
	for {
		c.drain()
		if c.draining.CompareAndSwap(1, 0) {
			return
		}
		c.draining.Store(1)
	}
}

// drain hands every queued datagram and error to push.
func (c *udpConn) drain() {
	bp := datagrams.Get().(*[]byte)
	for c.readOne(*bp) {
	}
	datagrams.Put(bp)
}

// readOne reads one datagram or error into buf and hands it to push. It
// reports false when there is nothing more to read.
func (c *udpConn) readOne(buf []byte) bool {
	c.w = tcpip.SliceWriter(buf)
	res, err := c.ep.Read(&c.w, tcpip.ReadOptions{})
	switch err.(type) {
	case nil:
		c.push(buf[:res.Count], nil)
		return true
	case *tcpip.ErrWouldBlock:
		return false
	case *tcpip.ErrClosedForReceive:
		c.push(nil, net.ErrClosed)
		return false
	default: // an ICMP error (the last error, cleared by the read): go on
		c.push(nil, tcpipError{err: err})
		return true
	}
}

// Close closes the endpoint; once it returns, push is no longer called.
func (c *udpConn) Close() error {
	c.closeOnce.Do(func() {
		if c.push != nil {
			c.wq.EventUnregister(&c.entry) // waits for a notification in progress
		}
		c.UDPConn.Close()
	})
	return nil
}
