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

// ext6 is one IPv6 extension header for chain6: its protocol number and
// its whole bytes, whose first (next header) is filled in by chain6.
type ext6 struct {
	proto uint8
	b     []byte
}

// opts6 is a generic options header (hop-by-hop or destination options)
// of n 8-byte units, padded with PadN.
func opts6(proto uint8, n int) ext6 {
	b := make([]byte, n*8)
	b[1] = byte(n - 1)
	b[2], b[3] = 1, byte(len(b)-4)
	return ext6{proto, b}
}

// frag6 is a fragment header at offset (in 8-byte units) with the more
// fragments flag more.
func frag6(offset uint16, more bool) ext6 {
	b := make([]byte, 8)
	v := offset << 3
	if more {
		v |= 1
	}
	b[2], b[3] = byte(v>>8), byte(v)
	b[4], b[7] = 0x5a, 0x17 // identification
	return ext6{uint8(header.IPv6FragmentExtHdrIdentifier), b}
}

// ah6 is an authentication header (RFC 4302) with a 12-byte ICV.
func ah6() ext6 {
	b := make([]byte, 24)
	b[1] = byte(len(b)/4 - 2)
	return ext6{51, b}
}

// chain6 builds an IPv6 frame from src with the extension headers exts,
// then upper (an upper-layer message of protocol proto; nil for none). The
// payload length covers what is there.
func chain6(dst, src vswitch.MAC, srcIP, dstIP netip.Addr, exts []ext6, proto uint8, upper []byte) []byte {
	var pl []byte
	for i, e := range exts {
		next := proto
		if i+1 < len(exts) {
			next = exts[i+1].proto
		}
		h := append([]byte(nil), e.b...)
		h[0] = next
		pl = append(pl, h...)
	}
	pl = append(pl, upper...)
	b := ethHeader(dst, src, header.IPv6ProtocolNumber, header.IPv6MinimumSize+len(pl))
	ip := header.IPv6(b[header.EthernetMinimumSize:])
	first := tcpip.TransportProtocolNumber(proto)
	if len(exts) > 0 {
		first = tcpip.TransportProtocolNumber(exts[0].proto)
	}
	ip.Encode(&header.IPv6Fields{
		PayloadLength: uint16(len(pl)), TransportProtocol: first, HopLimit: 255,
		SrcAddr: tcpip.AddrFrom16(srcIP.As16()), DstAddr: tcpip.AddrFrom16(dstIP.As16()),
	})
	copy(ip[header.IPv6MinimumSize:], pl)
	return b
}

// icmp6Msg is an ICMPv6 message of type typ with body.
func icmp6Msg(typ header.ICMPv6Type, body []byte) []byte {
	b := make([]byte, header.ICMPv6HeaderSize+len(body))
	header.ICMPv6(b).SetType(typ)
	copy(b[header.ICMPv6HeaderSize:], body)
	return b
}

// tagged puts 802.1Q (or, with tpid 0x88a8, 802.1ad) tags with the given
// VLAN IDs after frame's MAC addresses.
func tagged(frame []byte, tpid uint16, vids ...uint16) []byte {
	b := append([]byte(nil), frame[:12]...)
	for _, v := range vids {
		b = append(b, byte(tpid>>8), byte(tpid), byte(v>>8), byte(v))
		tpid = 0x8100
	}
	return append(b, frame[12:]...)
}
