package vswitch_test

import (
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	vswitch "github.com/switchyard-net/switchyard/switch"
)

// Frame builders for the port-security tests. Checksums are left zero: the
// switch does not verify them.

func ethHeader(dst, src vswitch.MAC, typ tcpip.NetworkProtocolNumber, payload int) []byte {
	b := make([]byte, header.EthernetMinimumSize+payload)
	header.Ethernet(b).Encode(&header.EthernetFields{
		SrcAddr: tcpip.LinkAddress(src[:]), DstAddr: tcpip.LinkAddress(dst[:]), Type: typ,
	})
	return b
}

// udp4 builds an IPv4/UDP frame.
func udp4(dst, src vswitch.MAC, srcIP, dstIP netip.Addr, sport, dport uint16) []byte {
	const n = header.IPv4MinimumSize + header.UDPMinimumSize + 4
	b := ethHeader(dst, src, header.IPv4ProtocolNumber, n)
	ip := header.IPv4(b[header.EthernetMinimumSize:])
	ip.Encode(&header.IPv4Fields{
		TotalLength: n, TTL: 64, Protocol: uint8(header.UDPProtocolNumber),
		SrcAddr: tcpip.AddrFrom4(srcIP.As4()), DstAddr: tcpip.AddrFrom4(dstIP.As4()),
	})
	header.UDP(ip[header.IPv4MinimumSize:]).Encode(&header.UDPFields{
		SrcPort: sport, DstPort: dport, Length: header.UDPMinimumSize + 4,
	})
	return b
}

// arp builds an ARP frame; op is header.ARPRequest or header.ARPReply.
func arp(src vswitch.MAC, op header.ARPOp, senderMAC vswitch.MAC, senderIP, targetIP netip.Addr) []byte {
	b := ethHeader(vswitch.Broadcast, src, header.ARPProtocolNumber, header.ARPSize)
	a := header.ARP(b[header.EthernetMinimumSize:])
	a.SetIPv4OverEthernet()
	a.SetOp(op)
	copy(a.HardwareAddressSender(), senderMAC[:])
	s, t := senderIP.As4(), targetIP.As4()
	copy(a.ProtocolAddressSender(), s[:])
	copy(a.ProtocolAddressTarget(), t[:])
	return b
}

// icmp6 builds an IPv6 frame carrying an ICMPv6 message of type typ whose
// body (after the 4-byte ICMPv6 header) is body. ext, if not nil, is put
// between the IPv6 header and the ICMPv6 message as a hop-by-hop header.
func icmp6(dst, src vswitch.MAC, srcIP, dstIP netip.Addr, typ header.ICMPv6Type, body []byte, hopByHop bool) []byte {
	n := header.ICMPv6HeaderSize + len(body)
	ext := 0
	if hopByHop {
		ext = 8
	}
	b := ethHeader(dst, src, header.IPv6ProtocolNumber, header.IPv6MinimumSize+ext+n)
	ip := header.IPv6(b[header.EthernetMinimumSize:])
	ip.Encode(&header.IPv6Fields{
		PayloadLength: uint16(ext + n), TransportProtocol: header.ICMPv6ProtocolNumber, HopLimit: 255,
		SrcAddr: tcpip.AddrFrom16(srcIP.As16()), DstAddr: tcpip.AddrFrom16(dstIP.As16()),
	})
	rest := ip[header.IPv6MinimumSize:]
	if hopByHop {
		ip[6] = uint8(header.IPv6HopByHopOptionsExtHdrIdentifier)
		rest[0] = uint8(header.ICMPv6ProtocolNumber)
		rest[1] = 0             // 8 bytes
		rest[2], rest[3] = 1, 4 // PadN over the remaining 6 bytes
		rest = rest[8:]
	}
	icmp := header.ICMPv6(rest)
	icmp.SetType(typ)
	copy(icmp.MessageBody(), body)
	return b
}

// ndBody builds a neighbour solicitation or advertisement body: flags and
// reserved, the target, and one link-layer address option of type opt
// (1 source, 2 target) unless opt is 0.
func ndBody(target netip.Addr, opt byte, ll vswitch.MAC) []byte {
	b := make([]byte, 4, 4+16+8)
	t := target.As16()
	b = append(b, t[:]...)
	if opt != 0 {
		b = append(b, opt, 1)
		b = append(b, ll[:]...)
	}
	return b
}

func solicitedNode(a netip.Addr) netip.Addr {
	s := a.As16()
	return netip.AddrFrom16([16]byte{0xff, 0x02, 10: 0, 11: 1, 12: 0xff, 13: s[13], 14: s[14], 15: s[15]})
}

// eui64 is the link-local address the kernel forms from mac.
func eui64(m vswitch.MAC) netip.Addr {
	return netip.AddrFrom16([16]byte{0xfe, 0x80, 8: m[0] ^ 2, 9: m[1], 10: m[2], 11: 0xff, 12: 0xfe, 13: m[3], 14: m[4], 15: m[5]})
}

// vlanTagged builds an 802.1Q-tagged IPv4 frame.
func vlanTagged(dst, src vswitch.MAC) []byte {
	inner := udp4(dst, src, netip.MustParseAddr("10.0.0.66"), netip.MustParseAddr("10.0.0.1"), 1, 2)
	b := make([]byte, 0, len(inner)+4)
	b = append(b, inner[:12]...)
	b = append(b, 0x81, 0x00, 0x00, 0x05)
	return append(b, inner[12:]...)
}
