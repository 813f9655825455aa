// Package vnettest builds virtual networks in-process: virtual hosts, each
// a small gVisor netstack on a port of a vswitch.Switch, that speak ARP,
// ICMP, TCP and UDP through the switch exactly as containers do through
// TAPs, with no root, no TAP and no namespace.
//
// Tests use it to exercise the switch, the gateway and everything behind
// them; other Go projects use it to put a packet pipeline between hosts and
// fuzz what crosses it (attach a porttest.Port or a Port of their own next
// to the hosts).
//
//	sw := vswitch.New(vswitch.Config{})
//	a, _ := vnettest.NewHost(sw, vnettest.HostConfig{Name: "a", Addr: netip.MustParsePrefix("10.0.0.2/24")})
//	b, _ := vnettest.NewHost(sw, vnettest.HostConfig{Name: "b", Addr: netip.MustParsePrefix("10.0.0.3/24")})
//	l, _ := b.ListenTCP(80)
//	c, _ := a.DialTCP(ctx, netip.MustParseAddrPort("10.0.0.3:80"))
package vnettest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/switch/stackport"
)

const nicID tcpip.NICID = 1

// HostConfig describes a virtual host.
type HostConfig struct {
	// Name is the host's port name on the switch.
	Name string
	// Addr is the host's address and the length of its subnet.
	Addr netip.Prefix
	// MAC of the host. Zero means Docker's scheme: 02:42 followed by the
	// IPv4 address (or the last four bytes of an IPv6 address).
	MAC vswitch.MAC
	// Gateway, if valid, becomes the default route.
	Gateway netip.Addr
	// MTU; 0 means 1500.
	MTU int
	// Isolated attaches the host as an icc=false endpoint.
	Isolated bool
}

// Host is a virtual host on a switch.
type Host struct {
	cfg   HostConfig
	stack *stack.Stack
	port  *stackport.Port
	link  *vswitch.Link
	sw    *vswitch.Switch
	proto tcpip.NetworkProtocolNumber
}

// DockerMAC returns 02:42 followed by the last four bytes of addr, the way
// Docker derives container MACs from IPv4 addresses.
func DockerMAC(addr netip.Addr) vswitch.MAC {
	b := addr.AsSlice()
	b = b[len(b)-4:]
	return vswitch.MAC{0x02, 0x42, b[0], b[1], b[2], b[3]}
}

// NewHost creates a host and attaches it to sw.
func NewHost(sw *vswitch.Switch, cfg HostConfig) (*Host, error) {
	if !cfg.Addr.IsValid() {
		return nil, fmt.Errorf("vnettest: host %q needs an address", cfg.Name)
	}
	if cfg.MAC.IsZero() {
		cfg.MAC = DockerMAC(cfg.Addr.Addr())
	}
	h := &Host{cfg: cfg, sw: sw, stack: stackport.NewStack(), proto: stackport.Protocol(cfg.Addr.Addr())}
	h.port = stackport.New(stackport.Config{Name: cfg.Name, Kind: "host", MAC: cfg.MAC, MTU: cfg.MTU})
	link, err := sw.Attach(h.port, vswitch.AttachOptions{Isolated: cfg.Isolated})
	if err != nil {
		h.stack.Close()
		return nil, fmt.Errorf("vnettest: attach host %q: %w", cfg.Name, err)
	}
	h.link = link
	if err := h.configure(); err != nil {
		h.Close()
		return nil, fmt.Errorf("vnettest: host %q: %w", cfg.Name, err)
	}
	return h, nil
}

func (h *Host) configure() error {
	route, err := h.port.AddNIC(h.stack, nicID, h.cfg.Addr)
	if err != nil {
		return err
	}
	routes := []tcpip.Route{route}
	if h.cfg.Gateway.IsValid() {
		any := header.IPv4EmptySubnet
		if h.cfg.Gateway.Is6() {
			any = header.IPv6EmptySubnet
		}
		routes = append(routes, tcpip.Route{Destination: any, Gateway: addrOf(h.cfg.Gateway), NIC: nicID})
	}
	h.stack.SetRouteTable(routes)
	return nil
}

func addrOf(a netip.Addr) tcpip.Address { return stackport.Addr(a) }

// Addr returns the host's address.
func (h *Host) Addr() netip.Addr { return h.cfg.Addr.Addr() }

// MAC returns the host's Ethernet address.
func (h *Host) MAC() vswitch.MAC { return h.cfg.MAC }

// Stack returns the host's netstack, for tests that need more than the
// helpers here.
func (h *Host) Stack() *stack.Stack { return h.stack }

// Link returns the host's port on the switch, for its counters.
func (h *Host) Link() *vswitch.Link { return h.link }

// ListenTCP listens on the host's address.
func (h *Host) ListenTCP(port uint16) (net.Listener, error) {
	return gonet.ListenTCP(h.stack, tcpip.FullAddress{NIC: nicID, Addr: addrOf(h.Addr()), Port: port}, h.proto)
}

// DialTCP connects to dst from the host.
func (h *Host) DialTCP(ctx context.Context, dst netip.AddrPort) (net.Conn, error) {
	return gonet.DialContextTCP(ctx, h.stack, tcpip.FullAddress{Addr: addrOf(dst.Addr()), Port: dst.Port()}, h.proto)
}

// ListenUDP binds a UDP socket on the host's address.
func (h *Host) ListenUDP(port uint16) (net.PacketConn, error) {
	return gonet.DialUDP(h.stack, &tcpip.FullAddress{NIC: nicID, Addr: addrOf(h.Addr()), Port: port}, nil, h.proto)
}

// DialUDP returns a UDP socket on the host connected to dst.
func (h *Host) DialUDP(dst netip.AddrPort) (net.Conn, error) {
	return gonet.DialUDP(h.stack, nil, &tcpip.FullAddress{Addr: addrOf(dst.Addr()), Port: dst.Port()}, h.proto)
}

// ErrPingTimeout is returned by Ping when no echo reply arrived in time.
var ErrPingTimeout = errors.New("vnettest: ping timed out")

// Close detaches the host and shuts its netstack down.
func (h *Host) Close() {
	if h.link != nil {
		h.sw.Detach(h.link)
	}
	h.stack.Close()
	h.stack.Wait()
}

// Ping sends one ICMP echo request to dst and waits for the reply until ctx
// ends. It returns the round-trip time.
func (h *Host) Ping(ctx context.Context, dst netip.Addr) (time.Duration, error) {
	return ping(ctx, h.stack, h.proto, dst)
}
