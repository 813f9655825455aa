package tunnel_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"

	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/tunnel"
)

// The inner MTU of each mode over each underlay family: the kernel's
// VXLAN_HEADROOM (50) and VXLAN6_HEADROOM (70), 32 more sealed.
func TestInnerMTU(t *testing.T) {
	for _, tc := range []struct {
		mode tunnel.Mode
		v6   bool
		link int
		want int
	}{
		{tunnel.ModeVXLAN, false, 1500, 1450},
		{tunnel.ModeVXLAN, true, 1500, 1430},
		{tunnel.ModeSecure, false, 1500, 1418},
		{tunnel.ModeSecure, true, 1500, 1398},
		{tunnel.ModeVXLAN, true, 9000, 8930},
		{tunnel.ModeSecure, true, 60, 0},
	} {
		if got := tc.mode.InnerMTU(tc.link, tc.v6); got != tc.want {
			t.Errorf("%v.InnerMTU(%d, ipv6=%v) = %d, want %d", tc.mode, tc.link, tc.v6, got, tc.want)
		}
	}
	if tunnel.MTUFor6(1500) != 1430 || tunnel.SecureMTUFor6(1500) != 1398 {
		t.Errorf("MTUFor6(1500) = %d, SecureMTUFor6(1500) = %d; want 1430, 1398", tunnel.MTUFor6(1500), tunnel.SecureMTUFor6(1500))
	}
}

// ipv6Loopback returns a UDP socket on [::1], skipping where the host has
// no IPv6 loopback.
func ipv6Loopback(tb testing.TB) *net.UDPConn {
	tb.Helper()
	c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		tb.Skipf("skipping: no IPv6 loopback here: %v", err)
	}
	return c
}

// listenUDP opens a socket on addr as the Port's listen does for
// Config.Listen, but on an ephemeral port.
func listenUDP(tb testing.TB, addr string) *net.UDPConn {
	tb.Helper()
	ap := netip.MustParseAddrPort(addr)
	network := "udp4"
	if ap.Addr().Is6() {
		network = "udp6"
		if ap.Addr().IsUnspecified() {
			network = "udp"
		}
	}
	c, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(ap))
	if err != nil {
		tb.Skipf("skipping: cannot listen on %s here: %v", addr, err)
	}
	return c
}

// Two hosts over an IPv6 underlay ([::1]), in both modes: the default MTU
// is the IPv6 one, broadcast and unicast frames cross and are learned
// behind the IPv6 peer, and an IPv6 TCP superframe inside the overlay
// arrives as exactly the segments the switch would cut.
func TestPortIPv6Underlay(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			a := newNode(t, 1, tunnel.Config{Mode: mode, Conn: ipv6Loopback(t)})
			b := newNode(t, 2, tunnel.Config{Mode: mode, Conn: ipv6Loopback(t)})
			mesh(t, a, b)
			if want := mode.InnerMTU(1500, true); a.tun.Info().MTU != want {
				t.Errorf("MTU %d over IPv6, want %d", a.tun.Info().MTU, want)
			}
			if la := a.tun.LocalAddr(); la.Addr() != netip.IPv6Loopback() {
				t.Fatalf("local address %v, want [::1]:port", la)
			}

			bc := rawFrame(vswitch.Broadcast, macN(1), 1, 100)
			a.local.Inject(bc)
			waitFrames(t, b.local, 1)
			if got := b.local.Take()[0].Data; !bytes.Equal(got, bc) {
				t.Fatalf("b received % x, want % x", got, bc)
			}
			if macs := b.tun.MACs(); len(macs) != 1 || macs[0].Peer != a.tun.LocalAddr() {
				t.Fatalf("b learned %+v, want %v behind %v", macs, macN(1), a.tun.LocalAddr())
			}

			s := tcpSuper{dst: macN(1), src: macN(2), seq: 1000, payload: 20000, v6: true,
				srcIP: netip.MustParseAddr("fd00:1::2"), dstIP: netip.MustParseAddr("fd00:1::1")}
			s.mss = b.tun.Info().MTU - 40 - 32
			f := s.frame()
			want := segments(t, f)
			b.local.InjectFrame(f)
			var got [][]byte
			waitFor(t, "the IPv6 segments", func() bool {
				for _, fr := range a.local.Take() {
					got = append(got, segments(t, fr)...)
				}
				return len(got) >= len(want)
			})
			if len(got) != len(want) {
				t.Fatalf("%d segments arrived, want %d", len(got), len(want))
			}
			for i := range want {
				if !bytes.Equal(got[i], want[i]) {
					t.Fatalf("segment %d differs", i)
				}
				if len(want[i])-14 > b.tun.Info().MTU {
					t.Fatalf("segment %d carries a %d-byte IP packet over a %d MTU", i, len(want[i])-14, b.tun.Info().MTU)
				}
			}
			ps := b.tun.Peers()
			if len(ps) != 1 || ps[0].TXFrames == 0 || ps[0].RXFrames != 1 {
				t.Errorf("b's peer stats %+v", ps)
			}
			if st := a.tun.Stats(); st.Drops != 0 {
				t.Errorf("a dropped %v", st.DropsBy)
			}
		})
	}
}

// The default MTU follows the underlay: the socket's address, else the
// first peers' family; a dual-stack wildcard with IPv4 peers keeps the
// IPv4 value.
func TestPortDefaultMTUFollowsUnderlay(t *testing.T) {
	v6peer := []netip.AddrPort{netip.MustParseAddrPort("[fd00::2]:4789")}
	v4peer := []netip.AddrPort{netip.MustParseAddrPort("10.0.0.2:4789")}
	for _, tc := range []struct {
		name   string
		mode   tunnel.Mode
		listen string
		peers  []netip.AddrPort
		want   int
	}{
		{"v4", tunnel.ModeVXLAN, "127.0.0.1:0", nil, 1450},
		{"v6", tunnel.ModeVXLAN, "[::1]:0", nil, 1430},
		{"v6 sealed", tunnel.ModeSecure, "[::1]:0", nil, 1398},
		{"wildcard v6 peer", tunnel.ModeVXLAN, "[::]:0", v6peer, 1430},
		{"wildcard v4 peer", tunnel.ModeSecure, "[::]:0", v4peer, 1418},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tunnel.Config{Mode: tc.mode, Conn: listenUDP(t, tc.listen), Peers: tc.peers}
			if tc.mode == tunnel.ModeSecure {
				cfg.Key, cfg.SenderID = testKey(1), 1
			}
			p, err := tunnel.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if got := p.Info().MTU; got != tc.want {
				t.Errorf("MTU %d, want %d", got, tc.want)
			}
		})
	}
}

// Peers of the wrong family and link-local addresses without a zone get
// one error each that names the address and what would do; nothing is
// added. A wildcard [::] socket takes both families.
func TestPortRefusesPeerFamilyAndZone(t *testing.T) {
	v6 := newNode(t, 1, tunnel.Config{Conn: ipv6Loopback(t)})
	v4 := newNode(t, 2, tunnel.Config{})
	for _, tc := range []struct {
		port *tunnel.Port
		peer string
		want error
		says string
	}{
		{v6.tun, "10.0.0.2:4789", tunnel.ErrPeerFamily, "an IPv4 peer on an IPv6-only socket ([::1]:"},
		{v6.tun, "[::ffff:10.0.0.2]:4789", tunnel.ErrPeerFamily, "IPv4 peer"},
		{v4.tun, "[fd00::2]:4789", tunnel.ErrPeerFamily, "an IPv6 peer on an IPv4 socket (127.0.0.1:"},
		{v6.tun, "[fe80::2]:4789", tunnel.ErrZone, "[fe80::2%eth0]:4789"},
	} {
		err := tc.port.AddPeer(netip.MustParseAddrPort(tc.peer))
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.says) || !strings.Contains(err.Error(), netip.MustParseAddrPort(tc.peer).Addr().Unmap().String()) {
			t.Errorf("AddPeer(%s) on %v: %v, want %v saying %q and naming the peer", tc.peer, tc.port.LocalAddr(), err, tc.want, tc.says)
		}
		if n := len(tc.port.Peers()); n != 0 {
			t.Errorf("AddPeer(%s) refused but %d peers kept", tc.peer, n)
		}
	}
	_, err := tunnel.New(tunnel.Config{Listen: netip.MustParseAddrPort("[fe80::1]:0")})
	if !errors.Is(err, tunnel.ErrZone) || !strings.Contains(err.Error(), "fe80::1%eth0") {
		t.Errorf("listen on fe80::1 without a zone: %v, want %v with an example", err, tunnel.ErrZone)
	}
	_, err = tunnel.New(tunnel.Config{Conn: ipv6Loopback(t), Peers: []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:4789")}})
	if !errors.Is(err, tunnel.ErrPeerFamily) {
		t.Errorf("New with an IPv4 peer on [::1]: %v, want %v", err, tunnel.ErrPeerFamily)
	}

	// A wildcard [::] is dual-stack: "udp", not "udp6", as the Port's own
	// listen does (Listen's zero port would take the well-known one).
	dual, err := tunnel.New(tunnel.Config{Conn: listenUDP(t, "[::]:0")})
	if err != nil {
		t.Fatal(err)
	}
	defer dual.Close()
	for _, p := range []string{"10.0.0.2:4789", "[fd00::2]:4789", "[fe80::2%1]:4789"} {
		if err := dual.AddPeer(netip.MustParseAddrPort(p)); err != nil {
			t.Errorf("AddPeer(%s) on [::]: %v", p, err)
		}
	}
	if got := fmt.Sprint(dual.Peers()[2].Addr); got != "[fe80::2%1]:4789" {
		t.Errorf("a link-local peer is listed as %s, want its zone kept", got)
	}
}

// Over an IPv6 underlay the pipeline allocates nothing either: IPv6
// frames inside (a full-size segment and a 64 KiB superframe) are sent
// to an IPv6 peer, received, and delivered, with no allocation per
// Write, and the frames arrive.
func TestIPv6UnderlayDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("skipping: the race detector makes sync.Pool allocate")
	}
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			a := newNodeWith(t, 1, tunnel.Config{Mode: mode, Conn: ipv6Loopback(t)}, true)
			b := newNodeWith(t, 2, tunnel.Config{Mode: mode, Conn: ipv6Loopback(t)}, true)
			mesh(t, a, b)
			b.local.Inject(rawFrame(vswitch.Broadcast, macN(2), 0, 60))
			waitFor(t, "a to learn b's MAC", func() bool { return len(a.tun.MACs()) == 1 })
			mss := a.tun.Info().MTU - 40 - 32
			one := tcpSuper{dst: macN(2), src: macN(1), mss: mss, payload: mss, v6: true,
				srcIP: netip.MustParseAddr("fd00:1::1"), dstIP: netip.MustParseAddr("fd00:1::2")}
			super := one
			super.payload = 65000
			for _, tc := range []struct {
				name string
				f    vswitch.Frame
			}{{"segment", one.frame()}, {"superframe", super.frame()}} {
				if err := a.tun.Write(tc.f); err != nil { // warm the pools
					t.Fatal(err)
				}
				allocs := testing.AllocsPerRun(200, func() { _ = a.tun.Write(tc.f) })
				if allocs != 0 {
					t.Errorf("%s: %.1f allocations per Write, want 0", tc.name, allocs)
				}
			}
			// The frames really crossed: at least the 201 single
			// segments (a burst of superframes' datagrams on loopback
			// may overflow the kernel's socket buffer, which UDP allows).
			waitFor(t, "b to receive what a sent", func() bool { return b.tun.Stats().RXDatagrams >= 201 })
			if st := a.tun.Stats(); st.Drops != 0 {
				t.Errorf("drops %v", st.DropsBy)
			}
			if st := b.tun.Stats(); st.Drops != 0 || b.local.Written() == 0 {
				t.Errorf("receiver: drops %v, %d frames delivered", st.DropsBy, b.local.Written())
			}
		})
	}
}

// BenchmarkPortSendUnderlay is BenchmarkPortSend over each underlay
// family, side by side in one run: a full-size frame and a 64 KiB IPv6
// TCP superframe, to a receiving port over 127.0.0.1 or [::1]. The inner
// MTU is the underlay's (1450 or 1430; 1418 or 1398 sealed).
func BenchmarkPortSendUnderlay(b *testing.B) {
	for _, mode := range modes {
		for _, size := range []string{"mtu", "superframe"} {
			for _, under := range []string{"v4", "v6"} {
				b.Run(fmt.Sprintf("%v/%s/%s", mode, size, under), func(b *testing.B) {
					cfg := func() tunnel.Config {
						if under == "v6" {
							return tunnel.Config{Mode: mode, Conn: ipv6Loopback(b)}
						}
						return tunnel.Config{Mode: mode}
					}
					tx := newNodeWith(b, 1, cfg(), true)
					rx := newNodeWith(b, 2, cfg(), true)
					mesh(b, tx, rx)
					rx.local.Inject(rawFrame(vswitch.Broadcast, macN(2), 0, 60))
					waitFor(b, "the MAC to be learned", func() bool { return len(tx.tun.MACs()) == 1 })
					f := vswitch.Frame{Data: rawFrame(macN(2), macN(1), 0, tx.tun.Info().MTU)}
					if size == "superframe" {
						f = tcpSuper{dst: macN(2), src: macN(1), mss: tx.tun.Info().MTU - 72, payload: 65000, v6: true,
							srcIP: netip.MustParseAddr("fd00:1::1"), dstIP: netip.MustParseAddr("fd00:1::2")}.frame()
					}
					before := tx.tun.Stats()
					b.ReportAllocs()
					b.SetBytes(int64(len(f.Data)))
					refused := 0
					for b.Loop() {
						// A loaded machine's kernel refuses datagrams at
						// times (ErrSend, counted); anything else is a bug.
						if err := tx.tun.Write(f); errors.Is(err, tunnel.ErrSend) {
							refused++
						} else if err != nil {
							b.Fatal(err)
						}
					}
					s := tx.tun.Stats()
					b.ReportMetric(float64(s.TXDatagrams-before.TXDatagrams)/b.Elapsed().Seconds(), "datagrams/s")
					b.ReportMetric(float64(refused)/float64(b.N), "refused/op")
				})
			}
		}
	}
}
