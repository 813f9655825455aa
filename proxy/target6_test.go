package proxy_test

import (
	"net/netip"
	"testing"

	"github.com/switchyard-net/switchyard/proxy"
	"github.com/switchyard-net/switchyard/proxy/proxytest"
)

// With Options.Target6, a wildcard mapping's [::] listener relays to the
// container's IPv6 address and its 0.0.0.0 listener to the IPv4 one.
func TestPublishTarget6(t *testing.T) {
	ctr6 := netip.MustParseAddr("fd00:99::2")
	v4 := serveTCP(t, "tcp4", "127.0.0.1:0", greeter("v4"))
	v6 := serveTCP(t, "tcp4", "127.0.0.1:0", greeter("v6"))
	d := &proxytest.Loopback{Redirect: func(network string, dst netip.AddrPort) netip.AddrPort {
		switch dst.Addr() {
		case ctrIP:
			return v4
		case ctr6:
			return v6
		}
		return dst
	}}
	m := newManager(t, proxy.Config{})
	pubs, err := m.Publish("web/a", mapping(t, "0:80"), ctrIP, d, proxy.Options{Target6: ctr6})
	if err != nil {
		t.Fatal(err)
	}
	if len(pubs) != 2 {
		t.Skipf("skipping: %d listeners, this host has no IPv6 loopback for [::]", len(pubs))
	}
	for _, p := range pubs {
		want, wantName := ctrIP, "v4"
		if p.HostIP.Is6() {
			want, wantName = ctr6, "v6"
		}
		if p.Target != want {
			t.Errorf("%s relays to %s, want %s", p.HostAddr(), p.Target, want)
		}
		if got, _ := tcpHello(t, clientAddr(p), netip.Addr{}); got != wantName+": hi" {
			t.Errorf("%s answered %q, want %q", clientAddr(p), got, wantName)
		}
		if c := lastCall(t, d, "tcp"); c.Dst.Addr() != want {
			t.Errorf("dial for %s went to %s, want %s", p.HostAddr(), c.Dst, want)
		}
	}
	if _, err := m.Publish("web/b", mapping(t, "0:81"), ctrIP, d, proxy.Options{Target6: ctrIP}); err == nil {
		t.Error("an IPv4 Target6 was accepted")
	}
}
