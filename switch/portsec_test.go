package vswitch_test

import (
	"errors"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/testing/porttest"
)

var (
	boundMAC = mac(1)
	otherMAC = mac(7)
	gwMAC    = mac(0xfe)
	bound4   = netip.MustParseAddr("10.0.0.2")
	bound6   = netip.MustParseAddr("fd00::2")
	other4   = netip.MustParseAddr("10.0.0.3")
	other6   = netip.MustParseAddr("fd00::3")
	gw4      = netip.MustParseAddr("10.0.0.1")
	gw6      = netip.MustParseAddr("fd00::1")
	allNodes = netip.MustParseAddr("ff02::1")
	zero4    = netip.IPv4Unspecified()
	zero6    = netip.IPv6Unspecified()
)

func testBinding() *vswitch.Binding {
	return &vswitch.Binding{
		MAC:     boundMAC,
		Addrs:   []netip.Addr{bound4, bound6},
		Allowed: []netip.Prefix{netip.MustParsePrefix("10.9.0.0/24")},
	}
}

// boundFixture: p0 is an endpoint bound to testBinding, p1 the gateway
// (unbound).
func boundFixture(t *testing.T) *fixture {
	return newFixture(t, vswitch.Config{}, 2, vswitch.AttachOptions{Binding: testBinding()})
}

// passes sends b from p0 and reports whether it reached p1; if not, it
// checks the drop was counted under want.
func (f *fixture) passes(b []byte, want vswitch.DropReason) bool {
	f.t.Helper()
	before := f.links[0].Stats().RX.DropsBy
	f.inject(0, b)
	if n := len(f.ports[1].Take()); n == 1 {
		return true
	}
	after := f.links[0].Stats().RX.DropsBy
	for r := range after {
		d := after[r] - before[r]
		if (vswitch.DropReason(r) == want) != (d == 1) {
			f.t.Errorf("dropped with %s drops +%d, want one %s drop", vswitch.DropReason(r), d, want)
		}
	}
	return false
}

func TestPortSecurity(t *testing.T) {
	const pass = vswitch.DropReason(255)
	ns := header.ICMPv6NeighborSolicit
	na := header.ICMPv6NeighborAdvert
	cases := []struct {
		name  string
		frame []byte
		want  vswitch.DropReason
	}{
		{"ipv4 from own address", udp4(gwMAC, boundMAC, bound4, gw4, 1000, 80), pass},
		{"ipv4 from an allowed prefix", udp4(gwMAC, boundMAC, netip.MustParseAddr("10.9.0.77"), gw4, 1000, 80), pass},
		{"ipv4 from another endpoint's address", udp4(gwMAC, boundMAC, other4, gw4, 1000, 80), vswitch.DropSpoofedIP},
		{"ipv4 from another MAC", udp4(gwMAC, otherMAC, bound4, gw4, 1000, 80), vswitch.DropSpoofed},
		{"dhcp discover from 0.0.0.0", udp4(vswitch.Broadcast, boundMAC, zero4, netip.IPv4Unspecified(), 68, 67), pass},
		{"other udp from 0.0.0.0", udp4(gwMAC, boundMAC, zero4, gw4, 68, 53), vswitch.DropSpoofedIP},
		{"truncated ipv4", udp4(gwMAC, boundMAC, bound4, gw4, 1, 2)[:24], vswitch.DropMalformed},

		{"arp request for the gateway", arp(boundMAC, header.ARPRequest, boundMAC, bound4, gw4), pass},
		{"arp probe", arp(boundMAC, header.ARPRequest, boundMAC, zero4, bound4), pass},
		{"arp reply from 0.0.0.0", arp(boundMAC, header.ARPReply, boundMAC, zero4, gw4), vswitch.DropSpoofedARP},
		{"arp who-has gateway tell another endpoint", arp(boundMAC, header.ARPRequest, boundMAC, other4, gw4), vswitch.DropSpoofedARP},
		{"arp with another sender MAC", arp(boundMAC, header.ARPRequest, otherMAC, bound4, gw4), vswitch.DropSpoofedARP},
		{"truncated arp", arp(boundMAC, header.ARPRequest, boundMAC, bound4, gw4)[:30], vswitch.DropSpoofedARP},

		{"ipv6 from own address", icmp6(gwMAC, boundMAC, bound6, gw6, header.ICMPv6EchoRequest, make([]byte, 8), false), pass},
		{"ipv6 from own link-local", icmp6(gwMAC, boundMAC, eui64(boundMAC), gw6, header.ICMPv6EchoRequest, make([]byte, 8), false), pass},
		{"ipv6 from another endpoint's address", icmp6(gwMAC, boundMAC, other6, gw6, header.ICMPv6EchoRequest, make([]byte, 8), false), vswitch.DropSpoofedIP},
		{"ipv6 echo from ::", icmp6(gwMAC, boundMAC, zero6, gw6, header.ICMPv6EchoRequest, make([]byte, 8), false), vswitch.DropSpoofedIP},
		{"ns with own link-layer address", icmp6(vswitch.Broadcast, boundMAC, bound6, solicitedNode(gw6), ns, ndBody(gw6, 1, boundMAC), false), pass},
		{"ns with another link-layer address", icmp6(vswitch.Broadcast, boundMAC, bound6, solicitedNode(gw6), ns, ndBody(gw6, 1, otherMAC), false), vswitch.DropSpoofedND},
		{"ns from another endpoint's address", icmp6(vswitch.Broadcast, boundMAC, other6, solicitedNode(gw6), ns, ndBody(gw6, 1, boundMAC), false), vswitch.DropSpoofedIP},
		{"dad for own address", icmp6(vswitch.Broadcast, boundMAC, zero6, solicitedNode(bound6), ns, ndBody(bound6, 0, vswitch.MAC{}), false), pass},
		{"dad for another address", icmp6(vswitch.Broadcast, boundMAC, zero6, solicitedNode(other6), ns, ndBody(other6, 0, vswitch.MAC{}), false), vswitch.DropSpoofedND},
		{"mld report from ::", icmp6(vswitch.Broadcast, boundMAC, zero6, netip.MustParseAddr("ff02::16"), header.ICMPv6MulticastListenerV2Report, make([]byte, 4), false), pass},
		{"na for own address", icmp6(gwMAC, boundMAC, bound6, gw6, na, ndBody(bound6, 2, boundMAC), false), pass},
		{"na for another address", icmp6(vswitch.Broadcast, boundMAC, bound6, allNodes, na, ndBody(other6, 2, boundMAC), false), vswitch.DropSpoofedND},
		{"na for own address with another MAC", icmp6(vswitch.Broadcast, boundMAC, bound6, allNodes, na, ndBody(bound6, 2, otherMAC), false), vswitch.DropSpoofedND},
		{"na with a zero-length option", icmp6(gwMAC, boundMAC, bound6, gw6, na, append(ndBody(bound6, 0, vswitch.MAC{}), 2, 0, 0, 0, 0, 0, 0, 0), false), vswitch.DropSpoofedND},
		{"truncated na", icmp6(gwMAC, boundMAC, bound6, gw6, na, make([]byte, 8), false), vswitch.DropSpoofedND},
		{"router advertisement", icmp6(vswitch.Broadcast, boundMAC, eui64(boundMAC), allNodes, header.ICMPv6RouterAdvert, make([]byte, 12), false), vswitch.DropRAGuard},
		{"router advertisement behind hop-by-hop", icmp6(vswitch.Broadcast, boundMAC, eui64(boundMAC), allNodes, header.ICMPv6RouterAdvert, make([]byte, 12), true), vswitch.DropRAGuard},
		{"na behind hop-by-hop", icmp6(vswitch.Broadcast, boundMAC, bound6, allNodes, na, ndBody(other6, 2, boundMAC), true), vswitch.DropSpoofedND},

		{"vlan-tagged frame", vlanTagged(gwMAC, boundMAC), vswitch.DropEtherType},
	}
	f := boundFixture(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f.t = t
			got := f.passes(c.frame, c.want)
			if got != (c.want == pass) {
				t.Errorf("forwarded = %v, want %v", got, c.want == pass)
			}
		})
	}
}

// The binding changes while frames flow: a DHCP lease adds an address,
// removing the binding lifts every check.
func TestSetBinding(t *testing.T) {
	f := newFixture(t, vswitch.Config{}, 2, vswitch.AttachOptions{Binding: &vswitch.Binding{MAC: boundMAC}})
	fromLease := udp4(gwMAC, boundMAC, bound4, gw4, 1000, 80)
	if f.passes(fromLease, vswitch.DropSpoofedIP) {
		t.Fatal("frame from an address not yet leased was forwarded")
	}
	if !f.passes(udp4(vswitch.Broadcast, boundMAC, zero4, netip.IPv4Unspecified(), 68, 67), 0) {
		t.Fatal("DHCP discover before the lease was dropped")
	}
	if err := f.links[0].SetBinding(&vswitch.Binding{MAC: boundMAC, Addrs: []netip.Addr{bound4}}); err != nil {
		t.Fatal(err)
	}
	if !f.passes(fromLease, 0) {
		t.Fatal("frame from the leased address dropped")
	}
	if got := f.links[0].Binding(); got == nil || len(got.Addrs) != 1 || got.Addrs[0] != bound4 {
		t.Fatalf("Binding() = %+v", got)
	}
	if err := f.links[0].SetBinding(nil); err != nil {
		t.Fatal(err)
	}
	if !f.passes(udp4(gwMAC, otherMAC, other4, gw4, 1, 2), 0) {
		t.Fatal("unbound port still filtered")
	}
	if f.links[0].Binding() != nil {
		t.Fatal("Binding() after SetBinding(nil) is not nil")
	}
	if err := f.links[0].SetBinding(&vswitch.Binding{}); err == nil {
		t.Fatal("a binding without MAC was accepted")
	}
}

// An endpoint's MAC is a static entry: frames from it on another port do
// not move it, and it never ages out.
func TestBoundMACIsStatic(t *testing.T) {
	f := newFixture(t, vswitch.Config{Aging: time.Minute}, 3, vswitch.AttachOptions{Binding: testBinding()})
	// p1 (an unbound uplink) claims the endpoint's MAC.
	f.inject(1, frame(vswitch.Broadcast, boundMAC, 60))
	f.expect(0, 0, 0)
	if d := f.links[1].Stats().RX.DropsBy[vswitch.DropSpoofed]; d != 1 {
		t.Errorf("spoofed drops on p1 = %d, want 1", d)
	}
	f.inject(2, frame(boundMAC, mac(3), 60))
	f.expect(1, 0, 0)
	// Long after the aging time, with no frame from it, still known.
	f.clock.Advance(time.Hour)
	f.sw.RefreshClock()
	f.sw.Sweep()
	f.inject(2, frame(boundMAC, mac(3), 60))
	f.expect(1, 0, 0)
	var static bool
	for _, e := range f.sw.FDB() {
		static = static || (e.MAC == boundMAC && e.Static && e.Port == "p0")
	}
	if !static {
		t.Errorf("FDB() = %+v, want %s static on p0", f.sw.FDB(), boundMAC)
	}
	if l := f.sw.LinkOf(boundMAC); l != f.links[0] {
		t.Errorf("LinkOf(%s) = %v, want p0", boundMAC, l)
	}
	if l := f.sw.LinkOf(mac(99)); l != nil {
		t.Errorf("LinkOf(unknown) = %v, want nil", l.Name())
	}
	// Another port cannot be bound to the same MAC.
	if err := f.links[2].SetBinding(&vswitch.Binding{MAC: boundMAC}); !errors.Is(err, vswitch.ErrMACBound) {
		t.Fatalf("binding p2 to p0's MAC: err = %v, want ErrMACBound", err)
	}
	// Rebinding p0 to another MAC frees the old one.
	if err := f.links[0].SetBinding(&vswitch.Binding{MAC: mac(2)}); err != nil {
		t.Fatal(err)
	}
	f.inject(1, frame(vswitch.Broadcast, boundMAC, 60))
	f.expect(1, 0, 1)
	// Detaching frees the MAC too.
	f.sw.Detach(f.links[0])
	if err := f.links[2].SetBinding(&vswitch.Binding{MAC: mac(2)}); err != nil {
		t.Fatalf("binding p2 to a detached port's MAC: %v", err)
	}
	if err := f.links[0].SetBinding(&vswitch.Binding{MAC: mac(9)}); !errors.Is(err, vswitch.ErrDetached) {
		t.Fatalf("SetBinding on a detached link: err = %v, want ErrDetached", err)
	}
}

// A bound port with MAC spoofing may learn DefaultPortMACs MACs; frames
// from more are dropped. Unbound ports (uplinks) have no limit.
func TestLearningLimit(t *testing.T) {
	spoof := testBinding()
	spoof.MACSpoofing = true
	f := newFixture(t, vswitch.Config{}, 3, vswitch.AttachOptions{Binding: spoof}, vswitch.AttachOptions{},
		vswitch.AttachOptions{Binding: &vswitch.Binding{MAC: mac(3)}, MaxMACs: -1})
	for i := 0; i < 20; i++ {
		f.inject(0, udp4(vswitch.Broadcast, vswitch.MAC{2, 0, 0, 0, 1, byte(i)}, bound4, gw4, 1, 2))
	}
	if n := len(f.ports[1].Take()); n != vswitch.DefaultPortMACs {
		t.Errorf("%d frames forwarded from 20 MACs, want %d", n, vswitch.DefaultPortMACs)
	}
	if d := f.links[0].Stats().RX.DropsBy[vswitch.DropLearnLimit]; d != 20-vswitch.DefaultPortMACs {
		t.Errorf("learn_limit drops = %d, want %d", d, 20-vswitch.DefaultPortMACs)
	}
	f.got()
	// Known MACs still pass; the bound MAC is static and not counted.
	f.inject(0, udp4(vswitch.Broadcast, vswitch.MAC{2, 0, 0, 0, 1, 3}, bound4, gw4, 1, 2))
	f.inject(0, udp4(vswitch.Broadcast, boundMAC, bound4, gw4, 1, 2))
	f.expect(0, 2, 2)
	// Unbound p1: no limit.
	for i := 0; i < 100; i++ {
		f.inject(1, frame(vswitch.Broadcast, vswitch.MAC{2, 0, 0, 0, 2, byte(i)}, 60))
	}
	if got := f.got(); got[0] != 100 {
		t.Errorf("unbound port: %d of 100 frames forwarded", got[0])
	}
	// Aged and swept MACs make room again.
	f.clock.Advance(vswitch.DefaultAging + time.Second)
	f.sw.Sweep()
	f.inject(0, udp4(vswitch.Broadcast, vswitch.MAC{2, 0, 0, 0, 3, 1}, bound4, gw4, 1, 2))
	if n := len(f.ports[1].Take()); n != 1 {
		t.Errorf("after the sweep a new MAC was not forwarded")
	}
}

// The reproduction of issue 11 item 3: one port sends from 30,000 random
// MACs; a port attached afterwards still exchanges frames at once, whether
// the flood comes from a bound port (learning limit) or an unbound one
// that fills the table (static entries, full table forwards).
func TestMACFloodDoesNotBlackholeNewcomers(t *testing.T) {
	spoof := testBinding()
	spoof.MACSpoofing = true
	for _, c := range []struct {
		name string
		opts vswitch.AttachOptions
	}{
		{"bound port with MAC spoofing", vswitch.AttachOptions{Binding: spoof}},
		{"unbound port", vswitch.AttachOptions{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, vswitch.Config{}, 2, c.opts, vswitch.AttachOptions{})
			gwFrame := frame(vswitch.Broadcast, gwMAC, 60)
			f.inject(1, gwFrame) // the gateway, learned before the flood
			f.got()
			const flood = 30000
			for i := 0; i < flood; i++ {
				m := vswitch.MAC{0x02, 0xf1, 0, byte(i >> 16), byte(i >> 8), byte(i)}
				f.ports[0].Inject(udp4(vswitch.Broadcast, m, bound4, gw4, 1, 2))
			}
			f.ports[1].Take()
			if n := f.sw.Stats().FDBEntries; n > vswitch.DefaultMaxMACs+1 {
				t.Fatalf("%d FDB entries after the flood", n)
			}

			newcomer := porttest.New("new", 0)
			nb := &vswitch.Binding{MAC: mac(0x42), Addrs: []netip.Addr{other4}}
			ln, err := f.sw.Attach(newcomer, vswitch.AttachOptions{Binding: nb})
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 10; i++ {
				newcomer.Inject(udp4(gwMAC, nb.MAC, other4, gw4, 1000, 53))
				f.ports[1].Inject(udp4(nb.MAC, gwMAC, gw4, other4, 53, 1000))
			}
			if n := len(f.ports[1].Take()); n != 10 {
				t.Errorf("gateway got %d of the newcomer's 10 frames", n)
			}
			if n := len(newcomer.Take()); n != 10 {
				t.Errorf("newcomer got %d of the gateway's 10 frames", n)
			}
			// Frames to the newcomer go to it alone, not flooded.
			if n := len(f.ports[0].Take()); n != 0 {
				t.Errorf("the flooding port got %d frames meant for the newcomer", n)
			}
			if d := ln.Stats().RX.Drops; d != 0 {
				t.Errorf("newcomer's frames dropped: %+v", ln.Stats().RX.DropsBy)
			}
		})
	}
}

func TestBindingValidation(t *testing.T) {
	sw := vswitch.New(vswitch.Config{})
	defer sw.Close()
	for _, b := range []vswitch.Binding{
		{MAC: vswitch.Broadcast},
		{MAC: boundMAC, Addrs: []netip.Addr{{}}},
		{MAC: boundMAC, Addrs: []netip.Addr{allNodes}},
		{MAC: boundMAC, Allowed: []netip.Prefix{{}}},
	} {
		p := porttest.New("x", 0)
		if _, err := sw.Attach(p, vswitch.AttachOptions{Binding: &b}); err == nil {
			t.Errorf("binding %+v accepted", b)
		} else if !p.Closed() {
			t.Errorf("port refused for binding %+v was not closed", b)
		}
	}
}

// boundUnicastPair is knownUnicastPair with the sending port bound: the
// frame is IPv4 from the bound address to the other port's learned MAC.
func boundUnicastPair(tb testing.TB, size int) (*vswitch.Switch, *porttest.Port, *porttest.Port, []byte) {
	sw := vswitch.New(vswitch.Config{})
	a, b := porttest.New("a", 9000), porttest.New("b", 9000)
	a.Discard, b.Discard = true, true
	if _, err := sw.Attach(a, vswitch.AttachOptions{Binding: testBinding()}); err != nil {
		tb.Fatal(err)
	}
	if _, err := sw.Attach(b, vswitch.AttachOptions{}); err != nil {
		tb.Fatal(err)
	}
	b.Inject(frame(vswitch.Broadcast, gwMAC, 60))
	fr := udp4(gwMAC, boundMAC, bound4, gw4, 1000, 80)
	fr = append(fr, make([]byte, max(0, size-len(fr)))...)
	return sw, a, b, fr
}

// Port security must keep the steady-state path free of allocations.
func TestBoundPortDoesNotAllocate(t *testing.T) {
	sw, a, b, fr := boundUnicastPair(t, 1514)
	defer sw.Close()
	v6 := icmp6(gwMAC, boundMAC, bound6, gw6, header.ICMPv6NeighborAdvert, ndBody(bound6, 2, boundMAC), true)
	arpReq := arp(boundMAC, header.ARPRequest, boundMAC, bound4, gw4)
	before := b.Written()
	allocs := testing.AllocsPerRun(1000, func() {
		a.Inject(fr)
		a.Inject(v6)
		a.Inject(arpReq)
	})
	if allocs != 0 {
		t.Fatalf("forwarding from a bound port allocates %.1f times per run, want 0", allocs)
	}
	if b.Written()-before < 3000 {
		t.Fatalf("only %d frames forwarded during the run", b.Written()-before)
	}
}

// BenchmarkForwardBound compares the forwarding path with and without a
// binding on the ingress port.
func BenchmarkForwardBound(b *testing.B) {
	for _, c := range []struct {
		name string
		pair func(testing.TB, int) (*vswitch.Switch, *porttest.Port, *porttest.Port, []byte)
	}{{"unbound", knownUnicastPair}, {"bound", boundUnicastPair}} {
		for _, size := range []int{64, 1500} {
			b.Run(c.name+"/"+strconv.Itoa(size)+"B", func(b *testing.B) {
				sw, in, _, fr := c.pair(b, size)
				defer sw.Close()
				b.ReportAllocs()
				b.SetBytes(int64(len(fr)))
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					in.Inject(fr)
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
			})
		}
	}
}

// SetBinding while frames flow from several goroutines: no race (run with
// -race), and every frame forwarded came from an address bound at some
// point.
func TestSetBindingWhileForwarding(t *testing.T) {
	sw := vswitch.New(vswitch.Config{})
	defer sw.Close()
	in, out := porttest.New("in", 0), porttest.New("out", 0)
	out.Discard = true
	l, err := sw.Attach(in, vswitch.AttachOptions{Binding: &vswitch.Binding{MAC: boundMAC}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sw.Attach(out, vswitch.AttachOptions{}); err != nil {
		t.Fatal(err)
	}
	fr := udp4(vswitch.Broadcast, boundMAC, bound4, gw4, 1, 2)
	done := make(chan struct{})
	for range 2 {
		go func() {
			defer func() { done <- struct{}{} }()
			for range 2000 {
				in.Inject(fr)
			}
		}()
	}
	for i := range 200 {
		b := &vswitch.Binding{MAC: boundMAC}
		if i%2 == 0 {
			b.Addrs = []netip.Addr{bound4}
		}
		if err := l.SetBinding(b); err != nil {
			t.Fatal(err)
		}
	}
	<-done
	<-done
	st := l.Stats().RX
	if st.Frames != 4000 || out.Written()+st.DropsBy[vswitch.DropSpoofedIP] != 4000 {
		t.Errorf("%d frames in, %d out, %d spoofed_ip drops: every frame must be forwarded or dropped as spoofed",
			st.Frames, out.Written(), st.DropsBy[vswitch.DropSpoofedIP])
	}
}

// A port's StaticMAC is known from attach on: frames to it go to that
// port only, never flooded to the others, before it has sent a frame and
// long after the aging time; nobody else may claim it.
func TestStaticMACNeverFloods(t *testing.T) {
	f := newFixture(t, vswitch.Config{Aging: time.Minute}, 3, vswitch.AttachOptions{StaticMAC: gwMAC})
	f.inject(1, frame(gwMAC, mac(3), 60))
	f.expect(1, 0, 0)
	f.clock.Advance(time.Hour)
	f.sw.RefreshClock()
	f.sw.Sweep()
	f.inject(1, frame(gwMAC, mac(3), 60))
	f.expect(1, 0, 0)
	// An endpoint sending from the gateway's MAC is dropped and does not
	// move it.
	f.inject(2, frame(vswitch.Broadcast, gwMAC, 60))
	f.inject(1, frame(gwMAC, mac(3), 60))
	f.expect(1, 0, 0)
	// Another port cannot own it while p0 is attached.
	if _, err := f.sw.Attach(porttest.New("p9", 0), vswitch.AttachOptions{StaticMAC: gwMAC}); !errors.Is(err, vswitch.ErrMACBound) {
		t.Errorf("a second port with p0's static MAC: err = %v, want ErrMACBound", err)
	}
}
