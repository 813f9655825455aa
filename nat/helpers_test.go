package nat

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// The test network: "web", 172.18.0.0/16 and fd00:18::/64, on a host whose
// own address is 192.168.1.10. Container a dials container b's published
// ports; b's published port 9090 leads back to a itself.
var (
	gw4   = netip.MustParseAddr("172.18.0.1")
	gw6   = netip.MustParseAddr("fd00:18::1")
	host4 = netip.MustParseAddr("192.168.1.10")
	host6 = netip.MustParseAddr("2001:db8::10")
	a4    = netip.MustParseAddr("172.18.0.2")
	b4    = netip.MustParseAddr("172.18.0.3")
	a6    = netip.MustParseAddr("fd00:18::2")
	b6    = netip.MustParseAddr("fd00:18::3")
)

func ap(a netip.Addr, port uint16) netip.AddrPort { return netip.AddrPortFrom(a, port) }

func testConfig() Config {
	return Config{
		Network:   "web",
		Subnet:    netip.MustParsePrefix("172.18.0.0/16"),
		Subnet6:   netip.MustParsePrefix("fd00:18::/64"),
		Gateway:   gw4,
		Gateway6:  gw6,
		HostAddrs: []netip.Addr{host4, host6},
	}
}

func testMappings() []PortMapping {
	return []PortMapping{
		{Proto: TCP, HostPort: 8080, Target: ap(b4, 80)},
		{Proto: UDP, HostPort: 5353, Target: ap(b4, 53)},
		{Proto: TCP, HostIP: gw4, HostPort: 9090, Target: ap(a4, 90)},
		{Proto: TCP, HostPort: 8080, Target: ap(b6, 80)},
		{Proto: UDP, HostPort: 5353, Target: ap(b6, 53)},
	}
}

func newTestTable(t testing.TB, cfg Config, ms []PortMapping) *Table {
	t.Helper()
	tb, err := NewTable(cfg)
	if err != nil {
		t.Fatalf("NewTable: %v", err)
	}
	if err := tb.SetMappings(ms); err != nil {
		t.Fatalf("SetMappings: %v", err)
	}
	return tb
}

func tcpAddr(a netip.Addr) tcpip.Address { return tcpip.AddrFromSlice(a.AsSlice()) }

// ipPacket wraps transport segment l4 (checksum not yet set) in an IP
// header from src to dst and returns the packet; fill sets the transport
// checksum once the addresses are known.
func ipPacket(src, dst netip.Addr, proto uint8, l4 []byte) []byte {
	if src.Is4() {
		b := make([]byte, header.IPv4MinimumSize+len(l4))
		ip := header.IPv4(b)
		ip.Encode(&header.IPv4Fields{
			TotalLength: uint16(len(b)), ID: 1, Flags: header.IPv4FlagDontFragment, TTL: 64,
			Protocol: proto, SrcAddr: tcpAddr(src), DstAddr: tcpAddr(dst),
		})
		ip.SetChecksum(^ip.CalculateChecksum())
		copy(b[header.IPv4MinimumSize:], l4)
		return b
	}
	b := make([]byte, header.IPv6MinimumSize+len(l4))
	header.IPv6(b).Encode(&header.IPv6Fields{
		PayloadLength: uint16(len(l4)), TransportProtocol: tcpip.TransportProtocolNumber(proto),
		HopLimit: 64, SrcAddr: tcpAddr(src), DstAddr: tcpAddr(dst),
	})
	copy(b[header.IPv6MinimumSize:], l4)
	return b
}

func ipHeaderLen(b []byte) int {
	if header.IPVersion(b) == 4 {
		return int(header.IPv4(b).HeaderLength())
	}
	return header.IPv6MinimumSize
}

func srcDst(b []byte) (netip.Addr, netip.Addr) {
	if header.IPVersion(b) == 4 {
		return netip.AddrFrom4([4]byte(b[12:16])), netip.AddrFrom4([4]byte(b[16:20]))
	}
	return netip.AddrFrom16([16]byte(b[8:24])), netip.AddrFrom16([16]byte(b[24:40]))
}

// tcpSeg builds a TCP packet with a valid checksum.
func tcpSeg(src, dst netip.AddrPort, flags header.TCPFlags, seq, ack uint32, payload []byte) []byte {
	l4 := make([]byte, header.TCPMinimumSize+len(payload))
	header.TCP(l4).Encode(&header.TCPFields{
		SrcPort: src.Port(), DstPort: dst.Port(), SeqNum: seq, AckNum: ack,
		DataOffset: header.TCPMinimumSize, Flags: flags, WindowSize: 65535,
	})
	copy(l4[header.TCPMinimumSize:], payload)
	b := ipPacket(src.Addr(), dst.Addr(), protoTCP, l4)
	tcp := header.TCP(b[ipHeaderLen(b):])
	xsum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, tcpAddr(src.Addr()), tcpAddr(dst.Addr()), uint16(len(tcp)))
	xsum = checksum.Checksum(payload, xsum)
	tcp.SetChecksum(^tcp.CalculateChecksum(xsum))
	return b
}

// udpDgram builds a UDP packet; noCsum leaves the checksum zero (IPv4).
func udpDgram(src, dst netip.AddrPort, payload []byte, noCsum bool) []byte {
	l4 := make([]byte, header.UDPMinimumSize+len(payload))
	header.UDP(l4).Encode(&header.UDPFields{SrcPort: src.Port(), DstPort: dst.Port(), Length: uint16(len(l4))})
	copy(l4[header.UDPMinimumSize:], payload)
	b := ipPacket(src.Addr(), dst.Addr(), protoUDP, l4)
	if !noCsum {
		udp := header.UDP(b[ipHeaderLen(b):])
		xsum := header.PseudoHeaderChecksum(header.UDPProtocolNumber, tcpAddr(src.Addr()), tcpAddr(dst.Addr()), uint16(len(udp)))
		xsum = checksum.Checksum(payload, xsum)
		udp.SetChecksum(nonZero(^udp.CalculateChecksum(xsum)))
	}
	return b
}

// icmpMsg builds an ICMP (v4 or v6, from the addresses) message of type
// typ with the 4 bytes rest (identifier and sequence, or unused/MTU) and
// body, with a valid checksum.
func icmpMsg(src, dst netip.Addr, typ, code uint8, rest uint32, body []byte) []byte {
	l4 := make([]byte, 8+len(body))
	l4[0], l4[1] = typ, code
	binary.BigEndian.PutUint32(l4[4:], rest)
	copy(l4[8:], body)
	proto := uint8(protoICMPv4)
	if src.Is6() {
		proto = protoICMPv6
	}
	b := ipPacket(src, dst, proto, l4)
	m := b[ipHeaderLen(b):]
	var xsum uint16
	if src.Is6() {
		xsum = header.PseudoHeaderChecksum(header.ICMPv6ProtocolNumber, tcpAddr(src), tcpAddr(dst), uint16(len(m)))
	}
	binary.BigEndian.PutUint16(m[2:], ^checksum.Checksum(m, xsum))
	return b
}

func echo(src, dst netip.Addr, request bool, id, seq uint16) []byte {
	typ := icmp4EchoReply
	switch {
	case src.Is6() && request:
		typ = icmp6EchoRequest
	case src.Is6():
		typ = icmp6EchoReply
	case request:
		typ = icmp4Echo
	}
	return icmpMsg(src, dst, typ, 0, uint32(id)<<16|uint32(seq), []byte("ping payload"))
}

// icmpError builds an ICMP error from src to dst quoting the first n bytes
// of pkt (all of it if n is larger).
func icmpError(src, dst netip.Addr, typ, code uint8, rest uint32, pkt []byte, n int) []byte {
	return icmpMsg(src, dst, typ, code, rest, pkt[:min(n, len(pkt))])
}

// flow is what the tests read back from a packet.
type flow struct {
	proto    uint8
	src, dst netip.AddrPort
}

// flowOf reads the tuple of a TCP, UDP or ICMP echo packet (the echo
// identifier as both ports).
func flowOf(t testing.TB, b []byte) flow {
	t.Helper()
	var p packet
	if !parse(b, &p) || p.kind != kindFlow {
		t.Fatalf("packet does not parse as a flow: % x", b)
	}
	if p.proto == protoICMPv4 || p.proto == protoICMPv6 {
		return flow{p.proto, ap(p.src, p.sport), ap(p.dst, p.sport)}
	}
	return flow{p.proto, ap(p.src, p.sport), ap(p.dst, p.dport)}
}

// checksumsValid reports which checksums of packet b fail: the IPv4
// header's and the transport's (a zero UDP checksum over IPv4 passes).
func checksumsValid(t testing.TB, b []byte) {
	t.Helper()
	if msg := checksumError(b); msg != "" {
		t.Errorf("%s: % x", msg, b)
	}
}

func checksumError(b []byte) string {
	var p packet
	if !parse(b, &p) {
		return "packet does not parse"
	}
	if !p.v6 && !header.IPv4(b).IsChecksumValid() {
		return "IPv4 header checksum invalid"
	}
	if p.kind == kindFragment {
		return ""
	}
	seg := b[p.l4:p.end]
	src, dst := tcpAddr(p.src), tcpAddr(p.dst)
	return l4ChecksumError(p.proto, seg, src, dst)
}

func l4ChecksumError(proto uint8, seg []byte, src, dst tcpip.Address) string {
	switch proto {
	case protoTCP:
		if len(seg) < header.TCPMinimumSize {
			return ""
		}
		tcp := header.TCP(seg)
		do := int(tcp.DataOffset())
		if do < header.TCPMinimumSize || do > len(seg) {
			return ""
		}
		payload := seg[do:]
		if !tcp.IsChecksumValid(src, dst, checksum.Checksum(payload, 0), uint16(len(payload))) {
			return "TCP checksum invalid"
		}
	case protoUDP:
		if len(seg) < header.UDPMinimumSize {
			return ""
		}
		udp := header.UDP(seg)
		if udp.Checksum() == 0 && src.Len() == 4 {
			return ""
		}
		if !udp.IsChecksumValid(src, dst, checksum.Checksum(seg[header.UDPMinimumSize:], 0)) {
			return "UDP checksum invalid"
		}
	case protoICMPv4:
		if checksum.Checksum(seg, 0) != 0xffff {
			return "ICMPv4 checksum invalid"
		}
	case protoICMPv6:
		xsum := header.PseudoHeaderChecksum(header.ICMPv6ProtocolNumber, src, dst, uint16(len(seg)))
		if checksum.Checksum(seg, xsum) != 0xffff {
			return "ICMPv6 checksum invalid"
		}
	}
	return ""
}

// mustVerdict processes pkt and fails the test unless the verdict is want.
func mustVerdict(t testing.TB, tb *Table, pkt []byte, now int64, want Verdict) {
	t.Helper()
	before := bytes.Clone(pkt)
	if got := tb.Process(pkt, now); got != want {
		t.Fatalf("Process = %v, want %v (packet % x)", got, want, before)
	}
	if want != Translated && !bytes.Equal(before, pkt) {
		t.Fatalf("Process returned %v but changed the packet:\n was % x\n now % x", want, before, pkt)
	}
	if want == Translated {
		checksumsValid(t, pkt)
	}
}

// payloadOf returns the transport payload of TCP/UDP packet b.
func payloadOf(b []byte) []byte {
	var p packet
	parse(b, &p)
	seg := b[p.l4:p.end]
	if p.proto == protoTCP {
		return seg[header.TCP(seg).DataOffset():]
	}
	return seg[header.UDPMinimumSize:]
}

func sec(n float64) int64 { return int64(n * 1e9) }

func entry(t testing.TB, tb *Table, now int64) Entry {
	t.Helper()
	es := tb.Entries(now)
	if len(es) != 1 {
		t.Fatalf("Entries = %d entries, want 1: %v", len(es), es)
	}
	return es[0]
}

// csumField returns the offset of packet b's transport checksum.
func csumField(b []byte) int {
	var p packet
	parse(b, &p)
	switch p.proto {
	case protoTCP:
		return p.l4 + header.TCPChecksumOffset
	case protoUDP:
		return p.l4 + udpCsumOff
	}
	return p.l4 + icmpCsumOff
}

// makePartial turns b's transport checksum into a partial one, as a
// sender with checksum offload leaves it: the pseudo-header sum alone.
func makePartial(b []byte) {
	var p packet
	parse(b, &p)
	var sum uint16
	if p.proto != protoICMPv4 {
		sum = header.PseudoHeaderChecksum(tcpip.TransportProtocolNumber(p.proto), tcpAddr(p.src), tcpAddr(p.dst), uint16(p.end-p.l4))
	}
	binary.BigEndian.PutUint16(b[csumField(b):], sum)
}

// completePartial finishes a partial checksum as the switch does for a
// port without offload.
func completePartial(b []byte) {
	var p packet
	parse(b, &p)
	binary.BigEndian.PutUint16(b[csumField(b):], nonZero(^checksum.Checksum(b[p.l4:p.end], 0)))
}
