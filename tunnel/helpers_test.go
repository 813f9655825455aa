package tunnel_test

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/switchyard-net/switchyard/tunnel"
)

// flow describes the inner packet of a test frame.
type flow struct {
	dst, src [6]byte
	v6       bool
	srcIP    netip.Addr
	dstIP    netip.Addr
	proto    byte
	sport    uint16
	dport    uint16
	ttl      byte
	ipID     uint16
	payload  int // bytes after the transport ports
}

func baseFlow() flow {
	return flow{
		dst:     [6]byte{0x02, 0, 0, 0, 0, 2},
		src:     [6]byte{0x02, 0, 0, 0, 0, 1},
		srcIP:   netip.MustParseAddr("10.0.0.1"),
		dstIP:   netip.MustParseAddr("10.0.0.2"),
		proto:   6,
		sport:   40000,
		dport:   443,
		ttl:     64,
		payload: 40,
	}
}

// frame builds an Ethernet frame for fl. Checksums are left zero except the
// IPv4 header checksum, which the kernel checks on receive.
func (fl flow) frame() []byte {
	b := append([]byte{}, fl.dst[:]...)
	b = append(b, fl.src[:]...)
	l4 := binary.BigEndian.AppendUint16(nil, fl.sport)
	l4 = binary.BigEndian.AppendUint16(l4, fl.dport)
	if fl.proto == 17 {
		l4 = binary.BigEndian.AppendUint16(l4, uint16(8+fl.payload))
		l4 = append(l4, 0, 0) // no UDP checksum (allowed over IPv4)
	}
	for i := range fl.payload {
		l4 = append(l4, byte(i))
	}
	if fl.v6 {
		b = binary.BigEndian.AppendUint16(b, 0x86dd)
		b = append(b, 0x60, 0, 0, 0)
		b = binary.BigEndian.AppendUint16(b, uint16(len(l4)))
		b = append(b, fl.proto, fl.ttl)
		s, d := fl.srcIP.As16(), fl.dstIP.As16()
		b = append(append(append(b, s[:]...), d[:]...), l4...)
		return b
	}
	b = binary.BigEndian.AppendUint16(b, 0x0800)
	ip := []byte{0x45, 0}
	ip = binary.BigEndian.AppendUint16(ip, uint16(20+len(l4)))
	ip = binary.BigEndian.AppendUint16(ip, fl.ipID)
	ip = append(ip, 0, 0) // flags and fragment offset
	ip = append(ip, fl.ttl, fl.proto, 0, 0)
	s, d := fl.srcIP.As4(), fl.dstIP.As4()
	ip = append(append(ip, s[:]...), d[:]...)
	binary.BigEndian.PutUint16(ip[10:], ipChecksum(ip))
	return append(append(b, ip...), l4...)
}

func ipChecksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// testKey returns a fixed key whose bytes all derive from n.
func testKey(n byte) tunnel.Key {
	var k tunnel.Key
	for i := range k {
		k[i] = n + byte(i)*7
	}
	return k
}

// packet returns a buffer laid out for Sealer.Seal: headroom, then frame,
// with TagLen bytes of spare capacity.
func packet(frame []byte) []byte {
	buf := make([]byte, tunnel.SecureHeadroom+len(frame), tunnel.SecureHeadroom+len(frame)+tunnel.TagLen)
	copy(buf[tunnel.SecureHeadroom:], frame)
	return buf
}

// seal seals frame on vni and returns a datagram of its own.
func seal(tb testing.TB, s *tunnel.Sealer, vni uint32, frame []byte) []byte {
	tb.Helper()
	d, err := s.Seal(packet(frame), vni)
	if err != nil {
		tb.Fatalf("Seal: %v", err)
	}
	return d
}

func mustSealer(tb testing.TB, key tunnel.Key, keyID uint16, sender uint32, first uint64) *tunnel.Sealer {
	tb.Helper()
	s, err := tunnel.NewSealerAt(key, keyID, sender, first)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func mustOpener(tb testing.TB, self uint32, keys map[uint16]tunnel.Key) *tunnel.Opener {
	tb.Helper()
	o := tunnel.NewOpener(self)
	for id, k := range keys {
		if err := o.SetKey(id, k); err != nil {
			tb.Fatal(err)
		}
	}
	return o
}
