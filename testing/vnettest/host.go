package vnettest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
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
	once  sync.Once

	// Set for hosts of a World.
	world   *World
	network *Network
	wire    *Wire
}

// DockerMAC returns 02:42 followed by the last four bytes of addr, the way
// Docker derives container MACs from IPv4 addresses.
func DockerMAC(addr netip.Addr) vswitch.MAC {
	b := addr.AsSlice()
	b = b[len(b)-4:]
	return vswitch.MAC{0x02, 0x42, b[0], b[1], b[2], b[3]}
}

// NewHost creates a host and attaches it to sw. It is the low-level form,
// for tests of the switch and the gateway themselves; World.NewNetwork and
// Network.NewHost build hosts that are closed with the test and sit behind
// an impairable Wire.
func NewHost(sw *vswitch.Switch, cfg HostConfig) (*Host, error) { return newHost(sw, cfg, nil) }

// newHost creates a host; wrap, if not nil, puts a port between the host's
// netstack and the switch.
func newHost(sw *vswitch.Switch, cfg HostConfig, wrap func(vswitch.Port) vswitch.Port) (*Host, error) {
	if !cfg.Addr.IsValid() {
		return nil, fmt.Errorf("vnettest: host %q needs an address", cfg.Name)
	}
	return newHostOn(sw, cfg, wrap, stackport.NewStack())
}

// newHostOn is newHost on the netstack s; cfg.Addr is valid.
func newHostOn(sw *vswitch.Switch, cfg HostConfig, wrap func(vswitch.Port) vswitch.Port, s *stack.Stack) (*Host, error) {
	if cfg.MAC.IsZero() {
		cfg.MAC = DockerMAC(cfg.Addr.Addr())
	}
	h := &Host{cfg: cfg, sw: sw, stack: s, proto: stackport.Protocol(cfg.Addr.Addr())}
	h.port = stackport.New(stackport.Config{Name: cfg.Name, Kind: "host", MAC: cfg.MAC, MTU: cfg.MTU})
	var port vswitch.Port = h.port
	if wrap != nil {
		port = wrap(port)
	}
	link, err := sw.Attach(port, vswitch.AttachOptions{Isolated: cfg.Isolated})
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

// Link returns the host's port on the switch, for its counters.
func (h *Host) Link() *vswitch.Link { return h.link }

// ListenTCP listens on the host's address.
func (h *Host) ListenTCP(port uint16) (net.Listener, error) {
	l, err := h.listen(tcpip.FullAddress{NIC: nicID, Addr: addrOf(h.Addr()), Port: port})
	if err != nil {
		return nil, err
	}
	return l, nil
}

// DialTCP connects to dst from the host.
func (h *Host) DialTCP(ctx context.Context, dst netip.AddrPort) (net.Conn, error) {
	ctx, cancel := h.dialContext(ctx)
	defer cancel()
	c, err := gonet.DialContextTCP(ctx, h.stack, tcpip.FullAddress{Addr: addrOf(dst.Addr()), Port: dst.Port()}, h.proto)
	if err != nil {
		return nil, err
	}
	return h.wrapTCP(c), nil
}

// ListenUDP binds a UDP socket on the host's address.
func (h *Host) ListenUDP(port uint16) (net.PacketConn, error) {
	c, err := gonet.DialUDP(h.stack, &tcpip.FullAddress{NIC: nicID, Addr: addrOf(h.Addr()), Port: port}, nil, h.proto)
	if err != nil {
		return nil, err
	}
	return h.wrapUDP(c), nil
}

// DialUDP returns a UDP socket on the host connected to dst.
func (h *Host) DialUDP(dst netip.AddrPort) (net.Conn, error) {
	c, err := gonet.DialUDP(h.stack, nil, &tcpip.FullAddress{Addr: addrOf(dst.Addr()), Port: dst.Port()}, h.proto)
	if err != nil {
		return nil, err
	}
	return h.wrapUDP(c), nil
}

// ErrPingTimeout is returned by Ping when no echo reply arrived in time.
var ErrPingTimeout = errors.New("vnettest: ping timed out")

// Close detaches the host and shuts its netstack down. Closing twice is
// harmless; a World closes its hosts itself.
func (h *Host) Close() {
	h.once.Do(func() {
		if h.link != nil {
			h.sw.Detach(h.link)
		}
		h.stack.Close()
		h.stack.Wait()
	})
}

// Ping sends one ICMP echo request to dst and waits for the reply until ctx
// ends. It returns the round-trip time.
func (h *Host) Ping(ctx context.Context, dst netip.Addr) (time.Duration, error) {
	return ping(ctx, h.stack, h.proto, dst)
}
