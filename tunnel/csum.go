package tunnel

import (
	"encoding/binary"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/switchyard-net/switchyard/internal/csum"
	vswitch "github.com/switchyard-net/switchyard/switch"
)

// Transport checksums of inner frames.
//
// Sending: a frame the switch hands over with a partial checksum (a TAP
// with checksum offload left it to the "hardware") is completed in the
// port's copy, because the far end may be a Linux vxlan device, which
// checks inner checksums like any receiver.
//
// Receiving, in plain mode: a Linux vxlan device whose underlay is a veth
// (a host that is itself a container or a VM-less test namespace) sends
// inner TCP and UDP checksums partial, holding only the pseudo-header sum:
// the kernel meant to finish them in "hardware", and a veth never does.
// The kernel's own receivers accept such packets from the metadata that
// travels with them; a UDP socket gets the bytes only. So the port
// verifies each TCP and UDP checksum it receives (it must anyway, before
// merging segments, as GRO does), and completes one that fails only if it
// holds exactly the pseudo-header sum, the signature of a partial checksum
// (ChecksumsCompleted counts them). Any other bad checksum is passed on
// for the receiver to drop, as a NIC would. Secure mode skips all this:
// the AEAD already proved the frame is what a Switchyard sender, which
// always completes checksums, sealed.

// l4Info locates the transport header of an untagged IPv4 or IPv6 frame.
type l4Info struct {
	l3, l4 int  // offsets of the IP and transport headers
	end    int  // end of the IP packet (frames may carry Ethernet padding)
	v6     bool // IPv6
	proto  tcpip.TransportProtocolNumber
}

// parseL4 returns where the TCP or UDP header of frame b is. It reports
// false for anything else: other EtherTypes, VLAN-tagged frames,
// fragments, IPv6 extension headers, inconsistent lengths. IPv4 options
// are allowed.
func parseL4(b []byte) (l4Info, bool) {
	const l3 = header.EthernetMinimumSize
	if len(b) < l3+header.IPv4MinimumSize {
		return l4Info{}, false
	}
	in := l4Info{l3: l3}
	switch ip := b[l3:]; header.Ethernet(b).Type() {
	case header.IPv4ProtocolNumber:
		h := header.IPv4(ip)
		if !h.IsValid(len(h)) || h.FragmentOffset() != 0 || h.More() {
			return l4Info{}, false
		}
		in.proto, in.l4, in.end = tcpip.TransportProtocolNumber(h.Protocol()), l3+int(h.HeaderLength()), l3+int(h.TotalLength())
	case header.IPv6ProtocolNumber:
		h := header.IPv6(ip)
		if !h.IsValid(len(h)) {
			return l4Info{}, false
		}
		in.v6, in.proto = true, tcpip.TransportProtocolNumber(h.NextHeader())
		in.l4, in.end = l3+header.IPv6MinimumSize, l3+header.IPv6MinimumSize+int(h.PayloadLength())
	default:
		return l4Info{}, false
	}
	switch in.proto {
	case header.TCPProtocolNumber:
		return in, in.end-in.l4 >= header.TCPMinimumSize
	case header.UDPProtocolNumber:
		return in, in.end-in.l4 >= header.UDPMinimumSize
	}
	return l4Info{}, false
}

// csumField returns the offset of the transport checksum.
func (in l4Info) csumField() int {
	if in.proto == header.TCPProtocolNumber {
		return in.l4 + header.TCPChecksumOffset
	}
	return in.l4 + udpChecksumOffset
}

// udpChecksumOffset is where the UDP checksum is; gVisor does not export it.
const udpChecksumOffset = 6

// pseudoSum is the one's-complement sum of the pseudo-header of a
// transport segment of length n in frame b.
func (in l4Info) pseudoSum(b []byte, n int) uint16 {
	return csum.Pseudo(b[in.l3:], in.v6, in.proto, n)
}

// checkTransport verifies the TCP or UDP checksum of frame b, completing
// it if it is partial (see above). It reports whether the checksum is
// now valid and whether it completed it.
func checkTransport(b []byte, in l4Info) (valid, completed bool) {
	seg := b[in.l4:in.end]
	field := in.csumField()
	got := binary.BigEndian.Uint16(b[field:])
	udp := in.proto == header.UDPProtocolNumber
	if udp && got == 0 && !in.v6 {
		return true, false // IPv4 UDP without a checksum
	}
	pseudo := in.pseudoSum(b, len(seg))
	if checksum.Checksum(seg, pseudo) == 0xffff {
		return true, false
	}
	if got != pseudo {
		return false, false
	}
	b[field], b[field+1] = 0, 0
	binary.BigEndian.PutUint16(b[field:], csum.Field(checksum.Checksum(seg, pseudo), udp))
	return true, true
}

// completeChecksum finishes the partial checksum described by o in frame
// b (a copy the port owns), as the switch does for ports without checksum
// offload. It reports false if the offsets point outside the frame.
func completeChecksum(b []byte, o vswitch.Offload) bool {
	return csum.Complete(b, int(o.CsumStart), int(o.CsumStart)+int(o.CsumOffset), vswitch.EthHeaderLen)
}
