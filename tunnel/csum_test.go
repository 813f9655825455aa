package tunnel

import (
	"bytes"
	"encoding/binary"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// refSegment is the reference for parseL4, written with gVisor's header
// views: the transport segment of an untagged, unfragmented IPv4 or IPv6
// frame b carrying TCP or UDP, where it and its checksum field start in
// b, and its pseudo-header sum.
func refSegment(b []byte) (seg []byte, start, field int, pseudo uint16, v4, ok bool) {
	if len(b) < header.EthernetMinimumSize {
		return nil, 0, 0, 0, false, false
	}
	ip := b[header.EthernetMinimumSize:]
	var src, dst tcpip.Address
	var proto tcpip.TransportProtocolNumber
	switch header.Ethernet(b).Type() {
	case header.IPv4ProtocolNumber:
		h := header.IPv4(ip)
		if !h.IsValid(len(ip)) || h.FragmentOffset() != 0 || h.More() {
			return nil, 0, 0, 0, false, false
		}
		seg, src, dst, proto, v4 = h.Payload(), h.SourceAddress(), h.DestinationAddress(), h.TransportProtocol(), true
	case header.IPv6ProtocolNumber:
		h := header.IPv6(ip)
		if !h.IsValid(len(ip)) {
			return nil, 0, 0, 0, false, false
		}
		seg, src, dst, proto = h.Payload(), h.SourceAddress(), h.DestinationAddress(), tcpip.TransportProtocolNumber(h.NextHeader())
	default:
		return nil, 0, 0, 0, false, false
	}
	start = cap(b) - cap(seg) // seg is a view of b
	switch proto {
	case header.TCPProtocolNumber:
		if len(seg) < header.TCPMinimumSize {
			return nil, 0, 0, 0, false, false
		}
		field = start + header.TCPChecksumOffset
	case header.UDPProtocolNumber:
		if len(seg) < header.UDPMinimumSize {
			return nil, 0, 0, 0, false, false
		}
		field = start + 6
	default:
		return nil, 0, 0, 0, false, false
	}
	return seg, start, field, header.PseudoHeaderChecksum(proto, src, dst, uint16(len(seg))), v4, true
}

// FuzzCheckTransport compares parseL4 and checkTransport with the
// reference. The fuzzer's frame is taken as it is (mode 0), given a right
// checksum first (1), or given a partial one, the pseudo-header sum, as a
// Linux vxlan device on a veth sends it (2).
func FuzzCheckTransport(f *testing.F) {
	seg := tcpSegment(1000, 7, 100, 0x18)
	udp4 := bytes.Clone(seg)
	udp4[14+9] = 17
	binary.BigEndian.PutUint16(udp4[34+4:], uint16(len(udp4)-34))
	v6 := make([]byte, 14+40+8+30)
	copy(v6, []byte{0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x86, 0xdd, 0x60, 0, 0, 0, 0, 38, 17, 64})
	v6[14+8], v6[14+8+15], v6[14+24], v6[14+24+15] = 0xfd, 1, 0xfd, 2
	for _, b := range [][]byte{seg, udp4, v6, append(bytes.Clone(seg), 0, 0, 0, 0)} {
		for mode := range uint8(3) {
			f.Add(b, mode)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte, mode uint8) {
		rseg, start, field, pseudo, v4, rok := refSegment(b)
		in, ok := parseL4(b)
		if ok != rok {
			t.Fatalf("parseL4 ok %v, reference %v", ok, rok)
		}
		if !ok {
			return
		}
		if in.l4 != start || in.end != start+len(rseg) || in.csumField() != field {
			t.Fatalf("parseL4: transport %d–%d, field %d; reference %d–%d, field %d",
				in.l4, in.end, in.csumField(), start, start+len(rseg), field)
		}
		if got := in.pseudoSum(b, len(rseg)); got != pseudo {
			t.Fatalf("pseudo-header sum %#04x, reference %#04x", got, pseudo)
		}
		switch mode % 3 {
		case 1:
			b[field], b[field+1] = 0, 0
			binary.BigEndian.PutUint16(b[field:], ^checksum.Checksum(rseg, pseudo))
		case 2:
			binary.BigEndian.PutUint16(b[field:], pseudo)
		}
		checkCheckTransport(t, b, in, field, pseudo, v4)
	})
}

// checkCheckTransport runs checkTransport on b, whose transport checksum
// field is at field and pseudo-header sum is pseudo, and compares the
// outcome with the reference: valid if the checksum is right, absent
// (IPv4 UDP) or partial; completed, and then right, only if partial.
func checkCheckTransport(t *testing.T, b []byte, in l4Info, field int, pseudo uint16, v4 bool) {
	t.Helper()
	seg, before := b[in.l4:in.end], bytes.Clone(b)
	got := binary.BigEndian.Uint16(b[field:])
	udp := in.proto == header.UDPProtocolNumber
	none := udp && v4 && got == 0
	right := checksum.Checksum(seg, pseudo) == 0xffff
	wantValid, wantCompleted := none || right || got == pseudo, !none && !right && got == pseudo
	valid, completed := checkTransport(b, in)
	if valid != wantValid || completed != wantCompleted {
		t.Fatalf("checkTransport = valid %v, completed %v; reference %v, %v", valid, completed, wantValid, wantCompleted)
	}
	if !completed {
		if !bytes.Equal(b, before) {
			t.Fatal("checkTransport changed a frame it did not complete")
		}
		return
	}
	if checksum.Checksum(seg, pseudo) != 0xffff || udp && binary.BigEndian.Uint16(b[field:]) == 0 {
		t.Fatalf("completed checksum %#04x does not verify", binary.BigEndian.Uint16(b[field:]))
	}
	if !bytes.Equal(b[:field], before[:field]) || !bytes.Equal(b[field+2:], before[field+2:]) {
		t.Fatal("completing changed more than the checksum field")
	}
}
