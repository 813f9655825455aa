package stackport

import (
	"fmt"
	"io"
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

// NewStack returns a netstack with the protocols a Switchyard gateway or
// virtual host speaks: IPv4, IPv6, ARP, ICMP, TCP and UDP, with TCP SACK on
// as on Linux.
//
// TCP's RACK loss detection (gVisor's default) is off: its senders
// recover losses with SACK (RFC 6675) and the retransmission timer. With
// RACK, a sender whose tail-loss probe resent the last segment sometimes
// never retransmitted the hole before it and never fired its timer: the
// connection stalled until the peer gave up (vnettest's
// TestDelayAndLossyTCP, 5 % loss one way and 2 % in bursts the other,
// stalled in 7 of 800 runs and in none of 800 without RACK; the stall
// family of gVisor issue 6113).
// Without RACK the published ports' 4-stream throughput at MTU 1500 was
// higher, not lower (benchmarks/RESULTS.md, "TCP loss recovery").
func NewStack() *stack.Stack { return NewStackWith(nil, nil) }

// NewStackWith is NewStack on the caller's clock and source of random
// bytes (from which the netstack draws its sequence numbers, ports and
// timer jitter), for virtual time and replayable runs. rng must be safe for
// concurrent use. Nil keeps the netstack's default: the real clock, and
// crypto/rand.
func NewStackWith(clock tcpip.Clock, rng io.Reader) *stack.Stack {
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, ipv6.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol4, icmp.NewProtocol6},
		Clock:              clock,
		SecureRNG:          rng,
	})
	sack := tcpip.TCPSACKEnabled(true)
	s.SetTransportProtocolOption(tcp.ProtocolNumber, &sack)
	noRACK := tcpip.TCPRecovery(0)
	s.SetTransportProtocolOption(tcp.ProtocolNumber, &noRACK)
	return s
}

// AddNIC creates NIC id on s with p as its link, assigns it addr (the
// address and the length of its subnet) and returns the route to that
// subnet for the caller's route table.
func (p *Port) AddNIC(s *stack.Stack, id tcpip.NICID, addr netip.Prefix) (tcpip.Route, error) {
	if err := s.CreateNIC(id, p.LinkEndpoint()); err != nil {
		return tcpip.Route{}, fmt.Errorf("create NIC: %s", err)
	}
	awp := tcpip.AddressWithPrefix{Address: Addr(addr.Addr()), PrefixLen: addr.Bits()}
	pa := tcpip.ProtocolAddress{Protocol: Protocol(addr.Addr()), AddressWithPrefix: awp}
	if err := s.AddProtocolAddress(id, pa, stack.AddressProperties{}); err != nil {
		return tcpip.Route{}, fmt.Errorf("add address %s: %s", addr, err)
	}
	return tcpip.Route{Destination: awp.Subnet(), NIC: id}, nil
}

// Addr converts a for the netstack.
func Addr(a netip.Addr) tcpip.Address { return tcpip.AddrFromSlice(a.AsSlice()) }

// Protocol returns the netstack network protocol of a.
func Protocol(a netip.Addr) tcpip.NetworkProtocolNumber {
	if a.Is6() {
		return ipv6.ProtocolNumber
	}
	return ipv4.ProtocolNumber
}
