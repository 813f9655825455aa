package dhcp

import (
	"slices"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	vswitch "github.com/switchyard-net/switchyard/switch"
)

// UDP ports of DHCP (RFC 2131, section 4.1).
const (
	ServerPort = 67
	ClientPort = 68
)

const (
	ethLen = vswitch.EthHeaderLen
	// headersLen is what a reply carries before its DHCP message.
	headersLen = ethLen + header.IPv4MinimumSize + header.UDPMinimumSize
	// replyBufSize is the capacity of the pooled reply buffers: enough
	// for any reply this server builds with ordinary options.
	replyBufSize = 1024
)

var limitedBroadcast = [4]byte{255, 255, 255, 255}

// HandleFrame looks at one frame written to the gateway port and reports
// whether it was a DHCP client message for this server (UDP to port 67,
// sent to the limited or the subnet's broadcast address or to the router,
// at the broadcast MAC or the gateway's), which it then consumes: it
// answers it through Config.Send, or drops and counts it. Every other
// frame is left alone (false) at the cost of a few header reads and no
// allocation.
//
// The caller owns f.Data; HandleFrame does not keep it. It is safe to call
// from several goroutines at once.
func (s *Server) HandleFrame(f vswitch.Frame) bool {
	b := f.Data
	if len(b) < headersLen || b[12] != 0x08 || b[13] != 0x00 {
		return false
	}
	if dst := f.Dst(); dst != vswitch.Broadcast && dst != s.cfg.ServerMAC {
		return false
	}
	ip := header.IPv4(b[ethLen:])
	ihl := int(ip[0]&0x0f) * 4
	if ip[0]>>4 != 4 || ihl < header.IPv4MinimumSize || len(ip) < ihl+header.UDPMinimumSize ||
		ip.Protocol() != uint8(header.UDPProtocolNumber) || ip.FragmentOffset() != 0 {
		return false
	}
	if header.UDP(ip[ihl:]).DestinationPort() != ServerPort {
		return false
	}
	if d := [4]byte(ip[16:20]); d != limitedBroadcast && d != s.router && d != s.bcast {
		return false
	}
	// A message to this server from here on: consumed, whatever it holds.
	msg, ok := checkDatagram(f, ip, ihl)
	if !ok {
		s.stats.malformed.Add(1)
		return true
	}
	s.handle(f.Src(), [4]byte(ip[12:16]), msg)
	return true
}

// checkDatagram validates the IPv4 and UDP headers of the datagram ip
// (header length ihl) that frame f carries, and returns its UDP payload.
// Checksums are verified unless the frame's offload metadata says the
// transport checksum is partial or was verified by the sender's device.
func checkDatagram(f vswitch.Frame, ip header.IPv4, ihl int) ([]byte, bool) {
	if ip.More() || f.Offload.IsGSO() {
		return nil, false // a fragment, or a superframe: not a DHCP message
	}
	tlen := int(ip.TotalLength())
	if tlen < ihl+header.UDPMinimumSize || tlen > len(ip) || !ip.IsChecksumValid() {
		return nil, false
	}
	ip = ip[:tlen] // drop Ethernet padding
	udp := header.UDP(ip[ihl:])
	ulen := int(udp.Length())
	if ulen < header.UDPMinimumSize || ulen > len(udp) {
		return nil, false
	}
	udp = udp[:ulen]
	trusted := f.Offload.NeedsCsum() || f.Offload.Flags&vswitch.OffloadDataValid != 0
	if !trusted && udp.Checksum() != 0 {
		src := tcpip.AddrFrom4([4]byte(ip[12:16]))
		dst := tcpip.AddrFrom4([4]byte(ip[16:20]))
		if !udp.IsChecksumValid(src, dst, checksum.Checksum(udp.Payload(), 0)) {
			return nil, false
		}
	}
	return udp.Payload(), true
}

// sendFrame puts a reply carrying the DHCP message msg on the switch, from
// the gateway to dstMAC and dstIP, UDP 67 → 68. It reports whether Send
// took it.
func (s *Server) sendFrame(dstMAC vswitch.MAC, dstIP [4]byte, msg []byte) bool {
	n := headersLen + len(msg)
	if n-ethLen > s.cfg.MTU {
		return false
	}
	bp := s.bufs.Get().(*[]byte)
	buf := slices.Grow((*bp)[:0], n)[:n]
	writeReply(buf, dstMAC, s.cfg.ServerMAC, dstIP, s.router, msg)
	ok := s.cfg.Send(buf)
	*bp = buf[:0]
	s.bufs.Put(bp)
	return ok
}

// writeReply writes into out, exactly headersLen+len(msg) long, an
// Ethernet frame carrying msg in UDP from src:67 to dst:68, with complete
// IPv4 and UDP checksums.
func writeReply(out []byte, dstMAC, srcMAC vswitch.MAC, dst, src [4]byte, msg []byte) {
	header.Ethernet(out).Encode(&header.EthernetFields{
		SrcAddr: tcpip.LinkAddress(srcMAC[:]), DstAddr: tcpip.LinkAddress(dstMAC[:]), Type: header.IPv4ProtocolNumber,
	})
	srcA, dstA := tcpip.AddrFrom4(src), tcpip.AddrFrom4(dst)
	ulen := uint16(header.UDPMinimumSize + len(msg))
	ip := header.IPv4(out[ethLen:])
	ip.Encode(&header.IPv4Fields{
		TotalLength: header.IPv4MinimumSize + ulen,
		TTL:         64,
		Protocol:    uint8(header.UDPProtocolNumber),
		SrcAddr:     srcA,
		DstAddr:     dstA,
	})
	ip.SetChecksum(^ip.CalculateChecksum())
	udp := header.UDP(ip[header.IPv4MinimumSize:])
	udp.Encode(&header.UDPFields{SrcPort: ServerPort, DstPort: ClientPort, Length: ulen})
	copy(udp[header.UDPMinimumSize:], msg)
	xsum := header.PseudoHeaderChecksum(header.UDPProtocolNumber, srcA, dstA, ulen)
	xsum = checksum.Checksum(msg, xsum)
	sum := ^udp.CalculateChecksum(xsum)
	if sum == 0 {
		sum = 0xffff // zero means "no checksum" in UDP over IPv4
	}
	udp.SetChecksum(sum)
}
