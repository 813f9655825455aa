package gateway

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// echo6Seed is an IPv6 echo request from fd00:1::2 to 2001:db8::5.
func echo6Seed() []byte {
	b := make([]byte, header.IPv6MinimumSize+16)
	header.IPv6(b).Encode(&header.IPv6Fields{PayloadLength: 16, TransportProtocol: 58, HopLimit: 64,
		SrcAddr: tcpip.AddrFrom16(netip.MustParseAddr("fd00:1::2").As16()), DstAddr: tcpip.AddrFrom16(netip.MustParseAddr("2001:db8::5").As16())})
	b[header.IPv6MinimumSize] = 128
	binary.BigEndian.PutUint16(b[header.IPv6MinimumSize+4:], 7)
	return b
}

// echoRequest and skipExt6 never panic, return a message inside the
// packet, and say yes only to an echo request of the packet's family.
func FuzzEchoRequest(f *testing.F) {
	e6 := echo6Seed()
	f.Add(e6, true)
	hbh := append(append([]byte(nil), e6[:header.IPv6MinimumSize]...), 58, 0, 0, 0, 0, 0, 0, 0)
	hbh = append(hbh, e6[header.IPv6MinimumSize:]...)
	hbh[6] = 0
	binary.BigEndian.PutUint16(hbh[4:], 24)
	f.Add(hbh, true)
	frag := append(append([]byte(nil), e6[:header.IPv6MinimumSize]...), 58, 0, 0, 1, 0, 0, 0, 9) // first fragment, more to come
	frag = append(frag, e6[header.IPv6MinimumSize:]...)
	frag[6] = 44
	binary.BigEndian.PutUint16(frag[4:], 24)
	f.Add(frag, true)
	e4 := make([]byte, 28)
	header.IPv4(e4).Encode(&header.IPv4Fields{TotalLength: 28, TTL: 64, Protocol: 1, SrcAddr: tcpip.AddrFrom4([4]byte{10, 0, 0, 2}), DstAddr: tcpip.AddrFrom4([4]byte{192, 0, 2, 1})})
	e4[20] = 8
	f.Add(e4, false)
	f.Fuzz(func(t *testing.T, ip []byte, v6 bool) {
		// The caller has checked the version and the fixed header's length.
		if v6 && (len(ip) < header.IPv6MinimumSize || ip[0]>>4 != 6) || !v6 && (len(ip) < header.IPv4MinimumSize || ip[0]>>4 != 4) {
			return
		}
		msg, ok, _ := echoRequest(ip, v6)
		if !ok {
			return
		}
		want := byte(header.ICMPv4Echo)
		if v6 {
			want = byte(header.ICMPv6EchoRequest)
		}
		if len(msg) < 8 || msg[0] != want {
			t.Fatalf("echoRequest said yes to %x", msg)
		}
	})
}

// rawMessage never panics and says yes only to an echo reply or to an
// error quoting an echo request of its family.
func FuzzRawMessage(f *testing.F) {
	e6 := echo6Seed()
	f.Add(append([]byte{129, 0, 0, 0, 0, 7, 0, 1}, 1, 2, 3), true)
	f.Add(append([]byte{1, 3, 0, 0, 0, 0, 0, 0}, e6...), true)
	f.Add(append([]byte{2, 0, 0, 0, 0, 0, 5, 0}, e6...), true)
	q4 := make([]byte, 28)
	header.IPv4(q4).Encode(&header.IPv4Fields{TotalLength: 28, TTL: 64, Protocol: 1, SrcAddr: tcpip.AddrFrom4([4]byte{10, 0, 0, 2}), DstAddr: tcpip.AddrFrom4([4]byte{192, 0, 2, 1})})
	q4[20] = 8
	f.Add(append([]byte{3, 1, 0, 0, 0, 0, 0, 0}, q4...), false)
	f.Add([]byte{0, 0, 0, 0, 0, 9, 0, 1}, false)
	f.Fuzz(func(t *testing.T, msg []byte, v6 bool) {
		_, isErr, qdst, qmsg, ok := rawMessage(msg, v6)
		if !ok {
			return
		}
		if !isErr {
			return
		}
		if qdst.Is6() != v6 || len(qmsg) < 8 {
			t.Fatalf("error quoting %s, message %x", qdst, qmsg)
		}
	})
}

// errQueueSeed is a control message as an IPV6_RECVERR error-queue read
// returns it: ICMPv6 destination unreachable (address unreachable) from
// fd00:213::1.
func errQueueSeed() []byte {
	data := make([]byte, sockExtendedErrLen+28)
	binary.NativeEndian.PutUint32(data[0:], uint32(unix.EHOSTUNREACH))
	data[4], data[5], data[6] = unix.SO_EE_ORIGIN_ICMP6, 1, 3
	binary.NativeEndian.PutUint16(data[sockExtendedErrLen:], unix.AF_INET6)
	a := netip.MustParseAddr("fd00:213::1").As16()
	copy(data[sockExtendedErrLen+8:], a[:])
	b := make([]byte, unix.CmsgSpace(len(data)))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = unix.SOL_IPV6, unix.IPV6_RECVERR
	h.SetLen(unix.CmsgLen(len(data)))
	copy(b[unix.CmsgLen(0):], data)
	return b
}

func TestParseErrQueue(t *testing.T) {
	e, ok := parseErrQueue(errQueueSeed())
	if !ok || e.hdr[0] != 1 || e.hdr[1] != 3 || e.reporter != netip.MustParseAddr("fd00:213::1") {
		t.Fatalf("parseErrQueue = %+v, %v; want type 1 code 3 from fd00:213::1", e, ok)
	}
	local := errQueueSeed()
	local[unix.CmsgLen(0)+4] = unix.SO_EE_ORIGIN_LOCAL
	if _, ok := parseErrQueue(local); ok {
		t.Error("a local error was taken for an ICMP one")
	}
}

// parseErrQueue never panics, and what it finds is an ICMP error.
func FuzzParseErrQueue(f *testing.F) {
	f.Add(errQueueSeed())
	f.Add(errQueueSeed()[:20])
	f.Fuzz(func(t *testing.T, oob []byte) {
		if e, ok := parseErrQueue(oob); ok && e.reporter.IsValid() && e.reporter.Is4In6() {
			t.Fatalf("reporter %s not unmapped", e.reporter)
		}
	})
}
