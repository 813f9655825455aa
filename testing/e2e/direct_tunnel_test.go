package e2e_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/switchyard-net/switchyard/testing/netnstest"
)

// directOverlay is the tunnel network's subnet, one L2 segment over both
// hosts.
const directOverlay = "10.213.90.0/24"

// The same two hosts run one network over the VXLAN tunnel and another
// with direct routing, at once: containers on each reach their peers on
// the other host by address (the servers see the clients' own
// addresses), a transfer on one network runs while pings cross the other,
// and the wire between the hosts carries the tunnel network's packets in
// VXLAN and the direct network's as plain IP.
func TestTunnelAndDirectRoutingTogether(t *testing.T) {
	a, b := newDirectHosts(t)
	a.d.MustRun("network", "create", "overlay", "--subnet", directOverlay, "--ip-range", "10.213.90.0/25",
		"--tunnel", "vxlan", "--vni", "4242", "--tunnel-listen", directVPCA+":4789", "--peer", directVPCB+":4789")
	b.d.MustRun("network", "create", "overlay", "--subnet", directOverlay, "--ip-range", "10.213.90.128/25",
		"--tunnel", "vxlan", "--vni", "4242", "--tunnel-listen", directVPCB+":4789", "--peer", directVPCA+":4789")
	a.d.MustRun("network", "create", "direct", "--subnet", directSubnetA, "--host-interface", "sy-direct", "--route", directSubnetB)
	b.d.MustRun("network", "create", "direct", "--subnet", directSubnetB, "--host-interface", "sy-direct", "--route", directSubnetA)
	oa, oaAddr := a.container(t, "overlay", "oa")
	ob, obAddr := b.container(t, "overlay", "ob")
	da, daAddr := a.container(t, "direct", "da")
	db, dbAddr := b.container(t, "direct", "db")

	for _, c := range []struct {
		from, to         *netnstest.NS
		fromAddr, toAddr string
	}{{oa, ob, oaAddr, obAddr}, {ob, oa, obAddr, oaAddr}, {da, db, daAddr, dbAddr}, {db, da, dbAddr, daAddr}} {
		whoServer(t, c.to, c.toAddr+":8080")
		if got := askWho(t, c.from, c.toAddr+":8080"); !strings.HasPrefix(got, c.fromAddr+":") {
			t.Errorf("%s → %s: the server saw %q, want the client's own address", c.fromAddr, c.toAddr, got)
		}
	}

	// At once: pings over the tunnel while 20 MB cross by direct routing.
	ping := make(chan error, 1)
	var pingOut string
	go func() {
		var err error
		pingOut, err = oa.Run("ping", "-c", "20", "-i", "0.05", "-W", "2", obAddr)
		ping <- err
	}()
	if sum, _ := netnstest.Transfer(t, da, db, dbAddr+":9000", 20*mb); sum == ([32]byte{}) {
		t.Fatal("the direct-routing transfer produced no checksum")
	}
	if err := <-ping; err != nil || !strings.Contains(pingOut, " 0% packet loss") {
		t.Errorf("pings over the tunnel during the direct transfer: %v\n%s", err, pingOut)
	}

	// On the wire: the overlay's pings inside VXLAN between the hosts'
	// VPC addresses, the direct network's as plain ICMP between the
	// containers.
	lines := captureWire(t, a.ns, "vpc0", "icmp or udp port 4789", 12, func() {
		oa.Ping(obAddr, 1)
		da.Ping(dbAddr, 1)
	})
	overlay := netip.MustParsePrefix(directOverlay)
	var vxlan, plain int
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) != 3 {
			continue
		}
		protos, srcs, dsts := f[0], strings.Split(f[1], ","), strings.Split(f[2], ",")
		switch {
		case strings.Contains(protos, "vxlan"):
			if srcs[0] != directVPCA && srcs[0] != directVPCB {
				t.Errorf("VXLAN from %s, want a host's VPC address: %s", srcs[0], l)
			}
			if len(srcs) == 2 && strings.HasSuffix(protos, "icmp:data") {
				if !overlay.Contains(netip.MustParseAddr(srcs[1])) || !overlay.Contains(netip.MustParseAddr(dsts[1])) {
					t.Errorf("VXLAN carries %s → %s, want only the tunnel network's addresses: %s", srcs[1], dsts[1], l)
				}
				vxlan++
			}
		case strings.Contains(protos, "ip:icmp"):
			if len(srcs) != 1 || !(srcs[0] == daAddr && dsts[0] == dbAddr || srcs[0] == dbAddr && dsts[0] == daAddr) {
				t.Errorf("plain ICMP %s → %s, want only the direct network's containers: %s", f[1], f[2], l)
			}
			plain++
		}
	}
	t.Logf("on the wire: %d pings in VXLAN, %d plain", vxlan, plain)
	if vxlan == 0 || plain == 0 {
		t.Errorf("on the wire: %d pings in VXLAN, %d plain, want both:\n%s", vxlan, plain, strings.Join(lines, "\n"))
	}
	if tn := tunnelOf(t, a.d, "overlay"); len(tn.Peers) != 1 || tn.Peers[0].RXFrames == 0 {
		t.Errorf("tunnel of the overlay: %+v, want one peer it received from", tn.Peers)
	}
	if n := inspectNetwork(t, a.d, "direct"); n.Routing == nil || n.Routing.Forwarded == 0 || n.Tunnel != nil {
		t.Errorf("direct network: routing %+v, tunnel %+v; want packets routed and no tunnel", n.Routing, n.Tunnel)
	}
}

// captureWire captures count packets matching filter on ifname in ns,
// running traffic again and again until tshark has them, and returns them
// as "protocols sources destinations" lines (an encapsulated packet has
// outer and inner addresses, comma-separated).
func captureWire(t *testing.T, ns *netnstest.NS, ifname, filter string, count int, traffic func()) []string {
	t.Helper()
	out := ns.Tshark(t, netnstest.Capture{Iface: ifname, Filter: filter, Count: count,
		Fields: []string{"frame.protocols", "ip.src", "ip.dst"}}, traffic)
	return strings.Split(strings.TrimSpace(out), "\n")
}
