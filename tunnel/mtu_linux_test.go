//go:build linux

package tunnel_test

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/testing/netnstest"
	"github.com/switchyard-net/switchyard/tunnel"
)

// fragCreates returns the IPv4 FragCreates counter of namespace ns.
func fragCreates(t *testing.T, ns *netnstest.NS) int {
	t.Helper()
	lines := strings.Split(ns.MustRun("cat", "/proc/net/snmp"), "\n")
	for i := 0; i+1 < len(lines); i++ {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) == 0 || names[0] != "Ip:" || len(values) != len(names) {
			continue
		}
		for j, n := range names {
			if n == "FragCreates" {
				v, err := strconv.Atoi(values[j])
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
		}
	}
	t.Fatal("no Ip: FragCreates in /proc/net/snmp")
	return 0
}

// The tunnel's MTU on a 1500-byte underlay is 1450 (1418 sealed): a
// container at that MTU sends its largest packets across without the
// underlay fragmenting anything, and one byte more does not leave it.
func TestNetworkMTUAccountsForOverhead(t *testing.T) {
	for _, tc := range []struct {
		mode tunnel.Mode
		mtu  int
	}{{tunnel.ModeVXLAN, 1450}, {tunnel.ModeSecure, 1418}} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			u := newUnderlay(t)
			a, b := u.syHost(hostOpts{mode: tc.mode}), u.syHost(hostOpts{mode: tc.mode})
			peerWith(t, a, b)
			if got := a.tun.Info().MTU; got != tc.mtu {
				t.Fatalf("tunnel MTU %d, want %d", got, tc.mtu)
			}
			ca, cb := a.container(t, "10.240.0.2", tc.mtu), b.container(t, "10.240.0.3", tc.mtu)
			before := fragCreates(t, a.ns)
			full := strconv.Itoa(tc.mtu - 28) // ICMP payload filling the MTU
			if out, err := ca.ns.Run("ping", "-c", "3", "-i", "0.2", "-W", "2", "-M", "do", "-s", full, cb.addr()); err != nil {
				t.Fatalf("a %d-byte packet did not cross: %v\n%s", tc.mtu, err, out)
			}
			if n := fragCreates(t, a.ns) - before; n != 0 {
				t.Errorf("the underlay fragmented %d datagrams: the tunnel's MTU is too big for it", n)
			}
			over := strconv.Itoa(tc.mtu - 27)
			if out, err := ca.ns.Run("ping", "-c", "1", "-W", "1", "-M", "do", "-s", over, cb.addr()); err == nil {
				t.Fatalf("a %d-byte DF packet left a container of MTU %d:\n%s", tc.mtu+1, tc.mtu, out)
			}
		})
	}
}

// Containers whose MTU is the underlay's 1500 talk through a 1450-byte
// tunnel: the switch, which knows the network's router, answers a
// too-big DF packet with ICMP "fragmentation needed" naming 1450, and TCP
// adapts by path MTU discovery.
func TestPathMTUDiscovery(t *testing.T) {
	router := &vswitch.Router{MAC: vswitch.MAC{0x02, 0x42, 10, 240, 0, 1}, IPv4: netip.MustParseAddr("10.240.0.1")}
	u := newUnderlay(t)
	a, b := u.syHost(hostOpts{router: router}), u.syHost(hostOpts{router: router})
	peerWith(t, a, b)
	ca, cb := a.container(t, "10.240.0.2", 1500), b.container(t, "10.240.0.3", 1500)
	if err := ca.ns.Ping(cb.addr(), 1); err != nil {
		t.Fatal(err)
	}
	out, err := ca.ns.Run("ping", "-c", "2", "-i", "0.3", "-W", "2", "-M", "do", "-s", "1472", cb.addr())
	if err == nil {
		t.Fatalf("a 1500-byte DF packet crossed a 1450-byte tunnel:\n%s", out)
	}
	if !strings.Contains(out, "mtu = 1450") && !strings.Contains(out, "mtu=1450") {
		t.Fatalf("ping did not learn MTU 1450 from an ICMP error:\n%s", out)
	}
	if s := a.sw.Stats(); s.ICMPSent == 0 {
		t.Error("the switch sent no ICMP error")
	}
	if r := ca.ns.MustRun("ip", "route", "get", cb.addr()); !strings.Contains(r, "mtu 1450") {
		t.Errorf("the container's route cache has no path MTU:\n%s", r)
	}
	for _, dir := range []struct{ from, to *container }{{ca, cb}, {cb, ca}} {
		sum, d := netnstest.Transfer(t, dir.from.ns, dir.to.ns, fmt.Sprintf("%s:5201", dir.to.addr()), 32<<20)
		t.Logf("%s → %s: 32 MiB in %v, sha256 %x", dir.from.addr(), dir.to.addr(), d, sum[:6])
	}
	t.Logf("ICMP errors sent: a %d, b %d", a.sw.Stats().ICMPSent, b.sw.Stats().ICMPSent)
}
