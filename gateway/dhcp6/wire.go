package dhcp6

import (
	"cmp"
	"net/netip"
	"slices"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	vswitch "github.com/switchyard-net/switchyard/switch"
)

// UDP ports of DHCPv6 (RFC 8415, section 7.2).
const (
	ClientPort = 546
	ServerPort = 547
)

const (
	ethLen = vswitch.EthHeaderLen
	// headersLen is what a frame carries before its DHCPv6 message.
	headersLen = ethLen + header.IPv6MinimumSize + header.UDPMinimumSize
	// replyBufSize is the capacity of the pooled reply buffers: enough
	// for any reply to a message within the parser's limits.
	replyBufSize = 1024
)

// AllServers is All_DHCP_Relay_Agents_and_Servers, ff02::1:2, where
// clients send, and its Ethernet group.
var (
	AllServers    = netip.AddrFrom16([16]byte{0xff, 0x02, 13: 0x01, 15: 0x02})
	AllServersMAC = vswitch.MAC{0x33, 0x33, 0, 0x01, 0, 0x02}
	allServers16  = AllServers.As16()
)

// HandleFrame looks at one frame written to the gateway port and reports
// whether it was a DHCPv6 client message for this link's servers (IPv6
// UDP to port 547 at ff02::1:2, without extension headers), which it then
// consumes: it answers through Config.Send, or drops and counts it. Every
// other frame is left alone (false) at the cost of a few header reads and
// no allocation.
//
// The caller owns f.Data; HandleFrame does not keep it. It is safe to call
// from several goroutines at once.
func (s *Server) HandleFrame(f vswitch.Frame) bool {
	b := f.Data
	if len(b) < headersLen || b[12] != 0x86 || b[13] != 0xdd {
		return false
	}
	if dst := f.Dst(); dst != AllServersMAC && dst != s.cfg.ServerMAC {
		return false
	}
	ip := header.IPv6(b[ethLen:])
	if ip[0]>>4 != 6 || ip.NextHeader() != uint8(header.UDPProtocolNumber) ||
		header.UDP(ip[header.IPv6MinimumSize:]).DestinationPort() != ServerPort || [16]byte(ip[24:40]) != allServers16 {
		return false
	}
	// A message to the link's servers from here on: consumed, whatever
	// it holds.
	msg, ok := checkDatagram(f, ip)
	src := f.Src()
	srcIP := [16]byte(ip[8:24])
	if !ok || src.IsMulticast() || src.IsZero() || !netip.AddrFrom16(srcIP).IsLinkLocalUnicast() {
		s.stats.malformed.Add(1)
		return true
	}
	s.handle(src, srcIP, msg)
	return true
}

// checkDatagram validates the IPv6 and UDP lengths and the UDP checksum of
// the datagram ip that frame f carries, and returns its UDP payload. The
// checksum is verified unless the frame's offload metadata says it is
// partial or was verified by the sender's device.
//
// A frame from a VM's TAP carries no offload metadata (tap.VMPort reads
// the host side of the TAP with AF_PACKET), yet a guest kernel that
// offloads checksums sends its UDP socket's datagrams (DHCPv6 clients use
// one) with only the pseudo-header sum in the checksum field, as
// CHECKSUM_PARTIAL leaves it. That form is accepted too: the checksum
// guards against corruption, which a frame copied in memory does not
// meet, not against a sender, who can always compute a valid one.
func checkDatagram(f vswitch.Frame, ip header.IPv6) ([]byte, bool) {
	if f.Offload.IsGSO() {
		return nil, false
	}
	plen := int(ip.PayloadLength())
	if plen < header.UDPMinimumSize || plen > len(ip)-header.IPv6MinimumSize {
		return nil, false
	}
	udp := header.UDP(ip[header.IPv6MinimumSize : header.IPv6MinimumSize+plen])
	ulen := int(udp.Length())
	if ulen < header.UDPMinimumSize || ulen > len(udp) {
		return nil, false
	}
	udp = udp[:ulen]
	if f.Offload.NeedsCsum() || f.Offload.Flags&vswitch.OffloadDataValid != 0 {
		return udp.Payload(), true
	}
	if udp.Checksum() == 0 { // mandatory over IPv6 (RFC 8200, section 8.1)
		return nil, false
	}
	src := tcpip.AddrFrom16([16]byte(ip[8:24]))
	dst := tcpip.AddrFrom16([16]byte(ip[24:40]))
	if udp.IsChecksumValid(src, dst, checksum.Checksum(udp.Payload(), 0)) ||
		udp.Checksum() == header.PseudoHeaderChecksum(header.UDPProtocolNumber, src, dst, uint16(ulen)) {
		return udp.Payload(), true
	}
	return nil, false
}

// send puts a reply carrying the DHCPv6 message msg on the switch, from
// the gateway's link-local address to the client's, UDP 547 → 546.
func (s *Server) send(dstMAC vswitch.MAC, dstIP [16]byte, msg []byte) {
	n := headersLen + len(msg)
	if n-ethLen > s.cfg.MTU {
		s.stats.sendFailures.Add(1)
		return
	}
	bp := s.bufs.Get().(*[]byte)
	buf := slices.Grow((*bp)[:0], n)[:n]
	writeReply(buf, dstMAC, s.cfg.ServerMAC, dstIP, s.linkLocal, msg)
	ok := s.cfg.Send(buf)
	*bp = buf[:0]
	s.bufs.Put(bp)
	if !ok {
		s.stats.sendFailures.Add(1)
		return
	}
	if msg[0] == MsgAdvertise {
		s.stats.advertises.Add(1)
	} else {
		s.stats.replies.Add(1)
	}
}

// writeReply writes into out, exactly headersLen+len(msg) long, an
// Ethernet frame carrying msg in UDP from src:547 to dst:546, with a
// complete UDP checksum.
func writeReply(out []byte, dstMAC, srcMAC vswitch.MAC, dst, src [16]byte, msg []byte) {
	header.Ethernet(out).Encode(&header.EthernetFields{
		SrcAddr: tcpip.LinkAddress(srcMAC[:]), DstAddr: tcpip.LinkAddress(dstMAC[:]), Type: header.IPv6ProtocolNumber,
	})
	srcA, dstA := tcpip.AddrFrom16(src), tcpip.AddrFrom16(dst)
	ulen := uint16(header.UDPMinimumSize + len(msg))
	ip := header.IPv6(out[ethLen:])
	ip.Encode(&header.IPv6Fields{
		PayloadLength:     ulen,
		TransportProtocol: header.UDPProtocolNumber,
		HopLimit:          255,
		SrcAddr:           srcA,
		DstAddr:           dstA,
	})
	udp := header.UDP(ip[header.IPv6MinimumSize:])
	udp.Encode(&header.UDPFields{SrcPort: ServerPort, DstPort: ClientPort, Length: ulen})
	copy(udp[header.UDPMinimumSize:], msg)
	xsum := header.PseudoHeaderChecksum(header.UDPProtocolNumber, srcA, dstA, ulen)
	xsum = checksum.Checksum(msg, xsum)
	sum := ^udp.CalculateChecksum(xsum)
	if sum == 0 {
		sum = 0xffff
	}
	udp.SetChecksum(sum)
}

// sortLeases orders leases by address.
func sortLeases(ls []Lease) {
	slices.SortFunc(ls, func(a, b Lease) int {
		return cmp.Or(a.Addr.Compare(b.Addr), cmp.Compare(a.MAC.String(), b.MAC.String()))
	})
}
