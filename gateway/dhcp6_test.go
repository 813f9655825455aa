package gateway_test

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"go.uber.org/zap/zaptest"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/switchyard-net/switchyard/gateway"
	"github.com/switchyard-net/switchyard/gateway/dhcp6/dhcp6test"
	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/testing/porttest"
)

type reservations map[vswitch.MAC]netip.Addr

func (r reservations) Reserved(mac vswitch.MAC) (netip.Addr, bool) {
	a, ok := r[mac]
	return a, ok
}

// A gateway with DHCPv6 sets the M and O flags in its advertisements,
// and answers a host's SOLICIT on the switch, from its link-local address,
// with the address reserved for the host's MAC.
func TestDHCP6OnTheSwitch(t *testing.T) {
	log := zaptest.NewLogger(t)
	sw := vswitch.New(vswitch.Config{Name: "d6", Logger: log})
	t.Cleanup(func() { sw.Close() })
	host := porttest.New("host", 1500)
	if _, err := sw.Attach(host, vswitch.AttachOptions{}); err != nil {
		t.Fatal(err)
	}
	hostMAC := vswitch.MAC{0x52, 0x54, 0, 0, 0, 0x0a}
	reserved := netip.MustParseAddr("fd00:52::a")
	mac := vswitch.MAC{0x02, 0x42, 10, 52, 0, 1}
	gw, err := gateway.New(sw, gateway.Config{
		Network: "d6", Subnet: netip.MustParsePrefix("10.52.0.0/24"), Addr: netip.MustParseAddr("10.52.0.1"),
		Subnet6: netip.MustParsePrefix("fd00:52::/64"), Addr6: netip.MustParseAddr("fd00:52::1"), MAC: mac, Logger: log,
		RA:    &gateway.RAConfig{RDNSS: []netip.Addr{netip.MustParseAddr("fd00:52::1")}, Interval: time.Hour},
		DHCP6: &gateway.DHCP6Config{Reservations: reservations{hostMAC: reserved}, DNS: []netip.Addr{netip.MustParseAddr("fd00:52::1")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	checkRA(t, nextRA(t, host), mac, "fd00:52::/64", true, 1800*time.Second, "fd00:52::1", true)

	sol, err := dhcpv6.NewSolicit(net.HardwareAddr(hostMAC[:]), dhcpv6.WithRapidCommit)
	if err != nil {
		t.Fatal(err)
	}
	hostLL := netip.MustParseAddr("fe80::5054:ff:fe00:a")
	if err := host.Inject(dhcp6test.Frame(hostMAC, hostLL, sol.ToBytes())); err != nil {
		t.Fatal(err)
	}
	reply := nextDHCP6(t, host)
	ip := header.IPv6(reply[14:])
	if vswitch.MAC(reply[0:6]) != hostMAC || vswitch.MAC(reply[6:12]) != mac ||
		netip.AddrFrom16(ip.DestinationAddress().As16()) != hostLL || netip.AddrFrom16(ip.SourceAddress().As16()) != netip.MustParseAddr("fe80::42:aff:fe34:1") {
		t.Errorf("reply %s → %s, %s → %s; want from the gateway's link-local address to the host's", vswitch.MAC(reply[6:12]), vswitch.MAC(reply[0:6]),
			ip.SourceAddress(), ip.DestinationAddress())
	}
	msg, err := dhcp6test.Decode(reply)
	if err != nil {
		t.Fatal(err)
	}
	ia := msg.Options.OneIANA()
	if msg.Type() != dhcpv6.MessageTypeReply || ia == nil || ia.Options.OneAddress() == nil || ia.Options.OneAddress().IPv6Addr.String() != reserved.String() {
		t.Fatalf("answer to a rapid-commit SOLICIT: %s", msg.Summary())
	}
	if ls := gw.DHCP6().Leases(); len(ls) != 1 || ls[0].MAC != hostMAC || ls[0].Addr != reserved {
		t.Errorf("leases %+v", ls)
	}
}

// Without Router Advertisements there is no DHCPv6: no M flag would send
// hosts to it.
func TestDHCP6NeedsRA(t *testing.T) {
	sw := vswitch.New(vswitch.Config{Name: "d6"})
	t.Cleanup(func() { sw.Close() })
	_, err := gateway.New(sw, gateway.Config{
		Network: "d6", Subnet: netip.MustParsePrefix("10.53.0.0/24"), Addr: netip.MustParseAddr("10.53.0.1"),
		Subnet6: netip.MustParsePrefix("fd00:53::/64"), Addr6: netip.MustParseAddr("fd00:53::1"), MAC: vswitch.MAC{2, 0, 0, 0, 0, 1},
		DHCP6: &gateway.DHCP6Config{Reservations: reservations{}},
	})
	if err == nil || !strings.Contains(err.Error(), "dhcpv6 needs router advertisements") {
		t.Fatalf("error %v, want one that says DHCPv6 needs router advertisements", err)
	}
	if l := sw.Links(); len(l) != 0 {
		t.Errorf("a refused gateway left %d ports on the switch", len(l))
	}
}

// nextDHCP6 waits for a DHCPv6 server message (UDP to port 546) on port.
func nextDHCP6(t *testing.T, port *porttest.Port) []byte {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		for _, f := range port.Take() {
			if dhcp6test.IsReply(f.Data) {
				return f.Data
			}
		}
		select {
		case <-port.Notify():
		case <-deadline:
			t.Fatal("no DHCPv6 reply within 5 s")
		}
	}
}
