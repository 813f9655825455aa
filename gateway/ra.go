package gateway

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/switch/stackport"
)

// Router Advertisements (RFC 4861 section 6). gVisor's netstack is a
// host's IPv6, not a router's: it never advertises. The gateway writes
// its advertisements itself, from its link-local address (hosts ignore
// advertisements from any other), to all nodes:
//
//   - at start and every RAConfig.Interval, and in answer to a Router
//     Solicitation (seen in intercept, on the switch's goroutine), at
//     most one answer per minRASolicitedGap;
//   - with the network's IPv6 prefix, on-link, and autonomous when it is
//     a /64 (SLAAC, RFC 4862, wants 64-bit interface identifiers) unless
//     RAConfig.NoSLAAC;
//   - with the DNS servers (RDNSS, RFC 8106);
//   - with the M and O flags when the gateway runs a DHCPv6 server
//     (Config.DHCP6), and only then: hosts ask it for their reserved
//     address and the DNS servers (SLAAC stays on for the /64);
//   - as a default router unless the network is internal (router
//     lifetime 0: hosts take the prefix but no default route).

// RAConfig turns on the gateway's Router Advertisements. The prefix is the
// gateway's IPv6 subnet (Config.Subnet6, or Subnet on an IPv6-only
// network).
type RAConfig struct {
	// RDNSS are the DNS servers advertised (RFC 8106); none leaves the
	// option out.
	RDNSS []netip.Addr
	// Interval between unsolicited advertisements; 0 means
	// DefaultRAInterval.
	Interval time.Duration
	// NoSLAAC advertises the prefix on-link only, without the autonomous
	// flag, even a /64: hosts form no address of their own from it and
	// keep the ones they were given (Docker's containers: their IPAM
	// address, as on Docker's own bridge, which advertises nothing).
	NoSLAAC bool
}

// Advertisement timings.
const (
	// DefaultRAInterval is RAConfig.Interval's default, well inside RFC
	// 4861's 4-1800 s.
	DefaultRAInterval = 60 * time.Second
	// raRouterLifetime is how long hosts keep the gateway as default
	// router: three intervals, as RFC 4861 suggests, at most 9000 s.
	raRouterLifetime = 1800 * time.Second
	// Prefix lifetimes: RFC 4861's defaults (30 days valid, 7 preferred).
	raValidLifetime     = 30 * 24 * time.Hour
	raPreferredLifetime = 7 * 24 * time.Hour
	// minRASolicitedGap bounds the answers to solicitations (RFC 4861's
	// MIN_DELAY_BETWEEN_RAS).
	minRASolicitedGap = 3 * time.Second
)

// allNodes is ff02::1 and its Ethernet group 33:33:00:00:00:01.
var (
	allNodes    = netip.MustParseAddr("ff02::1")
	allNodesMAC = vswitch.MAC{0x33, 0x33, 0, 0, 0, 1}
)

// advertiser sends the gateway's Router Advertisements.
type advertiser struct {
	g        *Gateway
	frame    []byte // the advertisement, built once; never changed after
	interval time.Duration

	mu   sync.Mutex
	last time.Time // last answer to a solicitation
}

// linkLocal returns fe80::/64 with the modified EUI-64 interface
// identifier of mac (RFC 4291 appendix A), the gateway's link-local
// address.
func linkLocal(mac vswitch.MAC) netip.Addr {
	return netip.AddrFrom16([16]byte{
		0xfe, 0x80, 0, 0, 0, 0, 0, 0,
		mac[0] ^ 0x02, mac[1], mac[2], 0xff, 0xfe, mac[3], mac[4], mac[5],
	})
}

// subnet6 returns the gateway's IPv6 subnet, if it has one.
func (g *Gateway) subnet6() netip.Prefix {
	if g.cfg.Subnet6.IsValid() {
		return g.cfg.Subnet6
	}
	if g.cfg.Subnet.Addr().Is6() {
		return g.cfg.Subnet
	}
	return netip.Prefix{}
}

// prepareRA checks c and builds the advertisement. It runs in New before
// the gateway is attached to its switch, so that intercept, which reads
// g.ra and g.linkLocal, never sees them change.
func (g *Gateway) prepareRA(c *RAConfig) error {
	prefix := g.subnet6()
	if !prefix.IsValid() {
		return fmt.Errorf("router advertisements: network %s has no IPv6 subnet", g.cfg.Subnet)
	}
	for _, a := range c.RDNSS {
		if !a.Is6() || a.Is4In6() {
			return fmt.Errorf("router advertisements: DNS server %s is not an IPv6 address", a)
		}
	}
	lifetime := raRouterLifetime
	if g.cfg.Internal {
		lifetime = 0
	}
	interval := c.Interval
	if interval <= 0 {
		interval = DefaultRAInterval
	}
	g.linkLocal = linkLocal(g.cfg.MAC)
	g.ra = &advertiser{g: g, interval: interval,
		frame: buildRA(g.cfg.MAC, g.linkLocal, prefix, !c.NoSLAAC, lifetime, c.RDNSS, 3*interval, g.cfg.DHCP6 != nil)}
	return nil
}

// startRA adds the gateway's link-local address to its NIC and starts
// advertising.
func (g *Gateway) startRA() error {
	pa := tcpip.ProtocolAddress{Protocol: header.IPv6ProtocolNumber,
		AddressWithPrefix: tcpip.AddressWithPrefix{Address: stackport.Addr(g.linkLocal), PrefixLen: 64}}
	if err := g.stack.AddProtocolAddress(NICID, pa, stack.AddressProperties{}); err != nil {
		return fmt.Errorf("router advertisements: add link-local address %s: %s", g.linkLocal, err)
	}
	g.wg.Add(1)
	go g.ra.run()
	return nil
}

// run advertises every interval until the gateway closes.
func (a *advertiser) run() {
	defer a.g.wg.Done()
	a.send()
	t := time.NewTicker(a.interval)
	defer t.Stop()
	for {
		select {
		case <-a.g.ctx.Done():
			return
		case <-t.C:
			a.send()
		}
	}
}

// send puts the advertisement on the switch.
func (a *advertiser) send() { a.g.port.Send(a.frame) }

// solicited answers a Router Solicitation, unless another was answered
// within minRASolicitedGap. It runs on the switch's goroutine.
func (a *advertiser) solicited(now time.Time) {
	a.mu.Lock()
	recent := now.Sub(a.last) < minRASolicitedGap
	if !recent {
		a.last = now
	}
	a.mu.Unlock()
	if !recent {
		a.g.port.Send(a.frame)
	}
}

// isRouterSolicit reports whether Ethernet frame b is an ICMPv6 Router
// Solicitation.
func isRouterSolicit(b []byte) bool {
	if len(b) < vswitch.EthHeaderLen+header.IPv6MinimumSize+header.ICMPv6HeaderSize || b[12] != 0x86 || b[13] != 0xdd {
		return false
	}
	ip := header.IPv6(b[vswitch.EthHeaderLen:])
	if !ip.IsValid(len(ip)) || ip.NextHeader() != uint8(header.ICMPv6ProtocolNumber) {
		return false
	}
	icmp := header.ICMPv6(ip.Payload())
	return len(icmp) >= header.ICMPv6HeaderSize && icmp.Type() == header.ICMPv6RouterSolicit
}

// buildRA returns the Ethernet frame of a Router Advertisement from
// gateway MAC mac and link-local address src to all nodes. slaac marks
// the prefix autonomous if it is a /64. managed sets the M and O flags:
// addresses and other configuration from DHCPv6.
func buildRA(mac vswitch.MAC, src netip.Addr, prefix netip.Prefix, slaac bool, routerLifetime time.Duration, rdnss []netip.Addr, rdnssLifetime time.Duration, managed bool) []byte {
	// Prefix Information body (RFC 4861 4.6.2), after type and length.
	pi := make([]byte, 30)
	pi[0] = byte(prefix.Bits())
	pi[1] = 0x80 // on-link
	if slaac && prefix.Bits() == 64 {
		pi[1] |= 0x40 // autonomous: SLAAC
	}
	binary.BigEndian.PutUint32(pi[2:], uint32(raValidLifetime/time.Second))
	binary.BigEndian.PutUint32(pi[6:], uint32(raPreferredLifetime/time.Second))
	p16 := prefix.Masked().Addr().As16()
	copy(pi[14:], p16[:])
	opts := header.NDPOptionsSerializer{
		header.NDPSourceLinkLayerAddressOption(tcpip.LinkAddress(mac[:])),
		header.NDPPrefixInformation(pi),
	}
	if len(rdnss) > 0 {
		// RDNSS body (RFC 8106 5.1), after type and length.
		r := make([]byte, 6+16*len(rdnss))
		binary.BigEndian.PutUint32(r[2:], uint32(rdnssLifetime/time.Second))
		for i, a := range rdnss {
			a16 := a.As16()
			copy(r[6+16*i:], a16[:])
		}
		opts = append(opts, header.NDPRecursiveDNSServer(r))
	}
	// The RA body (RFC 4861 4.2): hop limit, flags (M and O with
	// DHCPv6), router lifetime, reachable time and retrans timer
	// unspecified.
	icmpLen := header.ICMPv6HeaderSize + header.NDPRAMinimumSize + opts.Length()
	b := make([]byte, vswitch.EthHeaderLen+header.IPv6MinimumSize+icmpLen)
	header.Ethernet(b).Encode(&header.EthernetFields{SrcAddr: tcpip.LinkAddress(mac[:]), DstAddr: tcpip.LinkAddress(allNodesMAC[:]),
		Type: header.IPv6ProtocolNumber})
	ip := header.IPv6(b[vswitch.EthHeaderLen:])
	ip.Encode(&header.IPv6Fields{PayloadLength: uint16(icmpLen), TransportProtocol: header.ICMPv6ProtocolNumber, HopLimit: header.NDPHopLimit,
		SrcAddr: stackport.Addr(src), DstAddr: stackport.Addr(allNodes)})
	icmp := header.ICMPv6(ip.Payload())
	icmp.SetType(header.ICMPv6RouterAdvert)
	ra := icmp.MessageBody()
	ra[0] = 64 // current hop limit
	if managed {
		ra[1] = 0x80 | 0x40 // M: addresses by DHCPv6; O: other configuration too
	}
	binary.BigEndian.PutUint16(ra[2:], uint16(routerLifetime/time.Second))
	header.NDPOptions(ra[header.NDPRAMinimumSize:]).Serialize(opts)
	icmp.SetChecksum(header.ICMPv6Checksum(header.ICMPv6ChecksumParams{Header: icmp, Src: stackport.Addr(src), Dst: stackport.Addr(allNodes)}))
	return b
}
