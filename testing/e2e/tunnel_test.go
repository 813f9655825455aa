package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/testing/clitest"
	"github.com/switchyard-net/switchyard/testing/etcdtest"
	"github.com/switchyard-net/switchyard/testing/netnstest"
)

// hosts is a test topology for tunnels: "hosts" are namespaces whose eth0
// sits on one bridge (in a namespace "wire", which also has 10.213.70.254
// for an etcd server), each running its own daemon.
//
//	host1 10.213.70.1 ─┐
//	host2 10.213.70.2 ─┼─ br0 in wire (10.213.70.254)
//	host3 10.213.70.3 ─┘
type hosts struct {
	wire *netnstest.NS
	h    []*host
}

type host struct {
	ns   *netnstest.NS
	d    *clitest.Daemon
	addr string
}

const wireAddr = "10.213.70.254"

func newHosts(t *testing.T, n int) *hosts {
	t.Helper()
	hs := &hosts{wire: netnstest.New(t)}
	hs.wire.MustRun("ip", "link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0")
	hs.wire.MustRun("ip", "addr", "add", wireAddr+"/24", "dev", "br0")
	hs.wire.MustRun("ip", "link", "set", "br0", "up")
	for i := range n {
		h := &host{ns: netnstest.New(t), addr: fmt.Sprintf("10.213.70.%d", i+1)}
		port := fmt.Sprintf("h%d", i+1)
		hs.wire.MustRun("ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", h.ns.Name)
		hs.wire.MustRun("ip", "link", "set", port, "master", "br0", "up")
		h.ns.MustRun("ip", "addr", "add", h.addr+"/24", "dev", "eth0")
		h.ns.MustRun("ip", "link", "set", "eth0", "up")
		h.d = clitest.NewDaemon(t)
		h.d.Wrap = []string{"nsenter", "--net=" + h.ns.Path}
		h.d.Start()
		hs.h = append(hs.h, h)
	}
	return hs
}

// container connects a new namespace to network on h and returns it with
// its address.
func (h *host) container(t *testing.T, network, name string) (*netnstest.NS, string) {
	t.Helper()
	ns := netnstest.New(t)
	var e api.Endpoint
	if err := json.Unmarshal([]byte(h.d.MustRun("connect", network, "--netns", ns.Path, "--name", name, "--format", "json")), &e); err != nil {
		t.Fatal(err)
	}
	return ns, e.Address.Addr().String()
}

// waitPeers waits until h's tunnel on network has want peers.
func waitPeers(t *testing.T, h *host, network string, want int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		tn := tunnelOf(t, h.d, network)
		if len(tn.Peers) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("host %s has %d peers, want %d: %+v", h.addr, len(tn.Peers), want, tn.Peers)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tunnelOf(t *testing.T, d *clitest.Daemon, network string) api.Tunnel {
	t.Helper()
	var tn api.Tunnel
	if err := json.Unmarshal([]byte(d.MustRun("tunnel", "ls", network, "--format", "json")), &tn); err != nil {
		t.Fatal(err)
	}
	return tn
}

// Two hosts joined by the VXLAN tunnel through their daemons, with static
// peers and an --ip-range each: ping and 100 MB with equal checksums
// between containers on different hosts; each container keeps its own
// host's gateway; tunnel ls shows the peer, its MACs and bytes; peers are
// added and removed at run time, bad ones refused.
func TestTunnelTwoHosts(t *testing.T) {
	hs := newHosts(t, 2)
	a, b := hs.h[0], hs.h[1]
	a.d.MustRun("network", "create", "overlay", "--subnet", "10.250.0.0/16", "--ip-range", "10.250.1.0/24",
		"--tunnel", "vxlan", "--vni", "42", "--tunnel-listen", a.addr+":4789", "--peer", b.addr+":4789")
	b.d.MustRun("network", "create", "overlay", "--subnet", "10.250.0.0/16", "--ip-range", "10.250.2.0/24",
		"--tunnel", "vxlan", "--vni", "42", "--tunnel-listen", b.addr+":4789", "--peer", a.addr)
	ca, addrA := a.container(t, "overlay", "ca")
	cb, addrB := b.container(t, "overlay", "cb")
	if out := ca.MustRun("ip", "link", "show", "eth0"); !strings.Contains(out, "mtu 1450") {
		t.Errorf("container MTU on a VXLAN network: %s, want 1450", out)
	}
	if err := ca.Ping(addrB, 2); err != nil {
		t.Fatalf("ping across hosts %s → %s: %v", addrA, addrB, err)
	}
	sum1, took := netnstest.Transfer(t, ca, cb, addrB+":9000", 100*mb)
	t.Logf("100 MB host1 → host2 in %v (%.2f Gbit/s)", took, 800/took.Seconds()/1000)
	sum2, _ := netnstest.Transfer(t, cb, ca, addrA+":9001", 100*mb)
	if sum1 == ([32]byte{}) || sum2 == ([32]byte{}) {
		t.Fatal("a transfer produced no checksum")
	}
	// Each host's containers reach their own gateway (same address, same
	// MAC on both hosts), also after all that cross-host traffic.
	for _, c := range []*netnstest.NS{ca, cb} {
		if err := c.Ping("10.250.0.1", 1); err != nil {
			t.Errorf("%s → its gateway: %v", c.Name, err)
		}
	}
	// The other host's gateway answered ca's ARP for 10.250.0.1 too; its
	// reply, from the same gateway MAC, was refused at the tunnel and
	// counted, so the local gateway kept its place in the switch.
	var st api.Stats
	if err := json.Unmarshal([]byte(a.d.MustRun("stats", "--format", "json")), &st); err != nil {
		t.Fatal(err)
	}
	refused := uint64(0)
	for _, n := range st.Networks {
		for _, p := range n.Ports {
			if n.Network == "overlay" && p.Kind == "tunnel" {
				refused = p.Stats.DropsBy["spoofed"]
			}
		}
	}
	if refused == 0 {
		t.Errorf("no frame from the other host's gateway was refused at host1's tunnel: %+v", st.Networks)
	}
	// …and it is their own host's gateway that answers, not the other
	// host's (whose ARP replies cross the tunnel too): each host's DNS
	// knows its own endpoints only.
	for _, c := range []struct {
		ns         *netnstest.NS
		name, addr string
	}{{ca, "ca", addrA}, {cb, "cb", addrB}} {
		if got := aRecords(query(t, c.ns, "udp", "10.250.0.1", c.name, dns.TypeA)); len(got) != 1 || got[0] != c.addr {
			t.Errorf("%s asked its gateway for its own name and got %v, want %s: another host's gateway answered", c.name, got, c.addr)
		}
	}

	tn := tunnelOf(t, a.d, "overlay")
	if tn.Mode != "vxlan" || tn.VNI != 42 || len(tn.Peers) != 1 || tn.Peers[0].Addr.String() != b.addr+":4789" {
		t.Fatalf("tunnel ls on host1: %+v", tn)
	}
	if p := tn.Peers[0]; p.RXBytes < 100*mb || p.MACs < 1 || p.LastSeen.IsZero() || !p.Static {
		t.Errorf("peer %s: %+v, want ≥ 100 MB received, a learned MAC, a last-seen time", p.Addr, p)
	}
	out := a.d.MustRun("tunnel", "ls", "overlay")
	for _, want := range []string{"vxlan, VNI 42", b.addr + ":4789", "static"} {
		if !strings.Contains(out, want) {
			t.Errorf("tunnel ls table lacks %q:\n%s", want, out)
		}
	}

	a.d.MustRun("tunnel", "peer", "add", "overlay", "10.213.70.9")
	if tn := tunnelOf(t, a.d, "overlay"); len(tn.Peers) != 2 {
		t.Errorf("after peer add: %d peers, want 2", len(tn.Peers))
	}
	a.d.MustRun("tunnel", "peer", "rm", "overlay", "10.213.70.9:4789")
	for _, c := range []struct{ args, want string }{
		{"tunnel peer add overlay not-an-ip", `"not-an-ip": not another host's address`},
		{"tunnel peer add overlay " + b.addr, "already a peer"},
		{"tunnel peer rm overlay 10.213.70.77", "not a static peer"},
		{"tunnel ls bridge", "has no tunnel"},
		{"network create bad --subnet 10.251.0.0/16 --tunnel gre", `invalid --tunnel "gre": unknown tunnel mode`},
		{"network create bad --tunnel vxlan", "invalid --subnet: missing: a network with a --tunnel needs one"},
		{"network create bad --subnet 10.251.0.0/16 --tunnel vxlan --vni 16777216", `invalid --vni "16777216": out of range`},
		{"network create bad --subnet 10.251.0.0/16 --tunnel secure", "invalid --key-file: missing: a secure tunnel needs"},
		{"network create bad --subnet 10.251.0.0/16 --peer 10.0.0.1", "invalid --peer: given without --tunnel"},
		{"network create bad --subnet 10.251.0.0/16 --tunnel vxlan --cluster etcd://x", `--cluster "etcd://x": not a list of etcd endpoints`},
	} {
		r := a.d.Run(strings.Fields(c.args)...)
		if r.Code == 0 || !strings.Contains(r.Stderr, c.want) {
			t.Errorf("%s: %s\nwant an error containing %q", c.args, r, c.want)
		}
	}
	// The peer removal and the refusals changed nothing.
	if err := ca.Ping(addrB, 1); err != nil {
		t.Errorf("ping after the peer changes: %v", err)
	}
	// A restart of host1's daemon keeps the tunnel (stored), peers included.
	a.d.Stop()
	a.d.Start()
	if err := ca.Ping(addrB, 3); err != nil {
		t.Errorf("ping after host1's daemon restarted: %v", err)
	}
}

// The sealed tunnel: traffic flows, the container MTU is 1418, and a
// network with a larger MTU than the tunnel gets "fragmentation needed"
// from the switch, so path MTU discovery works instead of a black hole.
func TestTunnelSecure(t *testing.T) {
	hs := newHosts(t, 2)
	a, b := hs.h[0], hs.h[1]
	key := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(key, []byte("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for i, h := range hs.h {
		peer := hs.h[1-i].addr
		h.d.MustRun("network", "create", "sealed", "--subnet", "10.251.0.0/16", "--ip-range", fmt.Sprintf("10.251.%d.0/24", i+1),
			"--tunnel", "secure", "--key-file", key, "--tunnel-listen", h.addr, "--peer", peer)
		// --mtu above what the tunnel carries: the switch sends ICMP
		// "fragmentation needed" for what does not fit.
		h.d.MustRun("network", "create", "big", "--subnet", "10.252.0.0/16", "--ip-range", fmt.Sprintf("10.252.%d.0/24", i+1),
			"--tunnel", "secure", "--key-file", key, "--tunnel-listen", h.addr+":4800", "--peer", peer+":4800", "--mtu", "1500")
	}
	ca, _ := a.container(t, "sealed", "ca")
	cb, addrB := b.container(t, "sealed", "cb")
	if out := ca.MustRun("ip", "link", "show", "eth0"); !strings.Contains(out, "mtu 1418") {
		t.Errorf("container MTU on a secure network: %s, want 1418", out)
	}
	if err := ca.Ping(addrB, 2); err != nil {
		t.Fatalf("ping across the sealed tunnel: %v", err)
	}
	netnstest.Transfer(t, ca, cb, addrB+":9000", 20*mb)
	if tn := tunnelOf(t, a.d, "sealed"); !tn.Encrypted || tn.Mode != "secure" || tn.Stats.TXBytes < 20*mb || tn.SenderID == 0 {
		t.Errorf("tunnel ls: %+v", tn)
	}

	xa, _ := a.container(t, "big", "xa")
	xb, addrXB := b.container(t, "big", "xb")
	out, err := xa.Run("ping", "-c", "1", "-W", "2", "-M", "do", "-s", "1472", addrXB)
	if err == nil || !strings.Contains(out, "mtu = 1418") {
		t.Errorf("a 1500-byte DF ping over a 1418-byte tunnel: %v\n%s\nwant \"Frag needed\" with mtu = 1418", err, out)
	}
	netnstest.Transfer(t, xa, xb, addrXB+":9000", 20*mb) // TCP finds the path MTU
}

// Flannel's model through the daemons: three hosts with --cluster take
// disjoint subnet leases in a real etcd and find each other as peers;
// a killed host's lease expires and the others drop it; restarted, it
// gets its lease back and the others add it again.
func TestTunnelCluster(t *testing.T) {
	hs := newHosts(t, 3)
	etcd := etcdtest.Start(t, etcdtest.Config{
		NetNS: hs.wire.Path, ClientAddr: wireAddr + ":2379", PeerAddr: wireAddr + ":2380",
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return hs.wire.Dial(ctx, network, addr)
		},
	})
	cluster := "etcd://" + strings.TrimPrefix(etcd.URL, "http://")
	ranges := map[string]bool{}
	for _, h := range hs.h {
		var n api.Network
		out := h.d.MustRun("network", "create", "flat", "--subnet", "10.253.0.0/16", "--tunnel", "vxlan",
			"--tunnel-listen", h.addr+":4789", "--cluster", cluster, "--lease-ttl", "3s", "--format", "json")
		if err := json.Unmarshal([]byte(out), &n); err != nil {
			t.Fatal(err)
		}
		if n.Tunnel == nil || n.Tunnel.HostSubnet.Bits() != 24 || n.IPRange != n.Tunnel.HostSubnet {
			t.Fatalf("host %s: network %+v, want a /24 lease as its ip-range", h.addr, n)
		}
		if ranges[n.IPRange.String()] {
			t.Fatalf("host %s got %s, which another host holds", h.addr, n.IPRange)
		}
		ranges[n.IPRange.String()] = true
	}
	for _, h := range hs.h {
		waitPeers(t, h, "flat", 2)
	}
	c1, _ := hs.h[0].container(t, "flat", "c1")
	_, addr3 := hs.h[2].container(t, "flat", "c3")
	if err := c1.Ping(addr3, 2); err != nil {
		t.Fatalf("host1 → host3 through peers found in etcd: %v", err)
	}
	before := tunnelOf(t, hs.h[2].d, "flat").HostSubnet

	hs.h[2].d.Kill9()
	waitPeers(t, hs.h[0], "flat", 1) // the lease expired (3 s TTL)
	waitPeers(t, hs.h[1], "flat", 1)
	hs.h[2].d.Start()
	if got := tunnelOf(t, hs.h[2].d, "flat").HostSubnet; got != before {
		t.Errorf("host3 restarted with lease %s, want its %s back", got, before)
	}
	waitPeers(t, hs.h[0], "flat", 2)
	if err := c1.Ping(addr3, 3); err != nil {
		t.Errorf("host1 → host3 after host3's restart: %v", err)
	}
}
