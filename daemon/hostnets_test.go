package daemon

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/switchyard-net/switchyard/testing/netnstest"
)

// HostPrefixes sees the namespace's IPv6 addresses and routes as well as
// its IPv4 ones, and leaves out link-local, multicast and default.
func TestHostPrefixesBothFamilies(t *testing.T) {
	ns := netnstest.New(t)
	ns.MustRun("ip", "link", "add", "d0", "type", "veth", "peer", "name", "d1")
	ns.MustRun("ip", "link", "set", "d0", "up")
	ns.MustRun("ip", "addr", "add", "10.244.0.1/24", "dev", "d0")
	ns.MustRun("ip", "addr", "add", "fd00:244::1/64", "dev", "d0", "nodad")
	ns.MustRun("ip", "-6", "route", "add", "fd00:245::/48", "dev", "d0")
	ns.MustRun("ip", "-6", "route", "add", "default", "dev", "d0")
	var got []netip.Prefix
	if err := ns.Do(func() error {
		var err error
		got, err = HostPrefixes()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"10.244.0.0/24", "fd00:244::/64", "fd00:245::/48"} {
		if !slices.Contains(got, netip.MustParsePrefix(want)) {
			t.Errorf("HostPrefixes() = %v, lacks %s", got, want)
		}
	}
	for _, p := range got {
		if a := p.Addr(); p.Bits() == 0 || a.IsLinkLocalUnicast() || a.IsMulticast() {
			t.Errorf("HostPrefixes() has %s", p)
		}
	}
}
