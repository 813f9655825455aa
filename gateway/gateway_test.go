package gateway_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/switchyard-net/switchyard/gateway"
	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/testing/vnettest"
)

func newNet(t *testing.T, isolated bool) (*vswitch.Switch, *gateway.Gateway, []*vnettest.Host) {
	t.Helper()
	log := zaptest.NewLogger(t)
	sw := vswitch.New(vswitch.Config{Name: "web", Logger: log})
	t.Cleanup(func() { sw.Close() })
	gw, err := gateway.New(sw, gateway.Config{
		Network: "web", Subnet: netip.MustParsePrefix("10.240.0.0/24"), Addr: netip.MustParseAddr("10.240.0.1"),
		MAC: vswitch.MAC{0x02, 0x42, 10, 240, 0, 1}, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	var hosts []*vnettest.Host
	for i, a := range []string{"10.240.0.2/24", "10.240.0.3/24"} {
		h, err := vnettest.NewHost(sw, vnettest.HostConfig{Name: []string{"a", "b"}[i], Addr: netip.MustParsePrefix(a),
			Gateway: gw.Addr(), Isolated: isolated})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(h.Close)
		hosts = append(hosts, h)
	}
	return sw, gw, hosts
}

func TestHostPingsGateway(t *testing.T) {
	_, gw, hosts := newNet(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, h := range hosts {
		if _, err := h.Ping(ctx, gw.Addr()); err != nil {
			t.Fatalf("%s ping gateway: %v", h.Addr(), err)
		}
	}
	if st := gw.Link().Stats(); st.RX.Frames == 0 || st.TX.Frames == 0 {
		t.Errorf("gateway port counters rx=%d tx=%d, want both > 0", st.RX.Frames, st.TX.Frames)
	}
}

// With icc=false endpoints reach the gateway but not each other.
func TestIsolatedEndpointsReachOnlyTheGateway(t *testing.T) {
	_, gw, hosts := newNet(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := hosts[0].Ping(ctx, gw.Addr()); err != nil {
		t.Fatalf("isolated endpoint cannot ping the gateway: %v", err)
	}
	if _, err := hosts[1].Ping(ctx, gw.Addr()); err != nil {
		t.Fatalf("isolated endpoint cannot ping the gateway: %v", err)
	}
	short, cancel2 := context.WithTimeout(context.Background(), time.Second)
	defer cancel2()
	if _, err := hosts[0].Ping(short, hosts[1].Addr()); err == nil {
		t.Fatal("isolated endpoints reached each other")
	}
}

func TestGatewayAddressOutsideSubnet(t *testing.T) {
	sw := vswitch.New(vswitch.Config{})
	defer sw.Close()
	_, err := gateway.New(sw, gateway.Config{Network: "x", Subnet: netip.MustParsePrefix("10.1.0.0/24"), Addr: netip.MustParseAddr("10.2.0.1")})
	if err == nil {
		t.Fatal("gateway outside its subnet accepted")
	}
	if len(sw.Links()) != 0 {
		t.Fatal("a refused gateway left a port on the switch")
	}
}
