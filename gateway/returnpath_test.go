package gateway_test

import (
	"context"
	"io"
	"net/netip"
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

// outsider is a sender outside every routed subnet (the other host's own
// address, a VPC client); the tests only play it, nothing is sent to it:
// every egress flow is refused.
var outsider = netip.MustParseAddr("192.0.2.7")

// returnNet is a routed network whose host interface (hop, played by the
// test) is attached through HostInterfacePort, with a netstack endpoint a
// and an in-memory endpoint ep.
type returnNet struct {
	sw  *vswitch.Switch
	gw  *gateway.Gateway
	hop *porttest.Port
	ep  *porttest.Port
	a   *vnettest.Host
}

var (
	epMAC  = vswitch.MAC{0x02, 0x42, 10, 240, 0, 9}
	epAddr = netip.MustParseAddr("10.240.0.9")
)

func newReturnNet(t testing.TB, ret gateway.ReturnConfig, discard bool) *returnNet {
	t.Helper()
	log := zaptest.NewLogger(t)
	n := &returnNet{sw: vswitch.New(vswitch.Config{Name: "web", Logger: log})}
	t.Cleanup(func() { n.sw.Close() })
	gw, err := gateway.New(n.sw, gateway.Config{Network: "web", Subnet: routeSubnet, Addr: routeGW, MAC: routeGWMAC,
		Routes: []netip.Prefix{remoteNet}, NextHop: hopAddr, NextHopMAC: hopMAC, Return: ret, Logger: log,
		Refuse: func(netip.AddrPort) bool { return true }, Egress: gateway.EgressConfig{NoPing: true}})
	if err != nil {
		t.Fatal(err)
	}
	n.gw = gw
	t.Cleanup(gw.Close)
	n.hop, n.ep = porttest.New("host-if", 1500), porttest.New("ep", 1500)
	n.hop.Discard, n.ep.Discard = discard, discard
	if _, err := n.sw.Attach(gw.HostInterfacePort(n.hop), vswitch.AttachOptions{LockMAC: hopMAC}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.sw.Attach(n.ep, vswitch.AttachOptions{}); err != nil {
		t.Fatal(err)
	}
	// ep speaks once, so the switch knows where its MAC is.
	if err := n.ep.Inject(ipFrame(vswitch.Broadcast, epMAC, epAddr, netip.MustParseAddr("10.240.0.200"), 64)); err != nil {
		t.Fatal(err)
	}
	n.a, err = vnettest.NewHost(n.sw, vnettest.HostConfig{Name: "a", Addr: netip.MustParsePrefix("10.240.0.2/24"), Gateway: routeGW})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.a.Close)
	return n
}

// echoRequest builds the frame the host kernel delivers on the network
// for a ping from src to dst, an endpoint at dstMAC.
func echoRequest(dstMAC vswitch.MAC, src, dst netip.Addr, seq uint16) []byte {
	b := make([]byte, 14+20+8+16)
	copy(b[0:6], dstMAC[:])
	copy(b[6:12], hopMAC[:])
	b[12], b[13] = 0x08, 0x00
	ip := header.IPv4(b[14:])
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(len(b) - 14), TTL: 62, Protocol: 1,
		SrcAddr: tcpip.AddrFrom4(src.As4()), DstAddr: tcpip.AddrFrom4(dst.As4())})
	ip.SetChecksum(^ip.CalculateChecksum())
	icmp := header.ICMPv4(ip.Payload())
	icmp.SetType(header.ICMPv4Echo)
	icmp.SetIdent(0x4242)
	icmp.SetSequence(seq)
	copy(icmp[8:], "switchyard-route")
	icmp.SetChecksum(^checksum.Checksum(icmp, 0))
	return b
}

// waitFrame waits for a frame on p that match accepts.
func waitFrame(t *testing.T, p *porttest.Port, what string, match func([]byte) bool) []byte {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		for _, f := range p.Take() {
			if match(f.Data) {
				return f.Data
			}
		}
		select {
		case <-p.Notify():
		case <-deadline:
			t.Fatalf("%s: not seen on %s", what, p.Info().Name)
		}
	}
}

// isIPv4 reports whether b is an IPv4 frame from src to dst.
func isIPv4(b []byte, src, dst netip.Addr) bool {
	if len(b) < 34 || b[12] != 0x08 || b[13] != 0x00 {
		return false
	}
	ip := header.IPv4(b[14:])
	return netip.AddrFrom4(ip.SourceAddress().As4()) == src && netip.AddrFrom4(ip.DestinationAddress().As4()) == dst
}

// A sender outside the routed subnets pings an endpoint through the host
// interface: the reply goes back out of the host interface, from the
// endpoint's own address, one hop less, and the return path counts it.
// Before the sender ever came in, a packet to it does not go there.
func TestReturnPathRepliesToHostInterface(t *testing.T) {
	n := newReturnNet(t, gateway.ReturnConfig{}, false)
	// Before: ep's datagram to the outsider takes the egress (refused).
	if err := n.ep.Inject(ipFrame(routeGWMAC, epMAC, epAddr, outsider, 64)); err != nil {
		t.Fatal(err)
	}
	if st := n.gw.ReturnStats(); st.Forwarded != 0 || st.Learned != 0 {
		t.Fatalf("return stats %+v before the outsider sent anything, want nothing", st)
	}
	for _, f := range n.hop.Take() {
		if isIPv4(f.Data, epAddr, outsider) {
			t.Fatal("a packet to a sender that never came in went to the host interface")
		}
	}

	if err := n.hop.Inject(echoRequest(n.a.MAC(), outsider, n.a.Addr(), 1)); err != nil {
		t.Fatal(err)
	}
	reply := waitFrame(t, n.hop, "the endpoint's echo reply to the outsider", func(b []byte) bool { return isIPv4(b, n.a.Addr(), outsider) })
	if dst, src := vswitch.MAC(reply[0:6]), vswitch.MAC(reply[6:12]); dst != hopMAC || src != routeGWMAC {
		t.Errorf("reply frame %s → %s, want gateway %s → host interface %s", src, dst, routeGWMAC, hopMAC)
	}
	ip := header.IPv4(reply[14:])
	if ip.TTL() != 63 || !ip.IsChecksumValid() {
		t.Errorf("reply TTL %d (checksum valid %v), want 63: the endpoint's 64, one hop less", ip.TTL(), ip.IsChecksumValid())
	}
	if icmp := header.ICMPv4(ip.Payload()); icmp.Type() != header.ICMPv4EchoReply || icmp.Sequence() != 1 {
		t.Errorf("reply ICMP type %d seq %d, want echo reply 1", icmp.Type(), icmp.Sequence())
	}
	st := n.gw.ReturnStats()
	if st.Senders != 1 || st.Learned != 1 || st.Forwarded == 0 {
		t.Errorf("return stats %+v, want one sender, learned once, the reply forwarded", st)
	}
	if rs := n.gw.RouteStats(); rs.Forwarded != 0 {
		t.Errorf("route stats %+v: the reply counted as routed, want it on the return path only", rs)
	}
}

// An endpoint cannot poison the table: packets from any port but the host
// interface's, whatever their source address, add nothing, and replies to
// that address do not go to the host interface.
func TestReturnPathNotFedByEndpoints(t *testing.T) {
	n := newReturnNet(t, gateway.ReturnConfig{}, false)
	spoofed := netip.MustParseAddr("198.51.100.9")
	// ep claims to be the outsider, to the gateway and to endpoint a.
	for _, dst := range []struct {
		mac  vswitch.MAC
		addr netip.Addr
	}{{routeGWMAC, outsider}, {n.a.MAC(), n.a.Addr()}} {
		if err := n.ep.Inject(ipFrame(dst.mac, epMAC, spoofed, dst.addr, 64)); err != nil {
			t.Fatal(err)
		}
	}
	// A frame whose source MAC is not the host interface's, from its port.
	f := echoRequest(n.a.MAC(), spoofed, n.a.Addr(), 1)
	copy(f[6:12], epMAC[:])
	if err := n.hop.Inject(f); err != nil {
		t.Fatal(err)
	}
	if err := n.ep.Inject(ipFrame(routeGWMAC, epMAC, epAddr, spoofed, 64)); err != nil {
		t.Fatal(err)
	}
	// A known sender to compare with, through the host interface.
	if err := n.hop.Inject(echoRequest(n.a.MAC(), outsider, n.a.Addr(), 2)); err != nil {
		t.Fatal(err)
	}
	waitFrame(t, n.hop, "the reply to the real sender", func(b []byte) bool { return isIPv4(b, n.a.Addr(), outsider) })
	if st := n.gw.ReturnStats(); st.Senders != 1 || st.Learned != 1 {
		t.Errorf("return stats %+v, want only the sender that came through the host interface", st)
	}
	for _, f := range n.hop.Take() {
		if isIPv4(f.Data, epAddr, spoofed) {
			t.Fatalf("a packet to %s, which only an endpoint claimed, went to the host interface", spoofed)
		}
	}
}

// A connection the gateway's netstack opens from a client's own address
// (a published port with the real source) stays the netstack's, though the
// client's address also came in through the host interface: the
// endpoint's replies reach the netstack, not the host interface.
func TestReturnPathLeavesNetstackFlows(t *testing.T) {
	n := newReturnNet(t, gateway.ReturnConfig{}, false)
	if err := n.hop.Inject(echoRequest(n.a.MAC(), outsider, n.a.Addr(), 1)); err != nil {
		t.Fatal(err)
	}
	waitFrame(t, n.hop, "the reply to the sender", func(b []byte) bool { return isIPv4(b, n.a.Addr(), outsider) })

	ln, err := n.a.ListenTCP(80)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Write([]byte(c.RemoteAddr().String()))
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	client := netip.AddrPortFrom(outsider, 40000)
	c, err := n.gw.Dialer(true).DialTCP(ctx, client, netip.AddrPortFrom(n.a.Addr(), 80))
	if err != nil {
		t.Fatalf("published-port connection from %s: %v (the replies went elsewhere?)", client, err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil || string(got) != client.String() {
		t.Fatalf("the endpoint saw %q (%v), want the client's own %s", got, err, client)
	}
	for _, f := range n.hop.Take() {
		b := f.Data
		if isIPv4(b, n.a.Addr(), outsider) && header.IPv4(b[14:]).Protocol() == 6 {
			t.Fatalf("a segment of the netstack's connection went to the host interface")
		}
	}
}

// The table is bounded: a full table evicts (counted) and keeps its size;
// an address no packet refreshes expires, and replies to it no longer go
// to the host interface.
func TestReturnPathBoundedAndExpires(t *testing.T) {
	n := newReturnNet(t, gateway.ReturnConfig{MaxSenders: 4, Idle: 300 * time.Millisecond}, false)
	for i := range 6 {
		src := netip.AddrFrom4([4]byte{192, 0, 2, byte(10 + i)})
		if err := n.hop.Inject(echoRequest(n.a.MAC(), src, n.a.Addr(), uint16(i))); err != nil {
			t.Fatal(err)
		}
	}
	if st := n.gw.ReturnStats(); st.Senders != 4 || st.Learned != 6 || st.Evicted+st.Expired != 2 {
		t.Errorf("return stats %+v, want 4 senders of 6 learned, 2 evicted", st)
	}
	deadline := time.Now().Add(10 * time.Second)
	for n.gw.ReturnStats().Senders != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("return stats %+v: the senders did not expire", n.gw.ReturnStats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := n.gw.ReturnStats(); st.Expired < 4 {
		t.Errorf("return stats %+v, want the 4 expiries counted", st)
	}
	n.hop.Take()
	last := netip.AddrFrom4([4]byte{192, 0, 2, 15})
	if err := n.ep.Inject(ipFrame(routeGWMAC, epMAC, epAddr, last, 64)); err != nil {
		t.Fatal(err)
	}
	for _, f := range n.hop.Take() {
		if isIPv4(f.Data, epAddr, last) {
			t.Fatal("a packet to an expired sender went to the host interface")
		}
	}
}

// Learning a known sender and sending a reply back allocate nothing once
// warm.
func TestReturnPathDoesNotAllocate(t *testing.T) {
	n := newReturnNet(t, gateway.ReturnConfig{}, true)
	in := ipFrame(epMAC, hopMAC, outsider, epAddr, 64)
	out := ipFrame(routeGWMAC, epMAC, epAddr, outsider, 64)
	for range 10 {
		n.hop.Inject(in)
		n.ep.Inject(out)
	}
	before := n.gw.ReturnStats().Forwarded
	if a := testing.AllocsPerRun(1000, func() { n.hop.Inject(in); n.ep.Inject(out) }); a != 0 {
		t.Errorf("the return path allocates %.1f times per packet pair", a)
	}
	if got := n.gw.ReturnStats().Forwarded - before; got < 1000 {
		t.Fatalf("%d of the 1001 replies went back to the host interface", got)
	}
}

// Whatever the host interface brings in, the gateway does not panic, and
// it remembers at most the one source address the frame carries, and
// only a global unicast one from outside the network and its routes.
func FuzzReturnPathFromHost(f *testing.F) {
	f.Add(ipFrame(epMAC, hopMAC, outsider, epAddr, 64)[12:])
	f.Add(ipFrame(epMAC, hopMAC, remoteHost, epAddr, 64)[12:])
	f.Add(ipFrame(epMAC, hopMAC, netip.MustParseAddr("10.240.0.254"), epAddr, 64)[12:])
	f.Add(ipFrame(epMAC, hopMAC, netip.MustParseAddr("224.0.0.1"), epAddr, 64)[12:])
	v6 := make([]byte, 2+40+8)
	v6[0], v6[1], v6[2] = 0x86, 0xdd, 0x60
	copy(v6[2+8:], netip.MustParseAddr("2001:db8::7").AsSlice())
	f.Add(v6)
	f.Add([]byte{0x08, 0x00, 0x45})
	f.Add([]byte{0x08, 0x06})
	n := newReturnNet(f, gateway.ReturnConfig{MaxSenders: 1 << 20}, true)
	f.Fuzz(func(t *testing.T, rest []byte) {
		frame := make([]byte, 12+len(rest))
		copy(frame[0:6], epMAC[:])
		copy(frame[6:12], hopMAC[:])
		copy(frame[12:], rest)
		before := n.gw.ReturnStats().Learned
		if err := n.hop.Inject(frame); err != nil {
			t.Fatal(err)
		}
		learned := n.gw.ReturnStats().Learned - before
		if learned == 0 {
			return
		}
		if learned > 1 {
			t.Fatalf("one frame added %d senders", learned)
		}
		var src netip.Addr
		switch {
		case len(rest) >= 2+20 && rest[0] == 0x08 && rest[1] == 0x00:
			src = netip.AddrFrom4([4]byte(rest[2+12 : 2+16]))
		case len(rest) >= 2+40 && rest[0] == 0x86 && rest[1] == 0xdd:
			src = netip.AddrFrom16([16]byte(rest[2+8 : 2+24]))
		default:
			t.Fatalf("a sender learned from a frame that is no IP packet: %x", rest)
		}
		if !src.IsGlobalUnicast() || routeSubnet.Contains(src) || remoteNet.Contains(src) {
			t.Fatalf("learned sender %s: not a global unicast address outside the network and its routes", src)
		}
	})
}

// udp6Frame builds an Ethernet frame carrying an IPv6 UDP datagram.
func udp6Frame(dstMAC, srcMAC vswitch.MAC, src, dst netip.Addr, hops uint8) []byte {
	b := make([]byte, 14+40+8+4)
	copy(b[0:6], dstMAC[:])
	copy(b[6:12], srcMAC[:])
	b[12], b[13] = 0x86, 0xdd
	ip := header.IPv6(b[14:])
	ip.Encode(&header.IPv6Fields{PayloadLength: 12, TransportProtocol: header.UDPProtocolNumber, HopLimit: hops,
		SrcAddr: tcpip.AddrFrom16(src.As16()), DstAddr: tcpip.AddrFrom16(dst.As16())})
	udp := header.UDP(ip.Payload())
	udp.Encode(&header.UDPFields{SrcPort: 4000, DstPort: 5000, Length: 12})
	copy(udp[8:], "ping")
	return b
}

// IPv6: a sender that came in through the host interface gets the
// endpoint's packets back there with the hop limit one lower; a packet to
// it that comes from the host interface itself is a loop, dropped and
// counted.
func TestReturnPathIPv6AndLoop(t *testing.T) {
	subnet, gwAddr, hop6 := netip.MustParsePrefix("fd00:240::/64"), netip.MustParseAddr("fd00:240::1"), netip.MustParseAddr("fd00:240::fe")
	sender, ep6 := netip.MustParseAddr("2001:db8::7"), netip.MustParseAddr("fd00:240::9")
	sw := vswitch.New(vswitch.Config{Name: "v6"})
	t.Cleanup(func() { sw.Close() })
	gw, err := gateway.New(sw, gateway.Config{Network: "v6", Subnet: subnet, Addr: gwAddr, MAC: routeGWMAC,
		NextHop: hop6, NextHopMAC: hopMAC, Refuse: func(netip.AddrPort) bool { return true }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	hop, ep := porttest.New("host-if", 1500), porttest.New("ep", 1500)
	if _, err := sw.Attach(gw.HostInterfacePort(hop), vswitch.AttachOptions{LockMAC: hopMAC}); err != nil {
		t.Fatal(err)
	}
	if _, err := sw.Attach(ep, vswitch.AttachOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := hop.Inject(udp6Frame(epMAC, hopMAC, sender, ep6, 62)); err != nil {
		t.Fatal(err)
	}
	hop.Take()
	if err := ep.Inject(udp6Frame(routeGWMAC, epMAC, ep6, sender, 64)); err != nil {
		t.Fatal(err)
	}
	var got []byte
	for _, f := range hop.Take() {
		if b := f.Data; len(b) >= 54 && b[12] == 0x86 && netip.AddrFrom16([16]byte(b[38:54])) == sender {
			got = b
		}
	}
	if got == nil {
		t.Fatalf("the endpoint's packet to %s did not go back to the host interface (return stats %+v)", sender, gw.ReturnStats())
	}
	if ip := header.IPv6(got[14:]); ip.HopLimit() != 63 || netip.AddrFrom16(ip.SourceAddress().As16()) != ep6 {
		t.Errorf("sent back from %s with hop limit %d, want from %s with 63", ip.SourceAddress(), ip.HopLimit(), ep6)
	}
	if err := hop.Inject(udp6Frame(routeGWMAC, hopMAC, ep6, sender, 64)); err != nil {
		t.Fatal(err)
	}
	if st, rs := gw.ReturnStats(), gw.RouteStats(); st.Forwarded != 1 || st.Senders != 1 || rs.Looped != 1 {
		t.Errorf("return stats %+v, route stats %+v: want one sender, one packet sent back, one loop", st, rs)
	}
}

// The cost of the gateway's forward per packet from an endpoint: to a
// routed subnet, and to a sender of the return path (a table lookup and
// the netstack's flow lookup more), with the host interface's frame that
// refreshes the sender.
func BenchmarkReturnPath(b *testing.B) {
	n := newReturnNet(b, gateway.ReturnConfig{}, true)
	in := ipFrame(epMAC, hopMAC, outsider, epAddr, 64)
	for _, c := range []struct {
		name string
		out  []byte
		host bool
	}{
		{"routed", ipFrame(routeGWMAC, epMAC, epAddr, remoteHost, 64), false},
		{"return", ipFrame(routeGWMAC, epMAC, epAddr, outsider, 64), false},
		{"return+refresh", ipFrame(routeGWMAC, epMAC, epAddr, outsider, 64), true},
	} {
		b.Run(c.name, func(b *testing.B) {
			n.hop.Inject(in)
			b.ReportAllocs()
			b.SetBytes(int64(len(c.out)))
			for b.Loop() {
				if c.host {
					n.hop.Inject(in)
				}
				n.ep.Inject(c.out)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
		})
	}
}

// Whatever an endpoint sends to a sender of the return path (the
// destination is forced to one; the rest, transport header included, is
// the fuzzer's), the gateway does not panic, and what it sends back
// reaches the host interface to that sender, one hop less.
func FuzzReturnPathReplies(f *testing.F) {
	sender6 := netip.MustParseAddr("2001:db8::7")
	f.Add(ipFrame(routeGWMAC, epMAC, epAddr, outsider, 64)[12:])
	f.Add(ipFrame(routeGWMAC, epMAC, epAddr, outsider, 1)[12:])
	f.Add(udp6Frame(routeGWMAC, epMAC, netip.MustParseAddr("fd00:240::9"), sender6, 64)[12:])
	f.Add([]byte{0x08, 0x00, 0x4f})
	n := newReturnNet(f, gateway.ReturnConfig{}, false)
	if err := n.hop.Inject(echoRequest(n.a.MAC(), outsider, n.a.Addr(), 1)); err != nil {
		f.Fatal(err)
	}
	if err := n.hop.Inject(udp6Frame(epMAC, hopMAC, sender6, netip.MustParseAddr("fd00:240::9"), 64)); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, rest []byte) {
		frame := make([]byte, 12+len(rest))
		copy(frame[0:6], routeGWMAC[:])
		copy(frame[6:12], epMAC[:])
		copy(frame[12:], rest)
		var want netip.Addr
		switch {
		case len(frame) >= 14+20 && frame[12] == 0x08 && frame[13] == 0x00:
			copy(frame[14+16:14+20], outsider.AsSlice())
			want = outsider
		case len(frame) >= 14+40 && frame[12] == 0x86 && frame[13] == 0xdd:
			copy(frame[14+24:14+40], sender6.AsSlice())
			want = sender6
		}
		n.hop.Take()
		before := n.gw.ReturnStats().Forwarded
		if err := n.ep.Inject(frame); err != nil {
			t.Fatal(err)
		}
		if n.gw.ReturnStats().Forwarded == before {
			return
		}
		for _, got := range n.hop.Take() {
			g := got.Data
			if len(g) != len(frame) || vswitch.MAC(g[0:6]) != hopMAC {
				continue
			}
			if want.Is4() && netip.AddrFrom4([4]byte(g[30:34])) == want && g[14+8] == frame[14+8]-1 {
				return
			}
			if want.Is6() && netip.AddrFrom16([16]byte(g[38:54])) == want && g[14+7] == frame[14+7]-1 {
				return
			}
		}
		t.Fatalf("counted as sent back, but the host interface did not get it one hop less: %x", frame)
	})
}
