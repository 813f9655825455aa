package gateway_test

import (
	"net/netip"
	"testing"

	"github.com/switchyard-net/switchyard/gateway"
	vswitch "github.com/switchyard-net/switchyard/switch"
)

// With NoPing the gateway opens no ICMP socket, whatever the process may
// do: no ping can leave (in-process networks rely on it).
func TestNoPingOpensNoICMPSocket(t *testing.T) {
	sw := vswitch.New(vswitch.Config{})
	t.Cleanup(func() { sw.Close() })
	gw, err := gateway.New(sw, gateway.Config{
		Network: "np", Subnet: netip.MustParsePrefix("10.241.0.0/24"), Addr: netip.MustParseAddr("10.241.0.1"),
		Egress: gateway.EgressConfig{NoPing: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	if gw.PingEgress() {
		t.Fatal("NoPing gateway forwards pings to the outside")
	}
}
