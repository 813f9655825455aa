//go:build linux

package tunnel_test

import (
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	"golang.org/x/sys/unix"

	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/tap"
	"github.com/switchyard-net/switchyard/testing/netnstest"
	"github.com/switchyard-net/switchyard/tunnel"
)

// An IPv6-only underlay: two host namespaces joined by one veth, each
// end with an IPv6 address (DAD off) and no IPv4 address at all.
//
//	host 1 eth0 fd00:213::1/64 ──veth── eth0 fd00:213::2/64 host 2
func v6Underlay(t *testing.T) (h1, h2 *netnstest.NS, a1, a2 netip.Addr) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping: creates network namespaces")
	}
	h1, h2 = netnstest.New(t), netnstest.New(t)
	for _, h := range []*netnstest.NS{h1, h2} {
		h.MustRun("sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0")
		h.MustRun("sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0")
	}
	h1.MustRun("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", h2.Name)
	a1, a2 = netip.MustParseAddr("fd00:213::1"), netip.MustParseAddr("fd00:213::2")
	for i, h := range []*netnstest.NS{h1, h2} {
		h.MustRun("sysctl", "-qw", "net.ipv6.conf.eth0.accept_dad=0")
		h.MustRun("ip", "addr", "add", []netip.Addr{a1, a2}[i].String()+"/64", "dev", "eth0", "nodad")
		h.MustRun("ip", "link", "set", "eth0", "up")
		h.MustRun("ip", "link", "set", "lo", "up")
		if out := h.MustRun("ip", "-4", "addr", "show", "dev", "eth0"); out != "" {
			t.Fatalf("the underlay has an IPv4 address: %s", out)
		}
	}
	return h1, h2, a1, a2
}

// linkLocal returns the link-local address of ns's eth0, with its zone,
// once it is no longer tentative (until the veth's other end is up it
// is, and cannot be bound).
func linkLocal(t *testing.T, ns *netnstest.NS) netip.Addr {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		out := ns.MustRun("ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "link", "-tentative")
		f := strings.Fields(out)
		for i, w := range f {
			if w == "inet6" && i+1 < len(f) {
				if p, err := netip.ParsePrefix(f[i+1]); err == nil && p.Addr().IsLinkLocalUnicast() {
					return p.Addr().WithZone("eth0")
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no usable link-local address on eth0 of %s: %s", ns.Name, ns.MustRun("ip", "-6", "addr", "show", "dev", "eth0"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// v6Host builds a syHost in ns whose tunnel socket is cfg.Listen, opened
// by the Port itself inside ns.
func v6Host(t *testing.T, ns *netnstest.NS, addr netip.Addr, cfg tunnel.Config) *syHost {
	t.Helper()
	h := &syHost{ns: ns, addr: addr}
	cfg.Name, cfg.VNI, cfg.Logger = "tunnel", 42, zaptest.NewLogger(t)
	if cfg.Mode == tunnel.ModeSecure {
		cfg.Key, cfg.KeyID, cfg.SenderID = testKey(3), 1, uint32(addr.As16()[15])
	}
	// The socket is made inside ns; the Port keeps it.
	if err := ns.Do(func() (err error) {
		h.tun, err = tunnel.New(cfg)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	h.sw = vswitch.New(vswitch.Config{Name: ns.Name, Logger: zaptest.NewLogger(t)})
	t.Cleanup(func() { h.sw.Close() })
	var err error
	if h.link, err = h.sw.Attach(h.tun, vswitch.AttachOptions{}); err != nil {
		t.Fatal(err)
	}
	return h
}

// dualContainer attaches a new namespace to h's switch with an IPv4 and
// an IPv6 address (host number n in 10.240.0.0/24 and fd00:240::/64).
func (h *syHost) dualContainer(t *testing.T, n byte, mtu int) *netnstest.NS {
	t.Helper()
	ns, _ := h.dualContainerLink(t, n, mtu)
	return ns
}

// dualContainerLink is dualContainer that also returns the TAP's link on
// h's switch.
func (h *syHost) dualContainerLink(t *testing.T, n byte, mtu int) (*netnstest.NS, *vswitch.Link) {
	t.Helper()
	ns := netnstest.New(t)
	mac := vswitch.MAC{0x02, 0x42, 10, 240, 0, n}
	port, err := tap.Open(tap.Config{
		NetNS: ns.Path, Name: "eth0", PortName: ns.Name, MTU: mtu, MAC: mac,
		Addrs:   []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 240, 0, n}), 24), dualV6(n)},
		Offload: true, Configure: true, Logger: zaptest.NewLogger(t),
	})
	if err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			t.Skipf("skipping: the kernel refused a TAP device: %v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { port.Remove() })
	link, err := h.sw.Attach(port, vswitch.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ns, link
}

func dualV6(n byte) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom16([16]byte{0xfd, 0, 2, 0x40, 15: n}), 64)
}

// Two Switchyard hosts over an IPv6-only underlay whose peers are each
// other's link-local addresses (with the zone, eth0): one listens on [::]
// (the Port's own dual-stack socket), the other on its link-local
// address. Containers with both families reach each other over IPv4 and
// IPv6 inside the overlay, ping and TCP, in both modes; the containers'
// MTU is the tunnel's over IPv6 (1430, 1398 sealed), and nothing is
// dropped as coming from an unknown peer: datagrams from fe80::…%eth0
// are recognised although the kernel gives their source without a zone.
func TestIPv6UnderlayLinkLocal(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			n1, n2, a1, a2 := v6Underlay(t)
			ll1, ll2 := linkLocal(t, n1), linkLocal(t, n2)
			h1 := v6Host(t, n1, a1, tunnel.Config{Mode: mode, Listen: netip.AddrPortFrom(netip.IPv6Unspecified(), 0),
				Peers: []netip.AddrPort{netip.AddrPortFrom(ll2, 0)}})
			h2 := v6Host(t, n2, a2, tunnel.Config{Mode: mode, Listen: netip.AddrPortFrom(ll2, 0),
				Peers: []netip.AddrPort{netip.AddrPortFrom(ll1, 0)}})
			mtu := h1.tun.Info().MTU
			if want := mode.InnerMTU(1500, true); mtu != want || h2.tun.Info().MTU != want {
				t.Fatalf("tunnel MTUs %d and %d over IPv6, want %d", mtu, h2.tun.Info().MTU, want)
			}
			if got := h2.tun.LocalAddr(); got.Addr().WithZone("") != ll2.WithZone("") || got.Port() != mode.DefaultPort() {
				t.Fatalf("host 2 listens on %v, want %v:%d", got, ll2, mode.DefaultPort())
			}
			c1 := h1.dualContainer(t, 1, mtu)
			c2 := h2.dualContainer(t, 2, mtu)
			t.Cleanup(func() { logTunnel(t, "host1", h1.tun); logTunnel(t, "host2", h2.tun) })

			if err := c1.Ping("10.240.0.2", 2); err != nil {
				t.Fatalf("ping over IPv4 inside the overlay: %v", err)
			}
			if err := c2.Ping(dualV6(1).Addr().String(), 2); err != nil {
				t.Fatalf("ping -6 inside the overlay: %v", err)
			}
			netnstest.Transfer(t, c1, c2, fmt.Sprintf("[%s]:5201", dualV6(2).Addr()), 8<<20)
			// A full-size IPv6 packet fits: ping with the MTU's worth.
			if out, err := c1.Run("ping", "-6", "-c", "1", "-W", "2", "-M", "do", "-s", fmt.Sprint(mtu-48), dualV6(2).Addr().String()); err != nil {
				t.Errorf("a %d-byte IPv6 packet inside the overlay: %v\n%s", mtu, err, out)
			}
			for _, h := range []*syHost{h1, h2} {
				st := h.tun.Stats()
				if st.DropsBy[tunnel.DropUnknownPeer] != 0 || st.RXFrames == 0 {
					t.Errorf("%s: %d frames received, unknown-peer drops %d; want frames and none",
						h.ns.Name, st.RXFrames, st.DropsBy[tunnel.DropUnknownPeer])
				}
				if ps := h.tun.Peers(); len(ps) != 1 || ps[0].Addr.Addr().Zone() != "eth0" || ps[0].RXFrames == 0 {
					t.Errorf("%s: peers %+v, want one link-local peer with zone eth0 that sent frames", h.ns.Name, ps)
				}
			}
		})
	}
}

// A Linux vxlan device whose underlay is IPv6 (local and remote IPv6
// addresses, dstport 4789) interoperates with a Switchyard tunnel on an
// IPv6 socket: containers behind each ping each other over IPv4 and IPv6
// and move TCP over IPv6, and tshark on the underlay sees VXLAN (UDP/4789,
// VNI 42) between the two IPv6 addresses, both ways, and no IPv4.
//
//	host k (kernel)                                             host s (Switchyard)
//	ck eth0 ─veth─ br0 ─ vx0 (local fd00:213::2) ─UDP/IPv6─ tunnel.Port [fd00:213::1]:4789 ─ switch ─ TAP ─ cs
func TestKernelVXLANInteropIPv6(t *testing.T) {
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Fatalf("tshark is not installed (%v): .ci/run installs it", err)
	}
	ns, k, sAddr, kAddr := v6Underlay(t)
	s := v6Host(t, ns, sAddr, tunnel.Config{Listen: netip.AddrPortFrom(sAddr, 0),
		Peers: []netip.AddrPort{netip.AddrPortFrom(kAddr, tunnel.VXLANPort)}})
	if s.tun.Info().MTU != 1430 {
		t.Fatalf("tunnel MTU %d on [%s], want 1430", s.tun.Info().MTU, sAddr)
	}
	if _, err := k.Run("ip", "link", "add", "vx0", "type", "vxlan", "id", "42", "dstport", "4789",
		"local", kAddr.String(), "remote", sAddr.String(), "dev", "eth0"); err != nil {
		if strings.Contains(err.Error(), "not supported") || strings.Contains(err.Error(), "Unknown device type") {
			t.Skipf("skipping: the kernel has no vxlan device: %v", err)
		}
		t.Fatal(err)
	}
	if link := k.MustRun("ip", "-o", "link", "show", "vx0"); !strings.Contains(link, " mtu 1430 ") {
		t.Errorf("the kernel's vxlan over IPv6 does not have the tunnel's MTU 1430: %s", link)
	}
	k.MustRun("ip", "link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0")
	k.MustRun("ip", "link", "set", "vx0", "master", "br0", "up")
	k.MustRun("ip", "link", "set", "br0", "up")
	ck := netnstest.New(t)
	ck.MustRun("sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0")
	k.MustRun("ip", "link", "add", "ck0", "type", "veth", "peer", "name", "eth0", "netns", ck.Name)
	k.MustRun("ip", "link", "set", "ck0", "master", "br0", "up")
	ck.MustRun("ip", "link", "set", "eth0", "mtu", "1430")
	ck.MustRun("ip", "addr", "add", "10.240.0.3/24", "dev", "eth0")
	ck.MustRun("ip", "addr", "add", dualV6(3).String(), "dev", "eth0", "nodad")
	ck.MustRun("ip", "link", "set", "eth0", "up")
	cs := s.dualContainer(t, 2, 1430)
	t.Cleanup(func() { logTunnel(t, "switchyard", s.tun) })

	var pingErrs []string
	seen := captureVXLAN6(t, k, func() {
		pingErrs = pingErrs[:0]
		for _, p := range []struct {
			from *netnstest.NS
			to   string
		}{{cs, "10.240.0.3"}, {ck, "10.240.0.2"}, {cs, dualV6(3).Addr().String()}, {ck, dualV6(2).Addr().String()}} {
			if err := p.from.Ping(p.to, 1); err != nil {
				pingErrs = append(pingErrs, fmt.Sprintf("ping %s: %v", p.to, err))
			}
		}
	})
	for _, want := range []string{
		fmt.Sprintf("%s %s 4789 42", sAddr, kAddr),
		fmt.Sprintf("%s %s 4789 42", kAddr, sAddr),
	} {
		if !strings.Contains(seen, want) {
			t.Errorf("tshark on the underlay did not see VXLAN %q; saw:\n%s", want, seen)
		}
	}
	if len(pingErrs) > 0 {
		t.Errorf("pings through the kernel's vxlan over IPv6 (last round): %v", pingErrs)
	}
	if p := s.tun.Peers(); len(p) != 1 || p[0].RXFrames == 0 || p[0].MACs == 0 {
		t.Errorf("Switchyard's peer %+v: want frames and MACs learned from the kernel's device", p)
	}
	netnstest.Transfer(t, ck, cs, fmt.Sprintf("[%s]:5201", dualV6(2).Addr()), 8<<20)
	netnstest.Transfer(t, cs, ck, fmt.Sprintf("[%s]:5201", dualV6(3).Addr()), 8<<20)
}

// captureVXLAN6 runs tshark on ns's eth0 for VXLAN over UDP/IPv6 (and any
// IPv4 at all), calling traffic until it has seen 8 packets, and returns
// them as "src dst dstport vni protocols" lines.
func captureVXLAN6(t *testing.T, ns *netnstest.NS, traffic func()) string {
	t.Helper()
	out := ns.Tshark(t, netnstest.Capture{Iface: "eth0", Filter: "(ip6 and udp port 4789) or ip", Count: 8, Decode: "udp.port==4789,vxlan", Outer: true,
		Fields: []string{"ipv6.src", "ipv6.dst", "udp.dstport", "vxlan.vni", "frame.protocols"}, Every: 300 * time.Millisecond}, traffic)
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(line); len(f) != 5 || !strings.HasPrefix(f[4], "eth:ethertype:ipv6:udp:vxlan:eth:") {
			t.Errorf("tshark saw a packet that is not VXLAN over IPv6: %q", line)
		}
	}
	return out
}
