package vswitch_test

import (
	"net/netip"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	vswitch "github.com/switchyard-net/switchyard/switch"
)

// The tricks RFC 7113 lists for slipping a router advertisement past an
// RA guard, and their neighbour-discovery cousins: each is dropped and
// counted, while the same shapes carrying ordinary traffic still pass.
func TestRAGuardEvasion(t *testing.T) {
	const pass = vswitch.DropReason(255)
	const (
		hbh   = uint8(header.IPv6HopByHopOptionsExtHdrIdentifier)
		dst   = uint8(header.IPv6DestinationOptionsExtHdrIdentifier)
		rt    = uint8(header.IPv6RoutingExtHdrIdentifier)
		icmp  = uint8(header.ICMPv6ProtocolNumber)
		udp   = uint8(header.UDPProtocolNumber)
		noNxt = 59
	)
	ll := eui64(boundMAC)
	ra := icmp6Msg(header.ICMPv6RouterAdvert, make([]byte, 12))
	echo := icmp6Msg(header.ICMPv6EchoRequest, make([]byte, 8))
	allRouters := netip.MustParseAddr("ff02::2")
	mcast := vswitch.MAC{0x33, 0x33, 0, 0, 0, 1}
	raVia := func(exts ...ext6) []byte { return chain6(mcast, boundMAC, ll, allNodes, exts, icmp, ra) }
	nineDst := []ext6{opts6(hbh, 1)}
	for range 9 {
		nineDst = append(nineDst, opts6(dst, 1))
	}
	routing := ext6{rt, []byte{0, 0, 0, 0, 0, 0, 0, 0}} // type 0, segments left 0
	// A first fragment whose destination-options header says 16 bytes and
	// holds 8: the ICMPv6 header is in the next fragment.
	cutOpts := chain6(mcast, boundMAC, ll, allNodes, []ext6{frag6(0, true), {dst, []byte{0, 1, 1, 4, 0, 0, 0, 0}}}, icmp, nil)
	// The same chain, unfragmented: the packet ends inside it.
	cutUnfrag := chain6(mcast, boundMAC, ll, allNodes, []ext6{{dst, []byte{0, 1, 1, 4, 0, 0, 0, 0}}}, icmp, nil)
	// An RA after the payload length: the receiver trims it away, so it
	// must not decide anything either way (here: an echo, which passes).
	trailing := append(chain6(gwMAC, boundMAC, bound6, gw6, nil, icmp, echo), ra...)
	// An echo whose payload length stops before its ICMPv6 header: cut.
	short := chain6(gwMAC, boundMAC, bound6, gw6, []ext6{opts6(dst, 1)}, icmp, echo)
	short[header.EthernetMinimumSize+5] = 8

	naSrcLL := append(ndBody(bound6, 2, boundMAC), 1, 1, 0, 0, 0, 0, 0, 0)
	copy(naSrcLL[len(naSrcLL)-6:], otherMAC[:])
	nsTgtLL := append(ndBody(gw6, 1, boundMAC), 2, 1, 0, 0, 0, 0, 0, 0)
	copy(nsTgtLL[len(nsTgtLL)-6:], otherMAC[:])
	naOverride := ndBody(gw6, 2, boundMAC)
	naOverride[0] = 0x20 // O: replace the cached link-layer address

	cases := []struct {
		name  string
		frame []byte
		want  vswitch.DropReason
	}{
		{"ra", raVia(), vswitch.DropRAGuard},
		{"ra to all-routers from a global address", chain6(mcast, boundMAC, bound6, allRouters, nil, icmp, ra), vswitch.DropRAGuard},
		{"ra behind destination options", raVia(opts6(dst, 1)), vswitch.DropRAGuard},
		{"ra behind a 64-byte destination options header", raVia(opts6(dst, 8)), vswitch.DropRAGuard},
		{"ra behind hop-by-hop and nine destination options", raVia(nineDst...), vswitch.DropRAGuard},
		{"ra behind a routing header", raVia(opts6(hbh, 1), routing), vswitch.DropRAGuard},
		{"ra behind an authentication header", raVia(ah6()), vswitch.DropRAGuard},
		{"ra in an atomic fragment", raVia(frag6(0, false)), vswitch.DropRAGuard},
		{"ra in a first fragment", raVia(frag6(0, true)), vswitch.DropRAGuard},
		{"ra behind destination options in a first fragment", raVia(frag6(0, true), opts6(dst, 1)), vswitch.DropRAGuard},
		{"first fragment without the icmpv6 header", raVia(frag6(0, true), opts6(dst, 1))[:14+40+8+8], vswitch.DropRAGuard},
		{"first fragment cut inside an extension header", cutOpts, vswitch.DropRAGuard},
		{"packet cut inside its fragment header", raVia(frag6(0, true))[:14+40+4], vswitch.DropMalformed},
		{"unfragmented packet cut inside its chain", cutUnfrag, vswitch.DropMalformed},
		{"payload length stops inside the chain", short, vswitch.DropMalformed},
		{"vlan-tagged ra", tagged(raVia(), 0x8100, 5), vswitch.DropEtherType},
		{"vlan 0 (priority) tagged ra", tagged(raVia(), 0x8100, 0), vswitch.DropEtherType},
		{"802.1ad double-tagged ra", tagged(raVia(), 0x88a8, 5, 6), vswitch.DropEtherType},
		{"redirect", chain6(mcast, boundMAC, ll, bound6, nil, icmp, icmp6Msg(header.ICMPv6RedirectMsg, make([]byte, 36))), vswitch.DropRAGuard},
		{"ra from another endpoint's address", chain6(mcast, boundMAC, other6, allNodes, nil, icmp, ra), vswitch.DropSpoofedIP},

		{"na with a source link-layer option of another MAC", icmp6(mcast, boundMAC, bound6, allNodes, header.ICMPv6NeighborAdvert, naSrcLL, false), vswitch.DropSpoofedND},
		{"ns with a target link-layer option of another MAC", icmp6(mcast, boundMAC, bound6, solicitedNode(gw6), header.ICMPv6NeighborSolicit, nsTgtLL, false), vswitch.DropSpoofedND},
		{"rs with another MAC's link-layer option", icmp6(mcast, boundMAC, ll, allRouters, header.ICMPv6RouterSolicit, append(make([]byte, 4), 1, 1, 0, 0, 0, 0, 0, 7), false), vswitch.DropSpoofedND},
		{"rs with its own link-layer option", icmp6(mcast, boundMAC, ll, allRouters, header.ICMPv6RouterSolicit, append(make([]byte, 4), append([]byte{1, 1}, boundMAC[:]...)...), false), pass},
		{"rs from ::", icmp6(mcast, boundMAC, zero6, allRouters, header.ICMPv6RouterSolicit, make([]byte, 4), false), pass},
		{"na overriding the gateway's address", icmp6(mcast, boundMAC, bound6, allNodes, header.ICMPv6NeighborAdvert, naOverride, false), vswitch.DropSpoofedND},
		{"na for another address behind destination options in a fragment",
			chain6(mcast, boundMAC, bound6, allNodes, []ext6{frag6(0, false), opts6(dst, 1)}, icmp, icmp6Msg(header.ICMPv6NeighborAdvert, ndBody(other6, 2, boundMAC))), vswitch.DropSpoofedND},

		{"echo behind hop-by-hop and destination options", chain6(gwMAC, boundMAC, bound6, gw6, []ext6{opts6(hbh, 1), opts6(dst, 2)}, icmp, echo), pass},
		{"echo in a first fragment", chain6(gwMAC, boundMAC, bound6, gw6, []ext6{frag6(0, true)}, icmp, echo), pass},
		{"a later fragment", chain6(gwMAC, boundMAC, bound6, gw6, []ext6{frag6(3, false)}, icmp, make([]byte, 8)), pass},
		{"udp in a first fragment", chain6(gwMAC, boundMAC, bound6, gw6, []ext6{frag6(0, true)}, udp, make([]byte, 16)), pass},
		{"no next header", chain6(gwMAC, boundMAC, bound6, gw6, []ext6{opts6(dst, 1)}, noNxt, nil), pass},
		{"bytes after the payload length", trailing, pass},
	}
	f := boundFixture(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f.t = t
			if got := f.passes(c.frame, c.want); got != (c.want == pass) {
				t.Errorf("forwarded = %v, want %v", got, c.want == pass)
			}
		})
	}
}

// The header-chain walk allocates nothing, whether the frame passes (an
// echo behind three extension headers, a UDP fragment) or is dropped (an
// RA behind ten headers, a first fragment cut short).
func TestRAGuardDoesNotAllocate(t *testing.T) {
	sw, a, b, _ := boundUnicastPair(t, 64)
	defer sw.Close()
	hbh, dst := uint8(header.IPv6HopByHopOptionsExtHdrIdentifier), uint8(header.IPv6DestinationOptionsExtHdrIdentifier)
	icmp, udp := uint8(header.ICMPv6ProtocolNumber), uint8(header.UDPProtocolNumber)
	pass := [][]byte{
		chain6(gwMAC, boundMAC, bound6, gw6, []ext6{opts6(hbh, 1), opts6(dst, 1), opts6(dst, 2)}, icmp, icmp6Msg(header.ICMPv6EchoRequest, make([]byte, 56))),
		chain6(gwMAC, boundMAC, bound6, gw6, []ext6{frag6(0, true)}, udp, make([]byte, 64)),
	}
	many := []ext6{opts6(hbh, 1)}
	for range 10 {
		many = append(many, opts6(dst, 1))
	}
	drop := [][]byte{
		chain6(gwMAC, boundMAC, eui64(boundMAC), allNodes, many, icmp, icmp6Msg(header.ICMPv6RouterAdvert, make([]byte, 12))),
		chain6(gwMAC, boundMAC, bound6, gw6, []ext6{frag6(0, true), opts6(dst, 1)}, icmp, nil),
	}
	in := sw.LinkOf(boundMAC)
	before, dropped := b.Written(), in.Stats().RX.DropsBy[vswitch.DropRAGuard]
	allocs := testing.AllocsPerRun(1000, func() {
		for _, f := range pass {
			a.Inject(f)
		}
		for _, f := range drop {
			a.Inject(f)
		}
	})
	if allocs != 0 {
		t.Fatalf("the IPv6 header-chain walk allocates %.1f times per run, want 0", allocs)
	}
	if n := b.Written() - before; n < 2000 {
		t.Fatalf("only %d frames forwarded during the run, want 2 per run", n)
	}
	if n := in.Stats().RX.DropsBy[vswitch.DropRAGuard] - dropped; n < 2000 {
		t.Fatalf("only %d frames dropped during the run, want 2 per run", n)
	}
}

// BenchmarkForwardBoundIPv6 measures the bound-port filter on IPv6 frames:
// plain UDP, and an echo behind hop-by-hop and destination options (the
// header-chain walk).
func BenchmarkForwardBoundIPv6(b *testing.B) {
	hbh, dst := uint8(header.IPv6HopByHopOptionsExtHdrIdentifier), uint8(header.IPv6DestinationOptionsExtHdrIdentifier)
	for _, c := range []struct {
		name  string
		frame []byte
	}{
		{"udp", chain6(gwMAC, boundMAC, bound6, gw6, nil, uint8(header.UDPProtocolNumber), make([]byte, 1400))},
		{"echo-behind-2-ext", chain6(gwMAC, boundMAC, bound6, gw6, []ext6{opts6(hbh, 1), opts6(dst, 1)}, uint8(header.ICMPv6ProtocolNumber),
			icmp6Msg(header.ICMPv6EchoRequest, make([]byte, 1380)))},
	} {
		b.Run(c.name, func(b *testing.B) {
			sw, in, _, _ := boundUnicastPair(b, 64)
			defer sw.Close()
			b.ReportAllocs()
			b.SetBytes(int64(len(c.frame)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				in.Inject(c.frame)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
		})
	}
}
