package soak_test

import (
	"encoding/binary"
	"math/rand/v2"
	"net"
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// The attacker's frames, written into a caller's buffer with gVisor's
// header views; each builder returns the frame's length. Frames shorter
// than Ethernet's minimum are padded with zeros (the buffers start zeroed
// and are reused only for frames of the same kind and length).

const minFrame = 60 // Ethernet's minimum frame, without the FCS

// etherTypeExperimental is IEEE's local experimental EtherType: the
// MAC flood's frames mean nothing to any receiver.
const etherTypeExperimental = 0x88b5

func linkAddr(mac net.HardwareAddr) tcpip.LinkAddress { return tcpip.LinkAddress(mac) }

func addr4(a netip.Addr) tcpip.Address { return tcpip.AddrFrom4(a.As4()) }

// randomMAC writes a random locally administered unicast address into b.
func randomMAC(r *rand.Rand, b []byte) {
	binary.BigEndian.PutUint32(b, r.Uint32())
	binary.BigEndian.PutUint16(b[4:], uint16(r.Uint32()))
	b[0] = b[0]&^1 | 2
}

// floodFrame fills buf with a frame from a random source MAC to a random
// unicast MAC (unknown to the switch, so flooded).
func floodFrame(r *rand.Rand, buf []byte) int {
	randomMAC(r, buf[0:6])
	randomMAC(r, buf[6:12])
	binary.BigEndian.PutUint16(buf[12:], etherTypeExperimental)
	return minFrame
}

// arpFrame fills buf with an ARP packet from src (Ethernet source) to dst.
func arpFrame(buf []byte, op header.ARPOp, src, dst, sha net.HardwareAddr, spa netip.Addr, tha net.HardwareAddr, tpa netip.Addr) int {
	header.Ethernet(buf).Encode(&header.EthernetFields{SrcAddr: linkAddr(src), DstAddr: linkAddr(dst), Type: header.ARPProtocolNumber})
	a := header.ARP(buf[header.EthernetMinimumSize:])
	a.SetIPv4OverEthernet()
	a.SetOp(op)
	copy(a.HardwareAddressSender(), sha)
	s, t := spa.As4(), tpa.As4()
	copy(a.ProtocolAddressSender(), s[:])
	copy(a.HardwareAddressTarget(), tha)
	copy(a.ProtocolAddressTarget(), t[:])
	return minFrame
}

// udp4Frame fills buf with a UDP datagram of payload bytes (zeros) from
// srcIP:sport to dstIP:dport, in a frame from srcMAC to dstMAC. The UDP
// checksum is left zero, which IPv4 allows.
func udp4Frame(buf []byte, srcMAC, dstMAC net.HardwareAddr, srcIP, dstIP netip.Addr, sport, dport uint16, payload int) int {
	header.Ethernet(buf).Encode(&header.EthernetFields{SrcAddr: linkAddr(srcMAC), DstAddr: linkAddr(dstMAC), Type: header.IPv4ProtocolNumber})
	total := header.IPv4MinimumSize + header.UDPMinimumSize + payload
	ip := header.IPv4(buf[header.EthernetMinimumSize:])
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(total), TTL: 64, Protocol: uint8(header.UDPProtocolNumber),
		SrcAddr: addr4(srcIP), DstAddr: addr4(dstIP)})
	ip.SetChecksum(^ip.CalculateChecksum())
	udp := header.UDP(ip[header.IPv4MinimumSize:])
	udp.Encode(&header.UDPFields{SrcPort: sport, DstPort: dport, Length: uint16(header.UDPMinimumSize + payload)})
	return max(minFrame, header.EthernetMinimumSize+total)
}

// icmp6Frame fills buf with an ICMPv6 message to all nodes from the
// attacker's link-local address: body writes the message after the
// ICMPv6 header and returns its length.
func icmp6Frame(buf []byte, src net.HardwareAddr, typ header.ICMPv6Type, body func([]byte) int) int {
	dst := header.IPv6AllNodesMulticastAddress
	header.Ethernet(buf).Encode(&header.EthernetFields{SrcAddr: linkAddr(src),
		DstAddr: header.EthernetAddressFromMulticastIPv6Address(dst), Type: header.IPv6ProtocolNumber})
	ip := header.IPv6(buf[header.EthernetMinimumSize:])
	icmp := header.ICMPv6(ip[header.IPv6MinimumSize:])
	n := header.ICMPv6HeaderSize + body(icmp[header.ICMPv6HeaderSize:])
	icmp = icmp[:n]
	srcIP := header.LinkLocalAddr(linkAddr(src))
	ip.Encode(&header.IPv6Fields{PayloadLength: uint16(n), TransportProtocol: header.ICMPv6ProtocolNumber, HopLimit: 255,
		SrcAddr: srcIP, DstAddr: dst})
	icmp.SetType(typ)
	icmp.SetCode(0)
	icmp.SetChecksum(0)
	icmp.SetChecksum(header.ICMPv6Checksum(header.ICMPv6ChecksumParams{Header: icmp, Src: srcIP, Dst: dst}))
	return max(minFrame, header.EthernetMinimumSize+header.IPv6MinimumSize+n)
}

// naFrame is an unsolicited, overriding neighbour advertisement that
// claims target for mac.
func naFrame(buf []byte, mac net.HardwareAddr, target tcpip.Address) int {
	return icmp6Frame(buf, mac, header.ICMPv6NeighborAdvert, func(b []byte) int {
		na := header.NDPNeighborAdvert(b)
		na.SetOverrideFlag(true)
		na.SetTargetAddress(target)
		opts := header.NDPOptionsSerializer{header.NDPTargetLinkLayerAddressOption(linkAddr(mac))}
		return header.NDPNAMinimumSize + header.NDPOptions(b[header.NDPNAMinimumSize:]).Serialize(opts)
	})
}

// raFrame is a router advertisement that offers mac as every node's
// default router for 30 minutes.
func raFrame(buf []byte, mac net.HardwareAddr) int {
	return icmp6Frame(buf, mac, header.ICMPv6RouterAdvert, func(b []byte) int {
		b[0] = 64                               // current hop limit
		binary.BigEndian.PutUint16(b[2:], 1800) // router lifetime, seconds
		opts := header.NDPOptionsSerializer{header.NDPSourceLinkLayerAddressOption(linkAddr(mac))}
		return header.NDPRAMinimumSize + header.NDPOptions(b[header.NDPRAMinimumSize:]).Serialize(opts)
	})
}
