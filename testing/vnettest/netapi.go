package vnettest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
)

// Name returns the host's name.
func (h *Host) Name() string { return h.cfg.Name }

// Wire returns the cable between the host and its network, on which
// stages impair or process its frames. It is nil for hosts made with the
// low-level NewHost.
func (h *Host) Wire() *Wire { return h.wire }

// Network returns the host's network; nil for hosts made with NewHost.
func (h *Host) Network() *Network { return h.network }

// Dial connects to address on the named network ("tcp", "tcp4", "udp",
// "udp4"), like net.Dial, from the host. The address's host part is an IP
// address or the name of a host of the World.
func (h *Host) Dial(network, address string) (net.Conn, error) {
	return h.DialContext(context.Background(), network, address)
}

// DialContext is Dial with a context; it has the signature of
// net/http.Transport.DialContext.
func (h *Host) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	opErr := func(err error) error {
		return &net.OpError{Op: "dial", Net: network, Addr: addrString(address), Err: fmt.Errorf("vnettest: host %s: %w", h.cfg.Name, err)}
	}
	host, port, err := splitHostPort(address)
	if err != nil {
		return nil, opErr(err)
	}
	ip, err := h.resolve(ctx, host)
	if err != nil {
		return nil, opErr(err)
	}
	remote := tcpip.FullAddress{Addr: addrOf(ip), Port: port}
	switch network {
	case "tcp", "tcp4":
		ctx, cancel := h.dialContext(ctx)
		defer cancel()
		c, err := gonet.DialContextTCP(ctx, h.stack, remote, h.proto)
		if err != nil {
			return nil, opErr(err)
		}
		return h.wrapTCP(c), nil
	case "udp", "udp4":
		c, err := gonet.DialUDP(h.stack, nil, &remote, h.proto)
		if err != nil {
			return nil, opErr(err)
		}
		return h.wrapUDP(c), nil
	}
	return nil, opErr(fmt.Errorf("network %q: want tcp, tcp4, udp or udp4", network))
}

// Listen listens for TCP connections on address (":80", or the host's own
// address and a port; port 0 picks a free one), like net.Listen. The
// listener is a *Listener, whose SetDeadline bounds Accept.
func (h *Host) Listen(network, address string) (net.Listener, error) {
	local, err := h.localAddr("listen", network, address, "tcp")
	if err != nil {
		return nil, err
	}
	l, err := h.listen(local)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Addr: addrString(address), Err: fmt.Errorf("vnettest: host %s: %w", h.cfg.Name, err)}
	}
	return l, nil
}

// ListenPacket opens a UDP socket on address (":53", or the host's own
// address and a port), like net.ListenPacket.
func (h *Host) ListenPacket(network, address string) (net.PacketConn, error) {
	local, err := h.localAddr("listen", network, address, "udp")
	if err != nil {
		return nil, err
	}
	c, err := gonet.DialUDP(h.stack, &local, nil, h.proto)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Addr: addrString(address), Err: fmt.Errorf("vnettest: host %s: %w", h.cfg.Name, err)}
	}
	return h.wrapUDP(c), nil
}

// HTTPClient returns an http.Client whose connections start at the host.
func (h *Host) HTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: h.DialContext, ForceAttemptHTTP2: true}}
}

// localAddr parses a local address for Listen and ListenPacket.
func (h *Host) localAddr(op, network, address, proto string) (tcpip.FullAddress, error) {
	fail := func(err error) error {
		return &net.OpError{Op: op, Net: network, Addr: addrString(address), Err: fmt.Errorf("vnettest: host %s: %w", h.cfg.Name, err)}
	}
	if network != proto && network != proto+"4" {
		return tcpip.FullAddress{}, fail(fmt.Errorf("network %q: want %s or %s4", network, proto, proto))
	}
	host, port, err := splitHostPort(address)
	if err != nil {
		return tcpip.FullAddress{}, fail(err)
	}
	switch host {
	case "", "0.0.0.0", h.Addr().String():
	default:
		return tcpip.FullAddress{}, fail(fmt.Errorf("address %q: want the host's own address %s or none", address, h.Addr()))
	}
	return tcpip.FullAddress{NIC: nicID, Addr: addrOf(h.Addr()), Port: port}, nil
}

// splitHostPort splits "host:port" with a numeric port.
func splitHostPort(address string) (string, uint16, error) {
	host, ps, err := net.SplitHostPort(address)
	if err != nil {
		return "", 0, fmt.Errorf("address %q: want host:port", address)
	}
	port, err := strconv.ParseUint(ps, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("address %q: port %q: want a number from 0 to 65535", address, ps)
	}
	return host, uint16(port), nil
}

// resolve turns an address literal or a host name into an address.
func (h *Host) resolve(ctx context.Context, host string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap(), nil
	}
	if h.world == nil {
		return netip.Addr{}, &net.DNSError{Err: "no such host (hosts made with NewHost resolve no names)", Name: host, IsNotFound: true}
	}
	return h.world.lookup(host)
}

// addrString is a net.Addr for errors.
type addrString string

func (a addrString) Network() string { return "" }
func (a addrString) String() string  { return string(a) }
