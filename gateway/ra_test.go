package gateway_test

import (
	"net/netip"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/switchyard-net/switchyard/gateway"
	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/switch/stackport"
	"github.com/switchyard-net/switchyard/testing/porttest"
)

// raNet is a dual-stack gateway with Router Advertisements and an
// in-memory port on its switch that sees them.
func raNet(t *testing.T, subnet6 string, internal bool) (*porttest.Port, vswitch.MAC) {
	return raNetConfig(t, subnet6, internal, false)
}

// raNetConfig is raNet with RAConfig.NoSLAAC.
func raNetConfig(t *testing.T, subnet6 string, internal, noSLAAC bool) (*porttest.Port, vswitch.MAC) {
	t.Helper()
	log := zaptest.NewLogger(t)
	sw := vswitch.New(vswitch.Config{Name: "ra", Logger: log})
	t.Cleanup(func() { sw.Close() })
	// The host is on the switch before the gateway starts: the first
	// unsolicited RA goes out at once, and a host attached after it would
	// wait the whole interval for the next one.
	port := porttest.New("host", 1500)
	if _, err := sw.Attach(port, vswitch.AttachOptions{}); err != nil {
		t.Fatal(err)
	}
	p6 := netip.MustParsePrefix(subnet6)
	mac := vswitch.MAC{0x02, 0x42, 10, 50, 0, 1}
	gw, err := gateway.New(sw, gateway.Config{
		Network: "ra", Subnet: netip.MustParsePrefix("10.50.0.0/24"), Addr: netip.MustParseAddr("10.50.0.1"),
		Subnet6: p6, Addr6: p6.Addr().Next(), MAC: mac, Logger: log, Internal: internal,
		RA: &gateway.RAConfig{RDNSS: []netip.Addr{p6.Addr().Next()}, Interval: time.Hour, NoSLAAC: noSLAAC},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	return port, mac
}

// nextRA waits for a Router Advertisement on port and returns its IPv6
// packet.
func nextRA(t *testing.T, port *porttest.Port) header.IPv6 {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		for _, f := range port.Take() {
			b := f.Data
			if len(b) < 14+header.IPv6MinimumSize || b[12] != 0x86 || b[13] != 0xdd {
				continue
			}
			ip := header.IPv6(b[14:])
			if ip.NextHeader() == uint8(header.ICMPv6ProtocolNumber) && header.ICMPv6(ip.Payload()).Type() == header.ICMPv6RouterAdvert {
				if got := vswitch.MAC(b[0:6]); got != (vswitch.MAC{0x33, 0x33, 0, 0, 0, 1}) {
					t.Errorf("RA to %s, want all nodes 33:33:00:00:00:01", got)
				}
				return ip
			}
		}
		select {
		case <-port.Notify():
		case <-deadline:
			t.Fatal("no Router Advertisement within 5 s")
		}
	}
}

// routerSolicit is an RS from host MAC m, link-local src.
func routerSolicit(m vswitch.MAC) []byte {
	src := netip.MustParseAddr("fe80::42:aff:fe32:2")
	dst := netip.MustParseAddr("ff02::2")
	icmpLen := header.ICMPv6HeaderSize + header.NDPRSMinimumSize
	b := make([]byte, 14+header.IPv6MinimumSize+icmpLen)
	header.Ethernet(b).Encode(&header.EthernetFields{SrcAddr: tcpip.LinkAddress(m[:]), DstAddr: tcpip.LinkAddress([]byte{0x33, 0x33, 0, 0, 0, 2}), Type: header.IPv6ProtocolNumber})
	ip := header.IPv6(b[14:])
	ip.Encode(&header.IPv6Fields{PayloadLength: uint16(icmpLen), TransportProtocol: header.ICMPv6ProtocolNumber, HopLimit: 255,
		SrcAddr: stackport.Addr(src), DstAddr: stackport.Addr(dst)})
	icmp := header.ICMPv6(ip.Payload())
	icmp.SetType(header.ICMPv6RouterSolicit)
	icmp.SetChecksum(header.ICMPv6Checksum(header.ICMPv6ChecksumParams{Header: icmp, Src: stackport.Addr(src), Dst: stackport.Addr(dst)}))
	return b
}

// The gateway advertises at start and answers a solicitation: from its
// EUI-64 link-local address, hop limit 255, a valid checksum, a default
// router, the /64 on-link and autonomous (SLAAC), and its address as
// RDNSS.
func TestRouterAdvertisement(t *testing.T) {
	port, mac := raNet(t, "fd00:50::/64", false)
	first := nextRA(t, port)
	checkRA(t, first, mac, "fd00:50::/64", true, 1800*time.Second, "fd00:50::1", false)
	if err := port.Inject(routerSolicit(vswitch.MAC{0x02, 0x42, 10, 50, 0, 2})); err != nil {
		t.Fatal(err)
	}
	// The next advertisement is an hour away: this one answers the
	// solicitation.
	checkRA(t, nextRA(t, port), mac, "fd00:50::/64", true, 1800*time.Second, "fd00:50::1", false)
}

// An internal network's gateway is no default router (lifetime 0); a
// prefix longer than /64 is on-link but not for SLAAC.
func TestRouterAdvertisementInternalLongPrefix(t *testing.T) {
	port, mac := raNet(t, "fd00:51::/80", true)
	checkRA(t, nextRA(t, port), mac, "fd00:51::/80", false, 0, "fd00:51::1", false)
}

// With NoSLAAC the /64 is on-link only, not autonomous: hosts keep the
// addresses they were given; the gateway is still their default router,
// at start and in answer to a solicitation.
func TestRouterAdvertisementNoSLAAC(t *testing.T) {
	port, mac := raNetConfig(t, "fd00:52::/64", false, true)
	checkRA(t, nextRA(t, port), mac, "fd00:52::/64", false, 1800*time.Second, "fd00:52::1", false)
	if err := port.Inject(routerSolicit(vswitch.MAC{0x02, 0x42, 10, 50, 0, 2})); err != nil {
		t.Fatal(err)
	}
	checkRA(t, nextRA(t, port), mac, "fd00:52::/64", false, 1800*time.Second, "fd00:52::1", false)
}

func checkRA(t *testing.T, ip header.IPv6, mac vswitch.MAC, prefix string, autonomous bool, lifetime time.Duration, rdnss string, managed bool) {
	t.Helper()
	wantSrc := netip.AddrFrom16([16]byte{0xfe, 0x80, 0, 0, 0, 0, 0, 0, mac[0] ^ 2, mac[1], mac[2], 0xff, 0xfe, mac[3], mac[4], mac[5]})
	if src := netip.AddrFrom16(ip.SourceAddress().As16()); src != wantSrc || ip.HopLimit() != 255 {
		t.Errorf("RA from %s hop limit %d, want %s and 255", src, ip.HopLimit(), wantSrc)
	}
	icmp := header.ICMPv6(ip.Payload())
	if got := header.ICMPv6Checksum(header.ICMPv6ChecksumParams{Header: icmp, Src: ip.SourceAddress(), Dst: ip.DestinationAddress()}); got != icmp.Checksum() {
		t.Errorf("RA checksum %#x, want %#x", icmp.Checksum(), got)
	}
	ra := header.NDPRouterAdvert(icmp.MessageBody())
	if ra.RouterLifetime() != lifetime || ra.ManagedAddrConfFlag() != managed || ra.OtherConfFlag() != managed {
		t.Errorf("router lifetime %v M %v O %v, want %v and M, O %v", ra.RouterLifetime(), ra.ManagedAddrConfFlag(), ra.OtherConfFlag(), lifetime, managed)
	}
	it, err := ra.Options().Iter(true)
	if err != nil {
		t.Fatal(err)
	}
	var gotPrefix, gotDNS, gotMAC bool
	for {
		opt, done, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		if done {
			break
		}
		switch o := opt.(type) {
		case header.NDPSourceLinkLayerAddressOption:
			gotMAC = string(o.EthernetAddress()) == string(mac[:])
		case header.NDPPrefixInformation:
			p := netip.PrefixFrom(netip.AddrFrom16(o.Prefix().As16()), int(o.PrefixLength()))
			gotPrefix = p.String() == prefix && o.OnLinkFlag() && o.AutonomousAddressConfigurationFlag() == autonomous && o.ValidLifetime() > 0
			if !gotPrefix {
				t.Errorf("prefix option %s on-link %v autonomous %v valid %v, want %s on-link autonomous=%v", p, o.OnLinkFlag(),
					o.AutonomousAddressConfigurationFlag(), o.ValidLifetime(), prefix, autonomous)
			}
		case header.NDPRecursiveDNSServer:
			addrs, err := o.Addresses()
			gotDNS = err == nil && len(addrs) == 1 && netip.AddrFrom16(addrs[0].As16()).String() == rdnss && o.Lifetime() > 0
		}
	}
	if !gotPrefix || !gotDNS || !gotMAC {
		t.Errorf("RA options: prefix %v, RDNSS %s %v, source link-layer address %v; want all", gotPrefix, rdnss, gotDNS, gotMAC)
	}
}
