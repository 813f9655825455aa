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
