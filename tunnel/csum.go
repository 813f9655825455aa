package tunnel

import (
	"encoding/binary"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"

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
	proto  uint8
}

// parseL4 returns where the TCP or UDP header of frame b is. It reports
// false for anything else: other EtherTypes, VLAN-tagged frames,
// fragments, IPv6 extension headers, inconsistent lengths. IPv4 options
// are allowed.
func parseL4(b []byte) (l4Info, bool) {
	const l3 = vswitch.EthHeaderLen
	if len(b) < l3+20 {
		return l4Info{}, false
	}
	var in l4Info
	in.l3 = l3
	switch binary.BigEndian.Uint16(b[12:14]) {
	case etherTypeIPv4:
		ip := b[l3:]
		ihl := int(ip[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(ip[2:4]))
		if ip[0]>>4 != 4 || ihl < ipv4MinLen || total < ihl || total > len(ip) ||
			binary.BigEndian.Uint16(ip[6:8])&ipv4FragMask != 0 {
			return l4Info{}, false
		}
		in.proto, in.l4, in.end = ip[9], l3+ihl, l3+total
	case etherTypeIPv6:
		if len(b) < l3+ipv6HeaderLen {
			return l4Info{}, false
		}
		ip := b[l3:]
		plen := int(binary.BigEndian.Uint16(ip[4:6]))
		if ip[0]>>4 != 6 || ipv6HeaderLen+plen > len(ip) {
			return l4Info{}, false
		}
		in.v6, in.proto, in.l4, in.end = true, ip[6], l3+ipv6HeaderLen, l3+ipv6HeaderLen+plen
	default:
		return l4Info{}, false
	}
	switch in.proto {
	case ipProtoTCP:
		if in.end-in.l4 < 20 {
			return l4Info{}, false
		}
	case ipProtoUDP:
		if in.end-in.l4 < 8 {
			return l4Info{}, false
		}
	default:
		return l4Info{}, false
	}
	return in, true
}

// csumField returns the offset of the transport checksum.
func (in l4Info) csumField() int {
	if in.proto == ipProtoTCP {
		return in.l4 + 16
	}
	return in.l4 + 6
}

// pseudoSum is the one's-complement sum of the pseudo-header of a
// transport segment of length n in frame b.
func (in l4Info) pseudoSum(b []byte, n int) uint16 {
	var sum uint16
	if in.v6 {
		sum = checksum.Checksum(b[in.l3+8:in.l3+40], 0)
	} else {
		sum = checksum.Checksum(b[in.l3+12:in.l3+20], 0)
	}
	var tail [4]byte
	binary.BigEndian.PutUint16(tail[0:], uint16(in.proto))
	binary.BigEndian.PutUint16(tail[2:], uint16(n))
	return checksum.Checksum(tail[:], sum)
}

// checkTransport verifies the TCP or UDP checksum of frame b, completing
// it if it is partial (see above). It reports whether the checksum is
// now valid and whether it completed it.
func checkTransport(b []byte, in l4Info) (valid, completed bool) {
	n := in.end - in.l4
	field := in.csumField()
	got := binary.BigEndian.Uint16(b[field:])
	if in.proto == ipProtoUDP && got == 0 && !in.v6 {
		return true, false // IPv4 UDP without a checksum
	}
	pseudo := in.pseudoSum(b, n)
	if checksum.Checksum(b[in.l4:in.end], pseudo) == 0xffff {
		return true, false
	}
	if got != pseudo {
		return false, false
	}
	b[field], b[field+1] = 0, 0
	sum := ^checksum.Checksum(b[in.l4:in.end], pseudo)
	if sum == 0 && in.proto == ipProtoUDP {
		sum = 0xffff
	}
	binary.BigEndian.PutUint16(b[field:], sum)
	return true, true
}

// completeChecksum finishes the partial checksum described by o in frame
// b (a copy the port owns), as the switch does for ports without checksum
// offload. It reports false if the offsets point outside the frame.
func completeChecksum(b []byte, o vswitch.Offload) bool {
	start, field := int(o.CsumStart), int(o.CsumStart)+int(o.CsumOffset)
	if start < vswitch.EthHeaderLen || field+2 > len(b) {
		return false
	}
	sum := ^checksum.Checksum(b[start:], 0)
	if sum == 0 {
		sum = 0xffff
	}
	binary.BigEndian.PutUint16(b[field:], sum)
	return true
}
