package e2e_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/switchyard-net/switchyard/testing/netnstest"
)

// connect6 connects a new namespace to network on h with IPv6 address ip6.
func (h *host) connect6(t *testing.T, network, name, ip6 string) *netnstest.NS {
	t.Helper()
	ns := netnstest.New(t)
	h.d.MustRun("connect", network, "--netns", ns.Path, "--name", name, "--ip6", ip6)
	return ns
}

// Packet too big for IPv6: a dual-stack network across a VXLAN tunnel,
// created with --mtu 1500 though the tunnel carries 1450 bytes. IPv6
// routers never fragment, so the switch must answer a frame too big for
// the tunnel with ICMPv6 packet too big naming the MTU that fits: a
// 1500-byte ping -6 gets it, and TCP over IPv6 finds the path MTU
// instead of stalling.
func TestDualStackPacketTooBig(t *testing.T) {
	hs := newHosts(t, 2)
	for i, h := range hs.h {
		h.d.MustRun("network", "create", "big", "--subnet", "10.254.0.0/16", "--ip-range", fmt.Sprintf("10.254.%d.0/24", i+1),
			"--subnet", "fd00:2540::/64", "--tunnel", "vxlan", "--tunnel-listen", h.addr+":4790", "--peer", hs.h[1-i].addr+":4790", "--mtu", "1500")
	}
	xa := hs.h[0].connect6(t, "big", "xa", "fd00:2540::a")
	xb := hs.h[1].connect6(t, "big", "xb", "fd00:2540::b")
	if err := xa.Ping("fd00:2540::b", 2); err != nil {
		t.Fatalf("ping -6 across the tunnel: %v", err)
	}
	out, err := xa.Run("ping", "-6", "-n", "-c", "1", "-W", "2", "-M", "do", "-s", "1452", "fd00:2540::b")
	if err == nil || !strings.Contains(out, "Packet too big") || !strings.Contains(out, "mtu=1450") {
		t.Errorf("a 1500-byte ping -6 over a 1450-byte tunnel: %v\n%s\nwant \"Packet too big: mtu=1450\"", err, out)
	}
	if r := xa.MustRun("ip", "-6", "route", "get", "fd00:2540::b"); !strings.Contains(r, "mtu 1450") {
		t.Errorf("the container's kernel did not learn the path MTU: %s", r)
	}
	netnstest.Transfer(t, xa, xb, "[fd00:2540::b]:9000", 20*mb)
}
