package vswitch_test

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/testing/porttest"
)

// FuzzBindingFilter sends arbitrary frames from a bound port. The switch
// must not panic, and every frame it forwards must come from the bound
// source: the bound MAC, an IPv4 or IPv6 source the binding allows (or the
// unspecified address, for DHCP, DAD and MLD), an ARP sender the binding
// allows, and never a router advertisement.
func FuzzBindingFilter(f *testing.F) {
	ns := header.ICMPv6NeighborSolicit
	for _, seed := range [][]byte{
		udp4(gwMAC, boundMAC, bound4, gw4, 1000, 80),
		udp4(vswitch.Broadcast, boundMAC, zero4, netip.IPv4Unspecified(), 68, 67),
		arp(boundMAC, header.ARPRequest, boundMAC, bound4, gw4),
		arp(boundMAC, header.ARPRequest, boundMAC, other4, gw4),
		icmp6(vswitch.Broadcast, boundMAC, bound6, solicitedNode(gw6), ns, ndBody(gw6, 1, boundMAC), false),
		icmp6(vswitch.Broadcast, boundMAC, zero6, solicitedNode(bound6), ns, ndBody(bound6, 0, vswitch.MAC{}), true),
		icmp6(vswitch.Broadcast, boundMAC, bound6, allNodes, header.ICMPv6NeighborAdvert, ndBody(bound6, 2, boundMAC), true),
		icmp6(vswitch.Broadcast, boundMAC, eui64(boundMAC), allNodes, header.ICMPv6RouterAdvert, make([]byte, 12), true),
		vlanTagged(gwMAC, boundMAC),
	} {
		f.Add(seed, false)
	}
	f.Add(udp4(gwMAC, otherMAC, netip.MustParseAddr("10.9.0.5"), gw4, 1, 2), true)
	for _, seed := range raEvasionSeeds() {
		f.Add(seed, false)
	}

	f.Fuzz(func(t *testing.T, data []byte, spoofing bool) {
		sw := vswitch.New(vswitch.Config{})
		defer sw.Close()
		b := testBinding()
		b.MACSpoofing = spoofing
		in, out := porttest.New("in", 9000), porttest.New("out", 9000)
		if _, err := sw.Attach(in, vswitch.AttachOptions{Binding: b}); err != nil {
			t.Fatal(err)
		}
		if _, err := sw.Attach(out, vswitch.AttachOptions{}); err != nil {
			t.Fatal(err)
		}
		in.Inject(data)
		for _, fr := range out.Take() {
			if reason := unboundSource(fr.Data, b); reason != "" {
				t.Fatalf("forwarded a frame with %s: % x", reason, fr.Data)
			}
		}
	})
}

// raEvasionSeeds are RFC 7113's tricks: an RA behind extension headers, in
// fragments, and behind more headers than a bounded walk would follow.
func raEvasionSeeds() [][]byte {
	const dst, icmp = uint8(header.IPv6DestinationOptionsExtHdrIdentifier), uint8(header.ICMPv6ProtocolNumber)
	ra := icmp6Msg(header.ICMPv6RouterAdvert, make([]byte, 12))
	mcast := vswitch.MAC{0x33, 0x33, 0, 0, 0, 1}
	ll := eui64(boundMAC)
	many := []ext6{opts6(uint8(header.IPv6HopByHopOptionsExtHdrIdentifier), 1)}
	for range 10 {
		many = append(many, opts6(dst, 1))
	}
	return [][]byte{
		chain6(mcast, boundMAC, ll, allNodes, []ext6{opts6(dst, 2)}, icmp, ra),
		chain6(mcast, boundMAC, ll, allNodes, many, icmp, ra),
		chain6(mcast, boundMAC, ll, allNodes, []ext6{frag6(0, true), opts6(dst, 1)}, icmp, ra)[:14+40+16],
		chain6(mcast, boundMAC, ll, allNodes, []ext6{ah6()}, icmp, ra),
		tagged(chain6(mcast, boundMAC, ll, allNodes, nil, icmp, ra), 0x8100, 7),
	}
}

// routerMessage walks the header chain of IPv6 packet p by RFC 8200's
// layouts (and RFC 4302's for AH) and returns the ICMPv6 type it ends in
// if that is a router advertisement or redirect (else 0), and whether p
// is a first fragment that ends inside its chain.
func routerMessage(p []byte) (typ byte, firstFragmentCut bool) {
	if len(p) < 40 {
		return 0, false
	}
	end := len(p)
	if n := 40 + int(binary.BigEndian.Uint16(p[4:6])); n > 40 && n < end {
		end = n
	}
	nh, off, frag := p[6], 40, false
	for {
		var size int
		switch nh {
		case 0, 43, 60, 135, 139, 140, 253, 254:
			if off+2 > end {
				return 0, frag
			}
			size = 8 + 8*int(p[off+1])
		case 51:
			if off+2 > end {
				return 0, frag
			}
			size = 4 * (int(p[off+1]) + 2)
		case 44:
			if off+8 > end {
				return 0, frag
			}
			if binary.BigEndian.Uint16(p[off+2:off+4])>>3 != 0 {
				return 0, false
			}
			frag, size = true, 8
		case 58:
			if off+4 > end {
				return 0, frag
			}
			if t := p[off]; t == 134 || t == 137 {
				return t, false
			}
			return 0, false
		default:
			return 0, false
		}
		if off+size > end {
			return 0, frag
		}
		nh, off = p[off], off+size
	}
}

// unboundSource says what in forwarded frame d does not belong to b, or "".
// It reads the headers by their RFC offsets, independently of the filter.
func unboundSource(d []byte, b *vswitch.Binding) string {
	src := vswitch.MAC(d[6:12])
	if !b.MACSpoofing && src != b.MAC {
		return "another source MAC"
	}
	p := d[14:]
	switch binary.BigEndian.Uint16(d[12:14]) {
	case 0x0800:
		if s := netip.AddrFrom4([4]byte(p[12:16])); !owns(b, s) && !(s.IsUnspecified() && p[9] == 17) {
			return "IPv4 source " + s.String()
		}
	case 0x86dd:
		s := netip.AddrFrom16([16]byte(p[8:24]))
		if !owns(b, s) && !s.IsUnspecified() {
			return "IPv6 source " + s.String()
		}
		switch typ, cut := routerMessage(p); {
		case typ != 0:
			return "a router advertisement or redirect"
		case cut:
			return "a first fragment without its whole header chain"
		}
	case 0x0806:
		if vswitch.MAC(p[8:14]) != src {
			return "ARP sender MAC of another"
		}
		if s := netip.AddrFrom4([4]byte(p[14:18])); !owns(b, s) && !s.IsUnspecified() {
			return "ARP sender " + s.String()
		}
	default:
		return "EtherType " + string(d[12:14])
	}
	return ""
}

func owns(b *vswitch.Binding, a netip.Addr) bool {
	if a == eui64(b.MAC) {
		return true
	}
	for _, x := range b.Addrs {
		if x == a {
			return true
		}
	}
	for _, p := range b.Allowed {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
