package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/testing/clitest"
	"github.com/switchyard-net/switchyard/testing/etcdtest"
	"github.com/switchyard-net/switchyard/testing/netnstest"
)

// v6Hosts are two "hosts" joined by one veth that carries IPv6 only, each
// running its own daemon:
//
//	host1 eth0 fd00:213:6::1/64 ──veth── eth0 fd00:213:6::2/64 host2
//	(etcd on [fd00:213:6::1]:2379)
func v6Hosts(t *testing.T) []*host {
	t.Helper()
	var hs []*host
	for i := range 2 {
		h := &host{ns: netnstest.New(t), addr: fmt.Sprintf("fd00:213:6::%d", i+1)}
		h.ns.MustRun("sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0")
		h.ns.MustRun("sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0")
		hs = append(hs, h)
	}
	hs[0].ns.MustRun("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", hs[1].ns.Name)
	for _, h := range hs {
		h.ns.MustRun("ip", "addr", "add", h.addr+"/64", "dev", "eth0", "nodad")
		h.ns.MustRun("ip", "link", "set", "eth0", "up")
		h.ns.MustRun("ip", "link", "set", "lo", "up")
		if out := h.ns.MustRun("ip", "-4", "addr", "show", "dev", "eth0"); out != "" {
			t.Fatalf("the underlay has an IPv4 address: %s", out)
		}
		h.d = clitest.NewDaemon(t)
		h.d.Wrap = []string{"nsenter", "--net=" + h.ns.Path}
		h.d.Start()
	}
	return hs
}

// Two hosts whose only link is IPv6, a real etcd on it, and a dual-stack
// network (--subnet 10.254.0.0/16 --subnet fd00:254::/64) over the VXLAN
// tunnel with --cluster: each host leases an IPv4 /24 and an IPv6 /72 in
// etcd, disjoint from the other's, publishes its IPv6 tunnel address and
// finds the other as its peer; the containers' MTU is 1430 (VXLAN over
// IPv6); each endpoint gets an address of each family from its own host's
// leases; containers on the two hosts ping each other over IPv4 and IPv6
// and talk TCP over IPv6, seeing each other's real addresses; tshark on
// the underlay sees VXLAN in UDP/4789 over IPv6 between the hosts; a
// daemon restarted within the TTL keeps both leases.
func TestTunnelIPv6UnderlayDualStackCluster(t *testing.T) {
	hs := v6Hosts(t)
	etcdAddr := "[" + hs[0].addr + "]"
	etcd := etcdtest.Start(t, etcdtest.Config{
		NetNS: hs[0].ns.Path, ClientAddr: etcdAddr + ":2379", PeerAddr: etcdAddr + ":2380",
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return hs[0].ns.Dial(ctx, network, addr)
		},
	})
	cluster := "etcd://" + strings.TrimPrefix(etcd.URL, "http://")
	v4, v6 := netip.MustParsePrefix("10.254.0.0/16"), netip.MustParsePrefix("fd00:254::/64")
	var nets []api.Network
	for _, h := range hs {
		var n api.Network
		out := h.d.MustRun("network", "create", "dual", "--subnet", v4.String(), "--subnet", v6.String(), "--tunnel", "vxlan",
			"--tunnel-listen", "["+h.addr+"]:4789", "--cluster", cluster, "--lease-ttl", "5s", "--format", "json")
		if err := json.Unmarshal([]byte(out), &n); err != nil {
			t.Fatal(err)
		}
		tn := n.Tunnel
		if tn == nil || tn.HostSubnet.Bits() != 24 || !v4.Contains(tn.HostSubnet.Addr()) || n.IPRange != tn.HostSubnet ||
			tn.HostSubnet6.Bits() != 72 || !v6.Contains(tn.HostSubnet6.Addr()) || n.IPRange6 != tn.HostSubnet6 {
			t.Fatalf("host %s: network %+v tunnel %+v, want a /24 and a /72 lease as its ranges", h.addr, n, tn)
		}
		if tn.MTU != 1430 || n.MTU != 1430 || tn.Listen.String() != "["+h.addr+"]:4789" {
			t.Errorf("host %s: tunnel on %s with MTU %d, network MTU %d; want [%s]:4789 and 1430", h.addr, tn.Listen, tn.MTU, n.MTU, h.addr)
		}
		nets = append(nets, n)
	}
	if a, b := nets[0].Tunnel, nets[1].Tunnel; a.HostSubnet == b.HostSubnet || a.HostSubnet6.Overlaps(b.HostSubnet6) {
		t.Fatalf("the hosts share a lease: %s %s and %s %s", a.HostSubnet, a.HostSubnet6, b.HostSubnet, b.HostSubnet6)
	}
	for i, h := range hs {
		waitPeers(t, h, "dual", 1)
		tn := tunnelOf(t, h.d, "dual")
		other := "[" + hs[1-i].addr + "]:4789"
		if len(tn.Peers) != 1 || tn.Peers[0].Addr.String() != other {
			t.Errorf("host %s's peers %+v, want %s", h.addr, tn.Peers, other)
		}
		found := false
		for _, ho := range tn.Hosts {
			if !ho.Self && ho.Subnet6 == nets[1-i].Tunnel.HostSubnet6 && ho.PublicAddr.String() == other {
				found = true
			}
		}
		if !found {
			t.Errorf("host %s's tunnel ls does not list the other host's IPv6 lease %s at %s: %+v", h.addr, nets[1-i].Tunnel.HostSubnet6, other, tn.Hosts)
		}
	}
	if text := hs[0].d.MustRun("tunnel", "ls", "dual"); !strings.Contains(text, nets[1].Tunnel.HostSubnet6.String()) {
		t.Errorf("tunnel ls lacks the other host's IPv6 lease %s:\n%s", nets[1].Tunnel.HostSubnet6, text)
	}

	type ctr struct {
		ns     *netnstest.NS
		v4, v6 netip.Addr
	}
	var cs []ctr
	for i, h := range hs {
		ns := netnstest.New(t)
		var e api.Endpoint
		if err := json.Unmarshal([]byte(h.d.MustRun("connect", "dual", "--netns", ns.Path, "--name", fmt.Sprintf("c%d", i+1), "--format", "json")), &e); err != nil {
			t.Fatal(err)
		}
		if !nets[i].Tunnel.HostSubnet.Contains(e.Address.Addr()) || !nets[i].Tunnel.HostSubnet6.Contains(e.Address6.Addr()) {
			t.Fatalf("endpoint on host %s got %s and %s, want addresses from its host's leases %s and %s",
				h.addr, e.Address, e.Address6, nets[i].Tunnel.HostSubnet, nets[i].Tunnel.HostSubnet6)
		}
		if out := ns.MustRun("ip", "link", "show", "eth0"); !strings.Contains(out, "mtu 1430") {
			t.Errorf("container MTU over an IPv6 underlay: %s, want 1430", out)
		}
		cs = append(cs, ctr{ns: ns, v4: e.Address.Addr(), v6: e.Address6.Addr()})
	}
	a, b := cs[0], cs[1]
	var pingErr error
	seen := captureVXLAN6(t, hs[0].ns, func() {
		pingErr = a.ns.Ping(b.v6.String(), 1)
		if err := b.ns.Ping(a.v4.String(), 1); err != nil && pingErr == nil {
			pingErr = err
		}
	})
	if pingErr != nil {
		t.Errorf("ping across the IPv6 underlay, last round: %v", pingErr)
	}
	for _, want := range []string{hs[0].addr + " " + hs[1].addr + " 4789", hs[1].addr + " " + hs[0].addr + " 4789"} {
		if !strings.Contains(seen, want) {
			t.Errorf("tshark on host1's eth0 did not see UDP/4789 over IPv6 %q; saw:\n%s", want, seen)
		}
	}
	if err := a.ns.Ping(b.v4.String(), 2); err != nil {
		t.Errorf("ping over IPv4 inside the overlay %s → %s: %v", a.v4, b.v4, err)
	}
	if out, err := b.ns.Run("ping", "-6", "-c", "2", "-i", "0.2", "-W", "2", a.v6.String()); err != nil {
		t.Errorf("ping -6 inside the overlay %s → %s: %v\n%s", b.v6, a.v6, err, out)
	}
	whoServer(t, b.ns, "["+b.v6.String()+"]:8080")
	// The client's source is the IPv6 address the daemon gave it (its
	// only global one: no SLAAC address beside it); no NAT on the way.
	got := askWho(t, a.ns, "["+b.v6.String()+"]:8080")
	if ap, err := netip.ParseAddrPort(got); err != nil || ap.Addr() != a.v6 {
		own, _ := a.ns.Addrs("eth0")
		t.Errorf("the server on host 2 saw the client as %q, want its address %s (eth0 has %v)", got, a.v6, own)
	}
	netnstest.Transfer(t, a.ns, b.ns, "["+b.v6.String()+"]:9000", 16*mb)

	// Host 2's daemon is killed and restarted within the lease's TTL: it
	// keeps both leases, and its container is reached over IPv6 again.
	hs[1].d.Kill9()
	hs[1].d.Start()
	if tn := tunnelOf(t, hs[1].d, "dual"); tn.HostSubnet != nets[1].Tunnel.HostSubnet || tn.HostSubnet6 != nets[1].Tunnel.HostSubnet6 {
		t.Errorf("host 2 restarted with leases %s and %s, want %s and %s back", tn.HostSubnet, tn.HostSubnet6, nets[1].Tunnel.HostSubnet, nets[1].Tunnel.HostSubnet6)
	}
	waitPeers(t, hs[1], "dual", 1)
	if out, err := a.ns.Run("ping", "-6", "-c", "2", "-i", "0.2", "-W", "2", b.v6.String()); err != nil {
		t.Errorf("ping -6 to host 2's container after its daemon's restart: %v\n%s", err, out)
	}
}

// captureVXLAN6 runs tshark on ns's eth0 for UDP/4789 over IPv6, calling
// traffic until it has seen 6 packets, and returns them as "src dst
// dstport" lines: the outer header's (Outer), also when the frame inside
// is IPv6 and tshark would print "outer,inner".
func captureVXLAN6(t *testing.T, ns *netnstest.NS, traffic func()) string {
	t.Helper()
	return ns.Tshark(t, netnstest.Capture{Iface: "eth0", Filter: "ip6 and udp port 4789", Count: 6, Outer: true,
		Fields: []string{"ipv6.src", "ipv6.dst", "udp.dstport"}, Every: 300 * time.Millisecond}, traffic)
}

// Bad IPv6 underlay requests through the CLI: one error each, naming the
// flag and the value, and nothing is created.
func TestTunnelIPv6UnderlayRefusals(t *testing.T) {
	hs := v6Hosts(t)
	d := hs[0].d
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"--tunnel-listen", "[fd00:213:6::1]:4789", "--peer", "10.0.0.2"}, []string{"--peer", "10.0.0.2", "IPv6 peers only"}},
		{[]string{"--tunnel-listen", "10.0.0.1:4789", "--peer", "[fd00:213:6::2]:4789"}, []string{"--peer", "[fd00:213:6::2]:4789", "[::]:4789"}},
		{[]string{"--tunnel-listen", "[fe80::1]:4789"}, []string{"--tunnel-listen", "[fe80::1]:4789", "%eth0"}},
		{[]string{"--peer", "fe80::2"}, []string{"--peer", "fe80::2", "%eth0"}},
	} {
		args := append([]string{"network", "create", "bad", "--subnet", "10.254.0.0/16", "--tunnel", "vxlan"}, c.args...)
		r := d.Run(args...)
		if r.Code == 0 {
			t.Errorf("%v accepted", c.args)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(r.Stderr, w) {
				t.Errorf("%v: %q, want it to say %q", c.args, r.Stderr, w)
			}
		}
	}
	if out := d.MustRun("network", "ls"); strings.Contains(out, "bad") {
		t.Errorf("a refused network is listed:\n%s", out)
	}
	// At run time, the same rules: an IPv4 peer on an IPv6 tunnel.
	d.MustRun("network", "create", "ok6", "--subnet", "10.254.0.0/16", "--tunnel", "vxlan", "--tunnel-listen", "[fd00:213:6::1]:4789")
	if r := d.Run("tunnel", "peer", "add", "ok6", "10.0.0.2"); r.Code == 0 || !strings.Contains(r.Stderr, "IPv4 peer on an IPv6-only socket") {
		t.Errorf("tunnel peer add of an IPv4 peer to an IPv6 tunnel: %v, want a refusal naming the family", r)
	}
	if tn := tunnelOf(t, d, "ok6"); len(tn.Peers) != 0 || len(tn.StaticPeers) != 0 {
		t.Errorf("a refused peer was kept: %+v", tn.Peers)
	}
}
