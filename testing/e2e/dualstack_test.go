package e2e_test

import (
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/switchyard-net/switchyard/testing/clitest"
	"github.com/switchyard-net/switchyard/testing/netnstest"
)

// A dual-stack network through the CLI: two namespaces get an address and
// a default route of each family, ping the gateway's two addresses and
// each other over IPv6 (neighbour discovery through the switch's port
// security), move TCP over IPv6, and resolve each other's AAAA.
func TestDualStackNetwork(t *testing.T) {
	nsA, nsB := netnstest.New(t), netnstest.New(t)
	d := clitest.NewDaemon(t)
	d.Start()
	d.MustRun("network", "create", "dual", "--subnet", "10.241.0.0/24", "--subnet", "fd00:241::/64")
	d.MustRun("connect", "dual", "--netns", nsA.Path, "--name", "a")
	d.MustRun("connect", "dual", "--netns", nsB.Path, "--name", "b", "--ip6", "fd00:241::b")
	es := endpoints(t, d, "dual")
	want := map[string][2]string{"a": {"10.241.0.2/24", "fd00:241::2/64"}, "b": {"10.241.0.3/24", "fd00:241::b/64"}}
	for _, e := range es {
		if w := want[e.Name]; e.Address.String() != w[0] || e.Address6.String() != w[1] || e.Gateway6.String() != "fd00:241::1" {
			t.Errorf("endpoint %s: %s %s gw6 %s, want %s %s gw6 fd00:241::1", e.Name, e.Address, e.Address6, e.Gateway6, w[0], w[1])
		}
	}
	if r := nsA.MustRun("ip", "-6", "route", "show", "default"); !strings.Contains(r, "via fd00:241::1 dev eth0") {
		t.Errorf("IPv6 default route in a: %q", r)
	}
	for _, dst := range []string{"10.241.0.1", "fd00:241::1", "fd00:241::b"} {
		if err := nsA.Ping(dst, 2); err != nil {
			t.Fatalf("ping %s from a: %v", dst, err)
		}
	}
	netnstest.Transfer(t, nsA, nsB, "[fd00:241::b]:7000", 4*mb)
	r := query(t, nsA, "udp", "10.241.0.1", "b.", dns.TypeAAAA)
	if len(r.Answer) != 1 || !strings.Contains(r.Answer[0].String(), "fd00:241::b") {
		t.Errorf("AAAA b from the gateway's DNS: %v, want fd00:241::b", r.Answer)
	}
}
