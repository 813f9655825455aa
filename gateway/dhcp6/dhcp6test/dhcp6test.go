// Package dhcp6test plays a DHCPv6 client on the wire for tests of the
// server and of what runs it (the gateway, the daemon): it wraps client
// messages in frames and reads the server's frames back.
package dhcp6test

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/switchyard-net/switchyard/gateway/dhcp6"
	vswitch "github.com/switchyard-net/switchyard/switch"
)

// LinkLocal is the EUI-64 link-local address of mac, the source a client
// with that MAC sends from.
func LinkLocal(mac vswitch.MAC) netip.Addr {
	return netip.AddrFrom16([16]byte{0xfe, 0x80, 8: mac[0] ^ 2, mac[1], mac[2], 0xff, 0xfe, mac[3], mac[4], mac[5]})
}

// Frame is msg in UDP 546 → 547 from mac and its IPv6 address src to
// the servers' group ff02::1:2, with a correct checksum.
func Frame(mac vswitch.MAC, src netip.Addr, msg []byte) []byte {
	b := make([]byte, vswitch.EthHeaderLen+header.IPv6MinimumSize+header.UDPMinimumSize+len(msg))
	header.Ethernet(b).Encode(&header.EthernetFields{SrcAddr: tcpip.LinkAddress(mac[:]),
		DstAddr: tcpip.LinkAddress(dhcp6.AllServersMAC[:]), Type: header.IPv6ProtocolNumber})
	ulen := uint16(header.UDPMinimumSize + len(msg))
	ip := header.IPv6(b[vswitch.EthHeaderLen:])
	ip.Encode(&header.IPv6Fields{PayloadLength: ulen, TransportProtocol: header.UDPProtocolNumber, HopLimit: 1,
		SrcAddr: tcpip.AddrFrom16(src.As16()), DstAddr: tcpip.AddrFrom16(dhcp6.AllServers.As16())})
	udp := header.UDP(ip[header.IPv6MinimumSize:])
	udp.Encode(&header.UDPFields{SrcPort: dhcp6.ClientPort, DstPort: dhcp6.ServerPort, Length: ulen})
	copy(udp[header.UDPMinimumSize:], msg)
	FixChecksum(b)
	return b
}

// FixChecksum sets the UDP checksum of the IPv6 frame b, whose IPv6 and
// UDP lengths must be sound.
func FixChecksum(b []byte) {
	ip := header.IPv6(b[vswitch.EthHeaderLen:])
	udp := header.UDP(ip[header.IPv6MinimumSize:])
	udp.SetChecksum(0)
	xsum := header.PseudoHeaderChecksum(header.UDPProtocolNumber, ip.SourceAddress(), ip.DestinationAddress(), udp.Length())
	xsum = checksum.Checksum(udp[header.UDPMinimumSize:udp.Length()], xsum)
	sum := ^udp.CalculateChecksum(xsum)
	if sum == 0 {
		sum = 0xffff // zero means "no checksum", which IPv6 forbids
	}
	udp.SetChecksum(sum)
}

// Solicit is a SOLICIT from mac with a DUID-LLT, one IA_NA and mods.
func Solicit(mac vswitch.MAC, mods ...dhcpv6.Modifier) *dhcpv6.Message {
	m, err := dhcpv6.NewSolicit(net.HardwareAddr(mac[:]), mods...)
	if err != nil {
		panic(err) // only for a MAC shorter than 4 bytes
	}
	return m
}

// IsReply reports whether frame b is a DHCPv6 server message: IPv6 UDP
// to port 546.
func IsReply(b []byte) bool {
	if len(b) < vswitch.EthHeaderLen+header.IPv6MinimumSize+header.UDPMinimumSize || b[12] != 0x86 || b[13] != 0xdd {
		return false
	}
	ip := header.IPv6(b[vswitch.EthHeaderLen:])
	return ip.NextHeader() == uint8(header.UDPProtocolNumber) && header.UDP(ip[header.IPv6MinimumSize:]).DestinationPort() == dhcp6.ClientPort
}

// Decode checks that frame b is a DHCPv6 server message with a valid
// checksum, and decodes it.
func Decode(b []byte) (*dhcpv6.Message, error) {
	if !IsReply(b) {
		return nil, fmt.Errorf("frame of %d bytes is not IPv6 UDP to port %d", len(b), dhcp6.ClientPort)
	}
	ip := header.IPv6(b[vswitch.EthHeaderLen:])
	if !ip.IsValid(len(ip)) {
		return nil, fmt.Errorf("invalid IPv6 header")
	}
	udp := header.UDP(ip.Payload())
	if int(udp.Length()) != len(udp) || !udp.IsChecksumValid(ip.SourceAddress(), ip.DestinationAddress(), checksum.Checksum(udp.Payload(), 0)) {
		return nil, fmt.Errorf("UDP length %d of %d or checksum wrong", udp.Length(), len(udp))
	}
	m, err := dhcpv6.FromBytes(udp.Payload())
	if err != nil {
		return nil, err
	}
	msg, ok := m.(*dhcpv6.Message)
	if !ok {
		return nil, fmt.Errorf("a %T, not a server message", m)
	}
	return msg, nil
}
