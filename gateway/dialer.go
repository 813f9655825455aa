package gateway

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/switchyard-net/switchyard/switch/stackport"
)

// Dialer opens connections into the network from the gateway's netstack,
// for published ports (it satisfies proxy.Dialer). With KeepSource the
// connection's source is the client's own address and port, so the
// container sees who really connected — docker-proxy, slirp4netns's port
// forwarding and gvisor-tap-vsock all show their own address instead. The
// container's replies go to its default route, the gateway, whose
// promiscuous netstack delivers them back to this connection.
//
// The client's address is used only when it can be: same IP family as the
// network, not loopback (the container would answer itself), not inside
// the network's subnet, and not already in use towards the same target
// (then the gateway address is used, as it is without KeepSource).
type Dialer struct {
	g          *Gateway
	KeepSource bool
}

// Dialer returns a dialer for published ports of this network.
func (g *Gateway) Dialer(keepSource bool) *Dialer { return &Dialer{g: g, KeepSource: keepSource} }

// source returns the address a connection from client to dst should
// come from: the client's own if KeepSource and it can be (same family as
// dst, not from inside the network), else the gateway's address of dst's
// family.
func (d *Dialer) source(client, dst netip.AddrPort) (tcpip.FullAddress, bool) {
	g := d.g
	a := client.Addr().Unmap()
	if d.KeepSource && a.IsValid() && a.Is4() == dst.Addr().Is4() && !a.IsLoopback() && !a.IsUnspecified() &&
		!g.inSubnet(a) && a != g.cfg.HostLoopback {
		return tcpip.FullAddress{NIC: NICID, Addr: stackport.Addr(a), Port: client.Port()}, true
	}
	return tcpip.FullAddress{NIC: NICID, Addr: stackport.Addr(g.addrFor(dst.Addr()))}, false
}

// DialTCP connects to dst inside the network on behalf of client src.
func (d *Dialer) DialTCP(ctx context.Context, src, dst netip.AddrPort) (net.Conn, error) {
	local, spoofed := d.source(src, dst)
	remote := tcpip.FullAddress{NIC: NICID, Addr: stackport.Addr(dst.Addr()), Port: dst.Port()}
	c, err := d.dialTCP(ctx, local, remote)
	if _, inUse := err.(*tcpip.ErrPortInUse); inUse && spoofed {
		// The client's address and port are taken towards this target
		// (the same client on another published port, or TIME_WAIT).
		local, _ = d.source(netip.AddrPort{}, dst)
		c, err = d.dialTCP(ctx, local, remote)
	}
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(dst), Err: tcpipError{err: err}}
	}
	return c, nil
}

// dialTCP binds a netstack TCP endpoint to local and connects it to
// remote, closing it on any failure.
func (d *Dialer) dialTCP(ctx context.Context, local, remote tcpip.FullAddress) (*tcpConn, tcpip.Error) {
	var wq waiter.Queue
	ep, err := d.g.stack.NewEndpoint(tcp.ProtocolNumber, stackport.Protocol(addrFrom(remote.Addr)), &wq)
	if err != nil {
		return nil, err
	}
	entry, writable := waiter.NewChannelEntry(waiter.WritableEvents)
	wq.EventRegister(&entry)
	defer wq.EventUnregister(&entry)
	if err := ep.Bind(local); err != nil {
		ep.Close()
		return nil, err
	}
	err = ep.Connect(remote)
	if _, started := err.(*tcpip.ErrConnectStarted); started {
		select {
		case <-ctx.Done():
			ep.Close()
			return nil, &tcpip.ErrTimeout{}
		case <-writable:
		}
		err = ep.LastError()
	}
	if err != nil {
		ep.Close()
		return nil, err
	}
	return newTCPConn(&wq, ep), nil
}

// tcpipError carries a netstack error as a Go error. A refused connection
// matches syscall.ECONNREFUSED, so callers can tell it from other failures.
type tcpipError struct{ err tcpip.Error }

func (e tcpipError) Error() string { return e.err.String() }

func (e tcpipError) Is(target error) bool {
	switch e.err.(type) {
	case *tcpip.ErrConnectionRefused:
		return target == syscall.ECONNREFUSED
	case *tcpip.ErrTimeout:
		return target == context.DeadlineExceeded
	case *tcpip.ErrHostUnreachable, *tcpip.ErrNetworkUnreachable:
		return target == syscall.EHOSTUNREACH
	}
	return false
}

// DialUDP returns a UDP socket inside the network connected to dst on
// behalf of client src. It is a proxy.ReplyPusher.
func (d *Dialer) DialUDP(ctx context.Context, src, dst netip.AddrPort) (net.Conn, error) {
	local, spoofed := d.source(src, dst)
	remote := tcpip.FullAddress{NIC: NICID, Addr: stackport.Addr(dst.Addr()), Port: dst.Port()}
	proto := stackport.Protocol(dst.Addr())
	c, err := dialUDP(d.g.stack, local, remote, proto)
	if err != nil && spoofed {
		local, _ = d.source(netip.AddrPort{}, dst)
		c, err = dialUDP(d.g.stack, local, remote, proto)
	}
	if err != nil {
		return nil, fmt.Errorf("UDP socket to %s in network %s: %w", dst, d.g.cfg.Network, tcpipError{err: err})
	}
	return c, nil
}
