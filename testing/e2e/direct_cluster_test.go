package e2e_test

import (
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/testing/etcdtest"
)

// Direct routing with the routes taken from etcd's leases, as flannel's
// host-gw: three hosts on one L2 segment (the "wire" bridge), each with a
// network --cluster … --routing direct whose subnet is its own /24 lease
// of 10.213.96.0/20. Each host routes the others' leases, in its gateway
// and in its kernel (via their public addresses), with no tunnel and no
// static route; a third host's lease is routed when it comes and
// unrouted when it goes; network rm takes the kernel routes away.
func TestDirectRoutingCluster(t *testing.T) {
	hs := newHosts(t, 3)
	a, b, c := hs.h[0], hs.h[1], hs.h[2]
	etcd := etcdtest.Start(t, etcdtest.Config{
		NetNS: hs.wire.Path, ClientAddr: wireAddr + ":2379", PeerAddr: wireAddr + ":2380",
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return hs.wire.Dial(ctx, network, addr)
		},
	})
	cl := "etcd://" + strings.TrimPrefix(etcd.URL, "http://")
	rng := netip.MustParsePrefix("10.213.96.0/20")
	create := func(h *host) api.Network {
		t.Helper()
		h.ns.MustRun("sysctl", "-qw", "net.ipv4.ip_forward=1")
		var n api.Network
		out := h.d.MustRun("network", "create", "hgw", "--subnet", rng.String(), "--cluster", cl, "--routing", "direct",
			"--host-interface", "sy-hgw", "--public-addr", h.addr, "--lease-ttl", "3s", "--format", "json")
		if err := json.Unmarshal([]byte(out), &n); err != nil {
			t.Fatal(err)
		}
		if n.Subnet.Bits() != 24 || !rng.Contains(n.Subnet.Addr()) || n.Gateway != n.Subnet.Addr().Next() ||
			n.HostInterface == nil || !n.Subnet.Contains(n.HostInterface.Addr) ||
			n.DirectCluster == nil || n.DirectCluster.Range != rng || !n.DirectCluster.Joined || n.Tunnel != nil {
			t.Fatalf("host %s: network %+v, want a /24 lease of %s as its subnet, joined, no tunnel", h.addr, n, rng)
		}
		return n
	}
	na, nb := create(a), create(b)
	if na.Subnet == nb.Subnet {
		t.Fatalf("hosts a and b both leased %s", na.Subnet)
	}
	waitRoutes(t, a, nb.Subnet)
	waitRoutes(t, b, na.Subnet)
	if out := a.ns.MustRun("ip", "-4", "route", "show", nb.Subnet.String()); !strings.Contains(out, "via "+b.addr) {
		t.Errorf("host a's kernel route to b's lease %s: %q, want via %s", nb.Subnet, out, b.addr)
	}

	ca, addrA := a.container(t, "hgw", "ca")
	cb, addrB := b.container(t, "hgw", "cb")
	out, err := ca.Run("ping", "-c", "2", "-i", "0.2", "-W", "2", addrB)
	if err != nil {
		t.Fatalf("ping across hosts by leases %s → %s: %v\n%s", addrA, addrB, err, out)
	}
	// cb answers with TTL 64; b's gateway, kernel b and kernel a take one
	// each: routed, not tunnelled.
	if !strings.Contains(out, "ttl=61") {
		t.Errorf("ping reply across hosts: %s\nwant ttl=61 (three routers, no tunnel)", out)
	}
	whoServer(t, cb, addrB+":8080")
	if got := askWho(t, ca, addrB+":8080"); !strings.HasPrefix(got, addrA+":") {
		t.Errorf("the server on host b saw ca as %q, want its own address %s", got, addrA)
	}

	if text := a.d.MustRun("network", "inspect", "hgw"); !strings.Contains(text, "Direct routing:") ||
		!strings.Contains(text, nb.Subnet.String()+" via "+na.HostInterface.Addr.String()) {
		t.Errorf("inspect text lacks the cluster or the routed lease:\n%s", text)
	}

	// Host b's daemon is killed: its lease expires (3 s TTL) and a stops
	// routing it. Restarted, b takes its lease back, the routes return
	// on both sides, and cb is reached again.
	b.d.Kill9()
	waitRoutes(t, a)
	b.d.Start()
	if got := inspectNetwork(t, b.d, "hgw").Subnet; got != nb.Subnet {
		t.Fatalf("host b restarted with subnet %s, want its lease %s back", got, nb.Subnet)
	}
	waitRoutes(t, a, nb.Subnet)
	waitRoutes(t, b, na.Subnet)
	if out, err := ca.Run("ping", "-c", "2", "-i", "0.2", "-W", "2", addrB); err != nil {
		t.Errorf("ping a → b's container after b's restart: %v\n%s\n%s\n%s", err, out, b.ns.MustRun("ip", "addr"), b.ns.MustRun("ip", "route"))
	}

	// A third host comes: the others route its lease. It goes: they stop.
	nc := create(c)
	waitRoutes(t, a, nb.Subnet, nc.Subnet)
	waitRoutes(t, c, na.Subnet, nb.Subnet)
	cc, addrC := c.container(t, "hgw", "cc")
	if out, err := ca.Run("ping", "-c", "1", "-W", "2", addrC); err != nil {
		t.Errorf("ping a → the third host's container %s: %v\n%s", addrC, err, out)
	}
	_ = cc
	c.d.MustRun("disconnect", "hgw", "cc")
	c.d.MustRun("network", "rm", "hgw")
	waitRoutes(t, a, nb.Subnet)
	waitRoutes(t, b, na.Subnet)
	if out := a.ns.MustRun("ip", "-4", "route", "show", nc.Subnet.String()); out != "" {
		t.Errorf("host a kept a kernel route to the lease %s of a host that left: %q", nc.Subnet, out)
	}
	if out := c.ns.MustRun("ip", "-4", "route", "show", na.Subnet.String()); out != "" {
		t.Errorf("host c kept its kernel route to %s after network rm: %q", na.Subnet, out)
	}
	if out, err := c.ns.Run("ip", "link", "show", "sy-hgw"); err == nil {
		t.Errorf("host c kept its host interface after network rm: %s", out)
	}
}

// waitRoutes waits until h's network hgw routes exactly want.
func waitRoutes(t *testing.T, h *host, want ...netip.Prefix) {
	t.Helper()
	slices.SortFunc(want, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	deadline := time.Now().Add(20 * time.Second)
	for {
		n := inspectNetwork(t, h.d, "hgw")
		if slices.Equal(n.Routes, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("host %s routes %v, want %v", h.addr, n.Routes, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Bad --routing direct requests are refused with one error each, naming
// the field, before etcd is asked anything, and create nothing.
func TestDirectRoutingClusterRefusals(t *testing.T) {
	a, _ := newDirectHosts(t)
	const cl = "etcd://127.0.0.1:1" // never dialled: every request is refused first
	base := []string{"--subnet", "10.213.112.0/20", "--cluster", cl, "--routing", "direct", "--host-interface", "sy-bad", "--public-addr", directVPCA}
	without := func(flag string) []string {
		i := slices.Index(base, flag)
		return slices.Delete(slices.Clone(base), i, i+2)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{slices.Clone(base[:len(base)-2]), "--public-addr"},
		{without("--cluster"), "needs --cluster"},
		{without("--host-interface"), "--host-interface"},
		{append(slices.Clone(base), "--tunnel", "vxlan"), "--tunnel"},
		{append(slices.Clone(base), "--route", directSubnetB), "--route"},
		{append(slices.Clone(base), "--ip-range", "10.213.112.0/24"), "--ip-range"},
		{append(without("--routing"), "--routing", "bgp"), "unknown routing"},
		{append(without("--public-addr"), "--public-addr", "nowhere"), "--public-addr"},
	} {
		r := a.d.Run(append([]string{"network", "create", "bad"}, c.args...)...)
		if r.Code == 0 || !strings.Contains(r.Stderr, c.want) {
			t.Errorf("network create %v: %v, want a refusal saying %q", c.args, r, c.want)
		}
	}
	a.ns.MustRun("sysctl", "-qw", "net.ipv4.ip_forward=0")
	if r := a.d.Run(append([]string{"network", "create", "bad"}, base...)...); r.Code == 0 || !strings.Contains(r.Stderr, "net.ipv4.ip_forward") {
		t.Errorf("routing direct without forwarding: %v, want a refusal naming net.ipv4.ip_forward", r)
	}
	if out := a.d.MustRun("network", "ls"); strings.Contains(out, "bad") {
		t.Errorf("a refused network is listed:\n%s", out)
	}
	if out, err := a.ns.Run("ip", "link", "show", "sy-bad"); err == nil {
		t.Errorf("a refused network left its host interface: %s", out)
	}
}
