package gateway_test

import (
	"context"
	"io"
	"net/netip"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/switchyard-net/switchyard/gateway"
	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/testing/vnettest"
)

// A dual-stack gateway owns an address of each family on its one NIC:
// an IPv4 host and an IPv6 host on the same switch both resolve it (ARP,
// neighbour discovery) and ping it, and published-port dials reach each
// family from the gateway's address of that family.
func TestDualStackGateway(t *testing.T) {
	log := zaptest.NewLogger(t)
	sw := vswitch.New(vswitch.Config{Name: "dual", Logger: log})
	t.Cleanup(func() { sw.Close() })
	gw, err := gateway.New(sw, gateway.Config{
		Network: "dual", Subnet: netip.MustParsePrefix("10.240.0.0/24"), Addr: netip.MustParseAddr("10.240.0.1"),
		Subnet6: netip.MustParsePrefix("fd00:1::/64"), Addr6: netip.MustParseAddr("fd00:1::1"),
		MAC: vswitch.MAC{0x02, 0x42, 10, 240, 0, 1}, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	hosts := map[string]*vnettest.Host{}
	for _, c := range []struct{ name, addr, gw string }{{"v4", "10.240.0.2/24", "10.240.0.1"}, {"v6", "fd00:1::2/64", "fd00:1::1"}} {
		h, err := vnettest.NewHost(sw, vnettest.HostConfig{Name: c.name, Addr: netip.MustParsePrefix(c.addr), Gateway: netip.MustParseAddr(c.gw)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(h.Close)
		hosts[c.name] = h
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for name, dst := range map[string]string{"v4": "10.240.0.1", "v6": "fd00:1::1"} {
		if _, err := hosts[name].Ping(ctx, netip.MustParseAddr(dst)); err != nil {
			t.Fatalf("%s host pings the gateway's %s: %v", name, dst, err)
		}
	}
	for name, h := range hosts {
		ln, err := h.ListenTCP(8080)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(c.RemoteAddr().String()))
			c.Close()
		}()
		c, err := gw.Dialer(false).DialTCP(ctx, netip.AddrPort{}, netip.AddrPortFrom(h.Addr(), 8080))
		if err != nil {
			t.Fatalf("dial the %s host through the gateway: %v", name, err)
		}
		got, _ := io.ReadAll(c)
		c.Close()
		src, err := netip.ParseAddrPort(string(got))
		if err != nil {
			t.Fatalf("%s host saw %q", name, got)
		}
		want := map[string]string{"v4": "10.240.0.1", "v6": "fd00:1::1"}[name]
		if src.Addr().String() != want {
			t.Errorf("%s host saw the dial from %s, want the gateway's %s", name, src.Addr(), want)
		}
	}
}

// The IPv6 side must be an IPv6 address inside an IPv6 subnet, beside an
// IPv4 first family.
func TestDualStackGatewayRefusesBadIPv6(t *testing.T) {
	for _, c := range []struct{ subnet, addr, subnet6, addr6 string }{
		{"10.1.0.0/24", "10.1.0.1", "fd00:1::/64", "fd00:2::1"},
		{"10.1.0.0/24", "10.1.0.1", "10.2.0.0/24", "10.2.0.1"},
		{"fd00:3::/64", "fd00:3::1", "fd00:1::/64", "fd00:1::1"},
	} {
		sw := vswitch.New(vswitch.Config{})
		_, err := gateway.New(sw, gateway.Config{Network: "x", Subnet: netip.MustParsePrefix(c.subnet), Addr: netip.MustParseAddr(c.addr),
			Subnet6: netip.MustParsePrefix(c.subnet6), Addr6: netip.MustParseAddr(c.addr6)})
		if err == nil {
			t.Errorf("gateway %s in %s beside %s accepted", c.addr6, c.subnet6, c.addr)
		}
		if len(sw.Links()) != 0 {
			t.Errorf("a refused gateway left a port on the switch")
		}
		sw.Close()
	}
}
