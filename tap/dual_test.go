package tap_test

import (
	"net/netip"
	"strings"
	"testing"

	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/tap"
	"github.com/switchyard-net/switchyard/testing/netnstest"
)

// A dual-stack endpoint's TAP gets an address and a default route of
// each family; the IPv6 address is usable at once (no duplicate address
// detection to wait for), and the interface forms no SLAAC address beside
// it (autoconf is off).
func TestOpenConfiguresBothFamilies(t *testing.T) {
	ns := netnstest.New(t)
	port, err := tap.Open(tap.Config{
		NetNS: ns.Path, Name: "eth0", MTU: 1500, MAC: vswitch.MAC{0x02, 0x42, 10, 78, 0, 2},
		Addrs:   []netip.Prefix{netip.MustParsePrefix("10.78.0.2/24"), netip.MustParsePrefix("fd00:78::2/64")},
		Gateway: netip.MustParseAddr("10.78.0.1"), Gateway6: netip.MustParseAddr("fd00:78::1"),
		Configure: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer port.Remove()
	if r := ns.MustRun("ip", "route", "show", "default"); !strings.Contains(r, "via 10.78.0.1 dev eth0") {
		t.Errorf("IPv4 default route %q, want via 10.78.0.1 dev eth0", r)
	}
	if r := ns.MustRun("ip", "-6", "route", "show", "default"); !strings.Contains(r, "via fd00:78::1 dev eth0") {
		t.Errorf("IPv6 default route %q, want via fd00:78::1 dev eth0", r)
	}
	a := ns.MustRun("ip", "-6", "addr", "show", "dev", "eth0")
	found := false
	for _, line := range strings.Split(a, "\n") {
		if strings.Contains(line, "fd00:78::2/64") {
			found = !strings.Contains(line, "tentative")
		}
	}
	if !found {
		t.Errorf("eth0's IPv6 addresses, want fd00:78::2/64 usable (not tentative):\n%s", a)
	}
	if v := strings.TrimSpace(ns.MustRun("sysctl", "-n", "net.ipv6.conf.eth0.autoconf")); v != "0" {
		t.Errorf("net.ipv6.conf.eth0.autoconf = %s, want 0: a static IPv6 address and no SLAAC one", v)
	}
}

// An interface without a static IPv6 address (IPv4 only, or left to its
// DHCP client) keeps the kernel's autoconfiguration: SLAAC is how it gets
// an IPv6 address.
func TestOpenLeavesAutoconfWithoutIPv6Address(t *testing.T) {
	ns := netnstest.New(t)
	for i, addrs := range [][]netip.Prefix{{netip.MustParsePrefix("10.78.1.2/24")}, nil} {
		name := []string{"eth0", "eth1"}[i]
		port, err := tap.Open(tap.Config{NetNS: ns.Path, Name: name, Addrs: addrs, Configure: true})
		if err != nil {
			t.Fatal(err)
		}
		defer port.Remove()
		if v := strings.TrimSpace(ns.MustRun("sysctl", "-n", "net.ipv6.conf."+name+".autoconf")); v != "1" {
			t.Errorf("%s with addresses %v: autoconf = %s, want the kernel's 1", name, addrs, v)
		}
	}
}
