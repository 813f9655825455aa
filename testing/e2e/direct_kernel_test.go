package e2e_test

import (
	"strings"
	"testing"

	"github.com/switchyard-net/switchyard/testing/clitest"
	"github.com/switchyard-net/switchyard/testing/netnstest"
)

// A kernel host with a Docker-style bridge on one side of the VPC, a
// Switchyard host on the other: host B is a namespace with br0 (the
// bridge's address the containers' gateway, as docker0's), a container
// namespace on a veth into it, ip_forward=1 and a route to A's container
// subnet via host A; host A is a daemon with a host interface and a
// route to B's bridge subnet.
//
//	ca ─ [daemon A: 10.213.86.0/24] ─ kernel A 10.213.80.1 ═vpc0═ 10.213.80.2 kernel B ─ br0 10.213.87.1/24 ─ veth ─ cb 10.213.87.2
func TestDirectRoutingKernelBridgePeer(t *testing.T) {
	const (
		subnetA, subnetB = "10.213.86.0/24", "10.213.87.0/24"
		brB, addrB       = "10.213.87.1", "10.213.87.2"
	)
	a, b := netnstest.New(t), netnstest.New(t)
	a.MustRun("ip", "link", "add", "vpc0", "type", "veth", "peer", "name", "vpc0", "netns", b.Name)
	for _, h := range []struct {
		ns                 *netnstest.NS
		addr, peer, remote string
	}{{a, directVPCA, directVPCB, subnetB}, {b, directVPCB, directVPCA, subnetA}} {
		h.ns.MustRun("ip", "addr", "add", h.addr+"/24", "dev", "vpc0")
		h.ns.MustRun("ip", "link", "set", "vpc0", "up")
		h.ns.MustRun("sysctl", "-qw", "net.ipv4.ip_forward=1")
		h.ns.MustRun("ip", "route", "add", h.remote, "via", h.peer)
	}

	// Host B: Docker's docker0, made by hand.
	cb := netnstest.New(t)
	b.MustRun("ip", "link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0")
	b.MustRun("ip", "addr", "add", brB+"/24", "dev", "br0")
	b.MustRun("ip", "link", "set", "br0", "up")
	b.MustRun("ip", "link", "add", "vethcb", "type", "veth", "peer", "name", "eth0", "netns", cb.Name)
	b.MustRun("ip", "link", "set", "vethcb", "master", "br0")
	b.MustRun("ip", "link", "set", "vethcb", "up")
	cb.MustRun("ip", "addr", "add", addrB+"/24", "dev", "eth0")
	cb.MustRun("ip", "link", "set", "eth0", "up")
	cb.MustRun("ip", "link", "set", "lo", "up")
	cb.MustRun("ip", "route", "add", "default", "via", brB)

	// Host A: Switchyard.
	d := clitest.NewDaemon(t)
	d.Wrap = []string{"nsenter", "--net=" + a.Path}
	d.Start()
	ha := &directHost{ns: a, d: d}
	d.MustRun("network", "create", "direct", "--subnet", subnetA, "--host-interface", "sy-direct", "--route", subnetB)
	ca, addrA := ha.container(t, "direct", "ca")

	// Ping both ways by real address. cb's reply to ca crosses kernel B
	// and kernel A, which delivers it on the host interface straight to
	// ca (on-link); ca's reply to cb crosses A's gateway, kernel A and
	// kernel B.
	for _, p := range []struct {
		from          *netnstest.NS
		name, to, ttl string
	}{{ca, "ca", addrB, "ttl=62"}, {cb, "cb", addrA, "ttl=61"}} {
		out, err := p.from.Run("ping", "-c", "2", "-i", "0.2", "-W", "2", p.to)
		if err != nil {
			t.Fatalf("ping %s → %s: %v\n%s", p.name, p.to, err, out)
		}
		if !strings.Contains(out, p.ttl) {
			t.Errorf("ping %s → %s: %s\nwant %s (the routers between, no tunnel)", p.name, p.to, out, p.ttl)
		}
	}

	// TCP both ways; each server sees the other container's own address.
	whoServer(t, cb, addrB+":8080")
	if got := askWho(t, ca, addrB+":8080"); !strings.HasPrefix(got, addrA+":") {
		t.Errorf("the kernel-bridge container saw ca as %q, want its own address %s", got, addrA)
	}
	whoServer(t, ca, addrA+":8080")
	if got := askWho(t, cb, addrA+":8080"); !strings.HasPrefix(got, addrB+":") {
		t.Errorf("the Switchyard container saw cb as %q, want its own address %s", got, addrB)
	}

	// Full-size packets cross whole, and the wire carries plain IP.
	if out, err := ca.Run("ping", "-c", "1", "-W", "2", "-M", "do", "-s", "1472", addrB); err != nil {
		t.Errorf("a 1500-byte packet with DF, ca → cb: %v\n%s", err, out)
	}
	sum, took := netnstest.Transfer(t, cb, ca, addrA+":9000", 20*mb)
	if sum == ([32]byte{}) {
		t.Fatal("the transfer from the kernel host produced no checksum")
	}
	t.Logf("20 MB kernel bridge → Switchyard by direct routing in %v", took)
	wire := captureICMP(t, b, "vpc0", func() { cb.Ping(addrA, 1) })
	if want := addrB + " " + addrA; !strings.Contains(wire, want) {
		t.Errorf("on the wire between the hosts: %q, want plain IP %s", wire, want)
	}
}
