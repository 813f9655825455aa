package proxy

import (
	"context"
	"net"
	"net/netip"
)

// Dialer opens the container side of a published port's connections.
//
// There are two in Switchyard: the gateway's netstack (the connection is
// originated inside the virtual network, with the client's own address as
// its source if the dialer is asked to keep it, so the container sees the
// real client), and a kernel socket made inside the container's network
// namespace (the fast path: both sides are kernel TCP sockets, so the relay
// splices, but the container sees its own address as the source).
type Dialer interface {
	// DialTCP connects to dst. src is the client's address as the host
	// saw it; a dialer that can, uses it as the connection's source. The
	// returned conn should implement CloseWrite (half-close); if it does
	// not, the relay closes it fully when the client stops sending.
	DialTCP(ctx context.Context, src, dst netip.AddrPort) (net.Conn, error)
	// DialUDP returns a datagram connection to dst on behalf of client
	// src: Write sends a datagram to dst, Read returns dst's replies.
	DialUDP(ctx context.Context, src, dst netip.AddrPort) (net.Conn, error)
}

// ReplyPusher is an optional interface of the datagram connections a
// Dialer's DialUDP returns: a connection that can hand each datagram it
// receives to a function, on the goroutine that delivered it, so that its
// flow needs no goroutine of its own parked in Read. The gateway's
// netstack connections have it: a container's reply is sent on to the
// client by the TAP reader that brought it in, one goroutine wake-up per
// round trip fewer than a reader woken for it.
type ReplyPusher interface {
	// PushReplies makes the connection call push for every datagram it
	// receives from now on, in place of Read: with the datagram and a
	// nil error, or with a nil datagram and the error a Read would have
	// returned (one matching syscall.ECONNREFUSED when the target port
	// is closed; net.ErrClosed once the connection is closed under the
	// flow). p is the connection's buffer, valid only during the call.
	// Calls come one at a time and in order, on whatever goroutine
	// delivered the datagram (possibly with the network's locks held):
	// push must not block, and must not call the connection's methods.
	// No call is in progress or starts once Close has returned.
	//
	// It is called at most once, before the connection is used. It
	// reports false if the connection cannot push (then the flow reads
	// it as any other connection).
	PushReplies(push func(p []byte, err error)) bool
}
