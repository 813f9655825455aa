package gateway_test

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/switchyard-net/switchyard/gateway"
	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/testing/porttest"
	"github.com/switchyard-net/switchyard/testing/vnettest"
)

var (
	routeSubnet = netip.MustParsePrefix("10.240.0.0/24")
	routeGW     = netip.MustParseAddr("10.240.0.1")
	routeGWMAC  = vswitch.MAC{0x02, 0x42, 10, 240, 0, 1}
	remoteNet   = netip.MustParsePrefix("10.99.0.0/24")
	remoteHost  = netip.MustParseAddr("10.99.0.7")
	hopAddr     = netip.MustParseAddr("10.240.0.254")
	hopMAC      = vswitch.MAC{0x02, 0x42, 10, 240, 0, 254}
)

// routedNet is a network with a route to 10.99.0.0/24 via a host
// interface the test plays itself (hop): what the gateway forwards lands
// in hop.Sent, and what the "host kernel" delivers is injected there.
type routedNet struct {
	sw  *vswitch.Switch
	gw  *gateway.Gateway
	hop *porttest.Port
	a   *vnettest.Host
}

func newRoutedNet(t *testing.T) *routedNet {
	t.Helper()
	log := zaptest.NewLogger(t)
	n := &routedNet{sw: vswitch.New(vswitch.Config{Name: "web", Logger: log})}
	t.Cleanup(func() { n.sw.Close() })
	gw, err := gateway.New(n.sw, gateway.Config{Network: "web", Subnet: routeSubnet, Addr: routeGW, MAC: routeGWMAC,
		Routes: []netip.Prefix{remoteNet}, NextHop: hopAddr, NextHopMAC: hopMAC, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	n.gw = gw
	t.Cleanup(gw.Close)
	n.hop = porttest.New("host-if", 1500)
	if _, err := n.sw.Attach(n.hop, vswitch.AttachOptions{}); err != nil {
		t.Fatal(err)
	}
	n.a, err = vnettest.NewHost(n.sw, vnettest.HostConfig{Name: "a", Addr: netip.MustParsePrefix("10.240.0.2/24"), Gateway: routeGW})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.a.Close)
	return n
}

// routedFrames returns the IPv4 frames the gateway sent hop for the
// remote net (not those the switch flooded there before it knew the
// gateway's MAC).
func (n *routedNet) routedFrames() [][]byte {
	var out [][]byte
	for _, f := range n.hop.Take() {
		b := f.Data
		if len(b) < 34 || b[12] != 0x08 || b[13] != 0x00 || vswitch.MAC(b[6:12]) != routeGWMAC {
			continue
		}
		if remoteNet.Contains(netip.AddrFrom4([4]byte(b[30:34]))) {
			out = append(out, b)
		}
	}
	return out
}

// echoReply turns the echo request frame req, as the gateway forwarded it
// to the host interface, into the reply the remote host's answer is when
// the host kernel delivers it on the network: from the host interface's
// MAC to the endpoint's, the remote address as source.
func echoReply(req []byte, dstMAC vswitch.MAC) []byte {
	b := append([]byte(nil), req...)
	copy(b[0:6], dstMAC[:])
	copy(b[6:12], hopMAC[:])
	ip := header.IPv4(b[14:])
	src, dst := ip.SourceAddress(), ip.DestinationAddress()
	ip.SetSourceAddress(dst)
	ip.SetDestinationAddress(src)
	ip.SetTTL(60)
	ip.SetChecksum(0)
	ip.SetChecksum(^ip.CalculateChecksum())
	icmp := header.ICMPv4(ip.Payload())
	icmp.SetType(header.ICMPv4EchoReply)
	icmp.SetChecksum(0)
	icmp.SetChecksum(^checksum.Checksum(icmp, 0))
	return b
}

// An endpoint pings an address of a routed subnet: the gateway hands the
// packet to the host interface with its source kept and its TTL one
// lower, and the reply the host delivers reaches the endpoint.
func TestRoutedSubnetGoesToHostInterface(t *testing.T) {
	n := newRoutedNet(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := n.a.Ping(ctx, remoteHost); done <- err }()

	var req []byte
	for req == nil {
		select {
		case <-n.hop.Notify():
		case <-ctx.Done():
			t.Fatal("no packet for the routed subnet reached the host interface")
		}
		if fs := n.routedFrames(); len(fs) > 0 {
			req = fs[0]
		}
	}
	if dst, src := vswitch.MAC(req[0:6]), vswitch.MAC(req[6:12]); dst != hopMAC || src != routeGWMAC {
		t.Errorf("forwarded frame %s → %s, want gateway %s → host interface %s", src, dst, routeGWMAC, hopMAC)
	}
	ip := header.IPv4(req[14:])
	if got := netip.AddrFrom4(ip.SourceAddress().As4()); got != n.a.Addr() {
		t.Errorf("forwarded packet from %s, want the endpoint's own %s (no masquerade)", got, n.a.Addr())
	}
	if ip.TTL() != 63 {
		t.Errorf("forwarded TTL %d, want 63 (the endpoint's 64, one hop less)", ip.TTL())
	}
	if !ip.IsChecksumValid() {
		t.Error("forwarded packet's header checksum is wrong after the TTL change")
	}
	if err := n.hop.Inject(echoReply(req, n.a.MAC())); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("ping %s through the host interface: %v", remoteHost, err)
	}
	if st := n.gw.RouteStats(); st.Forwarded == 0 {
		t.Errorf("route stats %+v, want forwarded packets counted", st)
	}
	if eg := n.gw.Stats(); eg.ICMPEchoes != 0 {
		t.Errorf("the echo proxy took %d pings to a routed subnet, want none (routed, not masqueraded)", eg.ICMPEchoes)
	}
}

// ipFrame builds an Ethernet frame carrying an IPv4 UDP datagram.
func ipFrame(dstMAC, srcMAC vswitch.MAC, src, dst netip.Addr, ttl uint8) []byte {
	b := make([]byte, 14+20+8+4)
	copy(b[0:6], dstMAC[:])
	copy(b[6:12], srcMAC[:])
	b[12], b[13] = 0x08, 0x00
	ip := header.IPv4(b[14:])
	ip.Encode(&header.IPv4Fields{TotalLength: 32, TTL: ttl, Protocol: 17, SrcAddr: tcpip.AddrFrom4(src.As4()), DstAddr: tcpip.AddrFrom4(dst.As4())})
	ip.SetChecksum(^ip.CalculateChecksum())
	udp := b[34:]
	binary.BigEndian.PutUint16(udp[0:], 4000)
	binary.BigEndian.PutUint16(udp[2:], 5000)
	binary.BigEndian.PutUint16(udp[4:], 12)
	copy(udp[8:], "ping")
	return b
}

// A packet with one hop left is not forwarded: the sender gets ICMP time
// exceeded from the gateway address. A packet for a routed subnet that
// comes from the host interface itself (a routing loop) is dropped.
func TestRoutedTTLExceededAndLoop(t *testing.T) {
	n := newRoutedNet(t)
	ep := porttest.New("ep", 1500)
	if _, err := n.sw.Attach(ep, vswitch.AttachOptions{}); err != nil {
		t.Fatal(err)
	}
	epMAC := vswitch.MAC{0x02, 0x42, 10, 240, 0, 9}
	epAddr := netip.MustParseAddr("10.240.0.9")
	if err := ep.Inject(ipFrame(routeGWMAC, epMAC, epAddr, remoteHost, 1)); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(5 * time.Second)
	var icmp header.ICMPv4
	for icmp == nil {
		select {
		case <-ep.Notify():
		case <-deadline:
			t.Fatal("no ICMP time exceeded for a packet with TTL 1")
		}
		for _, f := range ep.Take() {
			b := f.Data
			if len(b) >= 14+20+8 && b[12] == 0x08 && header.IPv4(b[14:]).Protocol() == 1 {
				ip := header.IPv4(b[14:])
				if netip.AddrFrom4(ip.SourceAddress().As4()) != routeGW || netip.AddrFrom4(ip.DestinationAddress().As4()) != epAddr {
					t.Fatalf("ICMP error %s → %s, want gateway → sender", ip.SourceAddress(), ip.DestinationAddress())
				}
				icmp = header.ICMPv4(ip.Payload())
			}
		}
	}
	if icmp.Type() != header.ICMPv4TimeExceeded || icmp.Code() != 0 {
		t.Errorf("ICMP type %d code %d, want time exceeded in transit (11/0)", icmp.Type(), icmp.Code())
	}
	if len(n.routedFrames()) != 0 {
		t.Error("a packet with TTL 1 was forwarded")
	}

	// From the host interface to the gateway, for the routed subnet.
	if err := n.hop.Inject(ipFrame(routeGWMAC, hopMAC, epAddr, remoteHost, 64)); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); n.gw.RouteStats().Looped == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("route stats %+v: the looped packet was not counted", n.gw.RouteStats())
		}
	}
	if st := n.gw.RouteStats(); st.Forwarded != 0 || st.TTLExceeded != 1 {
		t.Errorf("route stats %+v, want nothing forwarded and one TTL exceeded", st)
	}
}

func TestRoutesRefused(t *testing.T) {
	base := gateway.Config{Network: "x", Subnet: routeSubnet, Addr: routeGW, MAC: routeGWMAC,
		Routes: []netip.Prefix{remoteNet}, NextHop: hopAddr, NextHopMAC: hopMAC}
	cases := []struct {
		name string
		edit func(*gateway.Config)
		want string
	}{
		{"internal", func(c *gateway.Config) { c.Internal = true }, "internal network never routes"},
		{"overlaps the subnet", func(c *gateway.Config) { c.Routes = []netip.Prefix{netip.MustParsePrefix("10.240.0.0/16")} }, "outside subnet"},
		{"not canonical", func(c *gateway.Config) { c.Routes = []netip.Prefix{netip.MustParsePrefix("10.99.0.1/24")} }, "canonical"},
		{"other family", func(c *gateway.Config) { c.Routes = []netip.Prefix{netip.MustParsePrefix("fd00:99::/64")} }, "IPv4 prefix"},
		{"no next hop", func(c *gateway.Config) { c.NextHop = netip.Addr{} }, "next hop"},
		{"next hop is the gateway", func(c *gateway.Config) { c.NextHop = routeGW }, "other than the gateway"},
		{"no next-hop MAC", func(c *gateway.Config) { c.NextHopMAC = vswitch.MAC{} }, "unicast MAC"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sw := vswitch.New(vswitch.Config{})
			defer sw.Close()
			cfg := base
			c.edit(&cfg)
			_, err := gateway.New(sw, cfg)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want one saying %q", err, c.want)
			}
			if len(sw.Links()) != 0 {
				t.Fatal("a refused gateway left a port on the switch")
			}
		})
	}
}

// bareRoutedNet is a routed network with no netstack host on it: ep and
// hop are in-memory ports, hop's frames counted and, unless discard, kept.
func bareRoutedNet(tb testing.TB, discard bool) (gw *gateway.Gateway, ep, hop *porttest.Port) {
	tb.Helper()
	sw := vswitch.New(vswitch.Config{Name: "web"})
	tb.Cleanup(func() { sw.Close() })
	gw, err := gateway.New(sw, gateway.Config{Network: "web", Subnet: routeSubnet, Addr: routeGW, MAC: routeGWMAC,
		Routes: []netip.Prefix{remoteNet}, NextHop: hopAddr, NextHopMAC: hopMAC})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(gw.Close)
	hop, ep = porttest.New("host-if", 1500), porttest.New("ep", 1500)
	hop.Discard = discard
	for _, p := range []*porttest.Port{hop, ep} {
		if _, err := sw.Attach(p, vswitch.AttachOptions{}); err != nil {
			tb.Fatal(err)
		}
	}
	// hop speaks once, so the switch knows where its MAC is.
	if err := hop.Inject(ipFrame(vswitch.Broadcast, hopMAC, hopAddr, netip.MustParseAddr("10.240.0.200"), 64)); err != nil {
		tb.Fatal(err)
	}
	return gw, ep, hop
}

// Forwarding a routed packet allocates nothing once warm.
func TestRoutedForwardDoesNotAllocate(t *testing.T) {
	gw, ep, hop := bareRoutedNet(t, true)
	frame := ipFrame(routeGWMAC, vswitch.MAC{0x02, 0x42, 10, 240, 0, 9}, netip.MustParseAddr("10.240.0.9"), remoteHost, 64)
	for range 10 {
		if err := ep.Inject(frame); err != nil {
			t.Fatal(err)
		}
	}
	before := hop.Written()
	if n := testing.AllocsPerRun(1000, func() { ep.Inject(frame) }); n != 0 {
		t.Errorf("forwarding a routed packet allocates %.1f times", n)
	}
	if got := hop.Written() - before; got < 1000 {
		t.Fatalf("host interface got %d of the 1001 routed packets", got)
	}
	if st := gw.RouteStats(); st.Forwarded < 1000 {
		t.Fatalf("route stats %+v", st)
	}
}

// Whatever an endpoint sends to the gateway, the gateway does not panic,
// and a packet it routes reaches the host interface as the endpoint sent
// it but for the MACs, one hop less and, for IPv4, the header checksum
// updated to match.
func FuzzRoutedFrames(f *testing.F) {
	src := netip.MustParseAddr("10.240.0.9")
	f.Add(ipFrame(routeGWMAC, hopMAC, src, remoteHost, 64)[12:])
	f.Add(ipFrame(routeGWMAC, hopMAC, src, remoteHost, 1)[12:])
	f.Add(ipFrame(routeGWMAC, hopMAC, src, remoteHost, 2)[12:])
	f.Add(ipFrame(routeGWMAC, hopMAC, src, netip.MustParseAddr("10.240.0.3"), 64)[12:])
	v6 := make([]byte, 2+40+8)
	v6[0], v6[1], v6[2] = 0x86, 0xdd, 0x60
	v6[2+7] = 3
	f.Add(v6)
	f.Add([]byte{0x08, 0x00, 0x45})
	gw, ep, hop := bareRoutedNet(f, false)
	epMAC := vswitch.MAC{0x02, 0x42, 10, 240, 0, 9}
	f.Fuzz(func(t *testing.T, rest []byte) {
		frame := make([]byte, 12+len(rest))
		copy(frame[0:6], routeGWMAC[:])
		copy(frame[6:12], epMAC[:])
		copy(frame[12:], rest)
		hop.Take()
		before := gw.RouteStats().Forwarded
		if err := ep.Inject(frame); err != nil {
			t.Fatal(err)
		}
		if gw.RouteStats().Forwarded == before {
			return
		}
		want := append([]byte(nil), frame...)
		copy(want[0:6], hopMAC[:])
		copy(want[6:12], routeGWMAC[:])
		ip := want[14:]
		okSum := true
		if want[12] == 0x08 {
			// The checksum is checked, and recomputed, only where the
			// header length is sane; elsewhere it is left out of the
			// comparison.
			ihl := int(ip[0]&0xf) * 4
			okSum = ihl >= header.IPv4MinimumSize && ihl <= len(ip) && header.IPv4(frame[14:]).IsChecksumValid()
			ip[8]--
			if okSum {
				h := header.IPv4(ip)
				h.SetChecksum(0)
				h.SetChecksum(^h.CalculateChecksum())
			}
		} else {
			ip[7]--
		}
		for _, got := range hop.Take() {
			g := got.Data
			if !okSum && len(g) == len(want) && len(g) >= 26 { // a wrong checksum stays wrong: compare the rest
				g = append(append([]byte(nil), g[:24]...), want[24:26]...)
				g = append(g, got.Data[26:]...)
			}
			if string(g) == string(want) {
				if okSum && want[12] == 0x08 && !header.IPv4(got.Data[14:]).IsChecksumValid() {
					t.Fatalf("forwarded with a wrong header checksum: %x", got.Data)
				}
				return
			}
		}
		t.Fatalf("the gateway counted a routed packet, but the host interface did not get\n%x", want)
	})
}

// IPv6: a routed packet goes with its hop limit one lower; one with a
// hop limit of 1 is answered with ICMPv6 time exceeded from the gateway.
func TestRoutedIPv6(t *testing.T) {
	subnet, gwAddr := netip.MustParsePrefix("fd00:240::/64"), netip.MustParseAddr("fd00:240::1")
	remote := netip.MustParseAddr("fd00:99::7")
	sw := vswitch.New(vswitch.Config{Name: "v6"})
	t.Cleanup(func() { sw.Close() })
	gw, err := gateway.New(sw, gateway.Config{Network: "v6", Subnet: subnet, Addr: gwAddr, MAC: routeGWMAC,
		Routes: []netip.Prefix{netip.MustParsePrefix("fd00:99::/64")}, NextHop: netip.MustParseAddr("fd00:240::fe"), NextHopMAC: hopMAC})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	hop, ep := porttest.New("host-if", 1500), porttest.New("ep", 1500)
	for _, p := range []*porttest.Port{hop, ep} {
		if _, err := sw.Attach(p, vswitch.AttachOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	epMAC, epAddr := vswitch.MAC{0x02, 0x42, 0, 0, 0, 9}, netip.MustParseAddr("fd00:240::9")
	frame := func(hops uint8) []byte {
		b := make([]byte, 14+40+8)
		copy(b[0:6], routeGWMAC[:])
		copy(b[6:12], epMAC[:])
		b[12], b[13] = 0x86, 0xdd
		header.IPv6(b[14:]).Encode(&header.IPv6Fields{PayloadLength: 8, TransportProtocol: 17, HopLimit: hops,
			SrcAddr: tcpip.AddrFrom16(epAddr.As16()), DstAddr: tcpip.AddrFrom16(remote.As16())})
		header.UDP(b[54:]).Encode(&header.UDPFields{SrcPort: 4000, DstPort: 5000, Length: 8})
		return b
	}
	if err := ep.Inject(frame(64)); err != nil {
		t.Fatal(err)
	}
	var fwd []byte
	for _, f := range hop.Take() {
		if vswitch.MAC(f.Data[6:12]) == routeGWMAC && f.Data[12] == 0x86 {
			fwd = f.Data
		}
	}
	if fwd == nil || vswitch.MAC(fwd[0:6]) != hopMAC || header.IPv6(fwd[14:]).HopLimit() != 63 ||
		netip.AddrFrom16(header.IPv6(fwd[14:]).SourceAddress().As16()) != epAddr {
		t.Fatalf("forwarded IPv6 frame %x: want it at the host interface from %s with hop limit 63", fwd, epAddr)
	}
	if err := ep.Inject(frame(1)); err != nil {
		t.Fatal(err)
	}
	var icmp header.ICMPv6
	for _, f := range ep.Take() {
		ip := header.IPv6(f.Data[14:])
		if f.Data[12] == 0x86 && len(ip) >= 48 && ip.NextHeader() == 58 && netip.AddrFrom16(ip.SourceAddress().As16()) == gwAddr {
			icmp = header.ICMPv6(ip.Payload())
		}
	}
	if icmp == nil || icmp.Type() != header.ICMPv6TimeExceeded || icmp.Code() != 0 {
		t.Fatalf("answer to hop limit 1: %x, want ICMPv6 time exceeded (3/0) from the gateway", icmp)
	}
	if st := gw.RouteStats(); st.Forwarded != 1 || st.TTLExceeded != 1 {
		t.Errorf("route stats %+v, want one forwarded, one exceeded", st)
	}
}

// A gateway made with a next hop and no routes routes nothing until
// SetRoutes gives it some, and stops when they are taken away: the
// packet for the remote subnet goes to egress (a host socket the test's
// dialer refuses) before, to the host interface after, to egress again
// at the end. Bad route sets are refused and change nothing.
func TestSetRoutes(t *testing.T) {
	sw := vswitch.New(vswitch.Config{Name: "web"})
	defer sw.Close()
	dials := make(chan string, 16)
	refuse := func(_ context.Context, network, addr string) (net.Conn, error) {
		dials <- network + " " + addr
		return nil, errors.New("the test dials nowhere")
	}
	gw, err := gateway.New(sw, gateway.Config{Network: "web", Subnet: routeSubnet, Addr: routeGW, MAC: routeGWMAC,
		NextHop: hopAddr, NextHopMAC: hopMAC, Egress: gateway.EgressConfig{Dial: refuse}, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	hop, ep := porttest.New("host-if", 1500), porttest.New("ep", 1500)
	for _, p := range []*porttest.Port{hop, ep} {
		if _, err := sw.Attach(p, vswitch.AttachOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := hop.Inject(ipFrame(vswitch.Broadcast, hopMAC, hopAddr, netip.MustParseAddr("10.240.0.200"), 64)); err != nil {
		t.Fatal(err)
	}
	epMAC := vswitch.MAC{0x02, 0x42, 10, 240, 0, 9}
	frame := ipFrame(routeGWMAC, epMAC, netip.MustParseAddr("10.240.0.9"), remoteHost, 64)
	toEgress := func(when string) {
		t.Helper()
		if err := ep.Inject(frame); err != nil {
			t.Fatal(err)
		}
		select {
		case d := <-dials:
			if d != "udp "+remoteHost.String()+":5000" {
				t.Fatalf("%s: egress dialled %q", when, d)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the packet for %s went neither to egress nor anywhere seen (route stats %+v)", when, remoteHost, gw.RouteStats())
		}
	}

	toEgress("before SetRoutes")
	if st := gw.RouteStats(); st.Forwarded != 0 {
		t.Fatalf("routed %d packets with no routes", st.Forwarded)
	}
	if err := gw.SetRoutes([]netip.Prefix{remoteNet}); err != nil {
		t.Fatal(err)
	}
	// Count only the gateway's frames for remoteHost: the switch floods
	// the endpoint's own frame too while it has not learned the
	// gateway's MAC.
	routedToHop := func() int {
		n := 0
		for _, f := range hop.Take() {
			b := f.Data
			if len(b) >= 34 && vswitch.MAC(b[6:12]) == routeGWMAC && b[12] == 0x08 && b[13] == 0x00 && netip.AddrFrom4([4]byte(b[30:34])) == remoteHost {
				n++
			}
		}
		return n
	}
	routedToHop()
	if err := ep.Inject(frame); err != nil {
		t.Fatal(err)
	}
	if st, n := gw.RouteStats(), routedToHop(); st.Forwarded != 1 || n != 1 {
		t.Fatalf("after SetRoutes: route stats %+v, host interface got %d packets for %s; want the packet routed to it", st, n, remoteHost)
	}
	if got := gw.Routes(); len(got) != 1 || got[0] != remoteNet {
		t.Errorf("Routes() = %v, want [%s]", got, remoteNet)
	}

	for _, bad := range [][]netip.Prefix{
		{netip.MustParsePrefix("10.240.0.0/16")}, // overlaps the subnet
		{netip.MustParsePrefix("10.98.0.1/24")},  // not canonical
		{netip.MustParsePrefix("fd00:99::/64")},  // other family
	} {
		if err := gw.SetRoutes(bad); err == nil || !strings.Contains(err.Error(), "outside subnet") {
			t.Errorf("SetRoutes(%v): %v, want a refusal", bad, err)
		}
	}
	if got := gw.Routes(); len(got) != 1 || got[0] != remoteNet {
		t.Errorf("a refused SetRoutes changed the routes to %v", got)
	}

	if err := gw.SetRoutes(nil); err != nil {
		t.Fatal(err)
	}
	toEgress("after SetRoutes(nil)")
	if st := gw.RouteStats(); st.Forwarded != 1 {
		t.Errorf("route stats %+v after the routes were removed, want still 1 forwarded", st)
	}

	// A gateway made without a next hop cannot route.
	sw2 := vswitch.New(vswitch.Config{})
	defer sw2.Close()
	plain, err := gateway.New(sw2, gateway.Config{Network: "plain", Subnet: routeSubnet, Addr: routeGW, MAC: routeGWMAC})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if err := plain.SetRoutes([]netip.Prefix{remoteNet}); err == nil || !strings.Contains(err.Error(), "no next hop") {
		t.Errorf("SetRoutes on a gateway without a next hop: %v, want a refusal", err)
	}
}
