package e2e_test

import (
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/testing/clitest"
	"github.com/switchyard-net/switchyard/testing/netnstest"
)

// Direct routing across two "hosts" without a tunnel: namespaces joined
// by a veth (the VPC), each with its own daemon, a network with a host
// interface and a route to the other host's container subnet, and the
// kernel route a VPC route table would hold.
//
//	ca ─ [daemon A: 10.213.81.0/24, sy-direct .254] ─ kernel A 10.213.80.1 ═veth═ 10.213.80.2 kernel B ─ [daemon B: 10.213.82.0/24] ─ cb
//	       route 10.213.82.0/24 → host interface          ip route add 10.213.82.0/24 via 10.213.80.2 (and back)
const (
	directVPCA, directVPCB       = "10.213.80.1", "10.213.80.2"
	directSubnetA, directSubnetB = "10.213.81.0/24", "10.213.82.0/24"
)

type directHost struct {
	ns *netnstest.NS
	d  *clitest.Daemon
}

func newDirectHosts(t *testing.T) (a, b *directHost) {
	t.Helper()
	a, b = &directHost{ns: netnstest.New(t)}, &directHost{ns: netnstest.New(t)}
	a.ns.MustRun("ip", "link", "add", "vpc0", "type", "veth", "peer", "name", "vpc0", "netns", b.ns.Name)
	for _, h := range []struct {
		h          *directHost
		addr, peer string
		remote     string
	}{{a, directVPCA, directVPCB, directSubnetB}, {b, directVPCB, directVPCA, directSubnetA}} {
		h.h.ns.MustRun("ip", "addr", "add", h.addr+"/24", "dev", "vpc0")
		h.h.ns.MustRun("ip", "link", "set", "vpc0", "up")
		h.h.ns.MustRun("sysctl", "-qw", "net.ipv4.ip_forward=1")
		h.h.ns.MustRun("ip", "route", "add", h.remote, "via", h.peer)
		h.h.d = clitest.NewDaemon(t)
		h.h.d.Wrap = []string{"nsenter", "--net=" + h.h.ns.Path}
		h.h.d.Start()
	}
	return a, b
}

func (h *directHost) container(t *testing.T, network, name string) (*netnstest.NS, string) {
	t.Helper()
	ns := netnstest.New(t)
	var e api.Endpoint
	if err := json.Unmarshal([]byte(h.d.MustRun("connect", network, "--netns", ns.Path, "--name", name, "--format", "json")), &e); err != nil {
		t.Fatal(err)
	}
	return ns, e.Address.Addr().String()
}

func inspectNetwork(t *testing.T, d *clitest.Daemon, name string) api.Network {
	t.Helper()
	var n api.Network
	if err := json.Unmarshal([]byte(d.MustRun("network", "inspect", name, "--format", "json")), &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Containers on two hosts talk by their real addresses through the hosts'
// kernels: pings cross with the TTL down by one per router (three: A's
// gateway, kernel A, kernel B), servers see the other container's own
// address, the wire carries plain IP between the container addresses,
// a TTL of 1 is answered by A's gateway with time exceeded, and host A's
// namespace reaches its container by address.
func TestDirectRoutingTwoHosts(t *testing.T) {
	a, b := newDirectHosts(t)
	a.d.MustRun("network", "create", "direct", "--subnet", directSubnetA, "--host-interface", "sy-direct", "--route", directSubnetB)
	b.d.MustRun("network", "create", "direct", "--subnet", directSubnetB, "--host-interface", "sy-direct", "--route", directSubnetA)
	if out := a.ns.MustRun("ip", "-4", "addr", "show", "dev", "sy-direct"); !strings.Contains(out, "10.213.81.254/24") {
		t.Fatalf("host interface in host A: %s, want 10.213.81.254/24 on it", out)
	}
	ca, addrA := a.container(t, "direct", "ca")
	cb, addrB := b.container(t, "direct", "cb")

	out, err := ca.Run("ping", "-c", "2", "-i", "0.2", "-W", "2", addrB)
	if err != nil {
		t.Fatalf("ping across hosts %s → %s: %v\n%s", addrA, addrB, err, out)
	}
	// cb answers with TTL 64; B's gateway, kernel B and kernel A take one
	// each.
	if !strings.Contains(out, "ttl=61") {
		t.Errorf("ping reply across hosts: %s\nwant ttl=61 (three routers, no tunnel)", out)
	}

	whoServer(t, cb, addrB+":8080")
	if got := askWho(t, ca, addrB+":8080"); !strings.HasPrefix(got, addrA+":") {
		t.Errorf("the server on host B saw ca as %q, want its own address %s", got, addrA)
	}
	whoServer(t, ca, addrA+":8080")
	if got := askWho(t, cb, addrA+":8080"); !strings.HasPrefix(got, addrB+":") {
		t.Errorf("the server on host A saw cb as %q, want its own address %s", got, addrB)
	}
	// Host A reaches its container by address, from its host interface.
	if got := askWho(t, a.ns, addrA+":8080"); !strings.HasPrefix(got, "10.213.81.254:") {
		t.Errorf("ca saw host A as %q, want the host interface's 10.213.81.254", got)
	}
	if err := a.ns.Ping(addrA, 1); err != nil {
		t.Errorf("host A → its container %s: %v", addrA, err)
	}
	// Host B reaches host A's container from its own host interface's
	// address, which A's network routes back (from its VPC address, the
	// return path does: TestDirectRoutingReturnPath).
	if out, err := b.ns.Run("ping", "-c", "1", "-W", "2", "-I", "10.213.82.254", addrA); err != nil {
		t.Errorf("host B → host A's container %s: %v\n%s", addrA, err, out)
	}

	// Full-size packets, whole: 1500-byte frames, no encapsulation.
	sum, took := netnstest.Transfer(t, ca, cb, addrB+":9000", 20*mb)
	if sum == ([32]byte{}) {
		t.Fatal("the transfer across hosts produced no checksum")
	}
	t.Logf("20 MB host A → host B by direct routing in %v", took)
	if out := ca.MustRun("ping", "-c", "1", "-W", "2", "-M", "do", "-s", "1472", addrB); !strings.Contains(out, "1 received") {
		t.Errorf("a 1500-byte packet with DF did not cross: %s", out)
	}

	// The wire between the hosts carries the containers' own addresses.
	wire := captureICMP(t, a.ns, "vpc0", func() { ca.Ping(addrB, 1) })
	if want := addrA + " " + addrB; !strings.Contains(wire, want) {
		t.Errorf("on the wire between the hosts: %q, want plain IP %s", wire, want)
	}

	// One hop left: A's gateway answers with time exceeded.
	out, _ = ca.Run("ping", "-c", "1", "-W", "2", "-t", "1", addrB)
	if !strings.Contains(out, "From 10.213.81.1") || !strings.Contains(strings.ToLower(out), "time to live exceeded") {
		t.Errorf("ping with TTL 1: %s\nwant time exceeded from the gateway 10.213.81.1", out)
	}

	n := inspectNetwork(t, a.d, "direct")
	if n.HostInterface == nil || n.HostInterface.Name != "sy-direct" || n.HostInterface.Addr != netip.MustParseAddr("10.213.81.254") {
		t.Errorf("inspect's host interface: %+v", n.HostInterface)
	}
	if len(n.Routes) != 1 || n.Routes[0].String() != directSubnetB || n.Routing == nil || n.Routing.Forwarded == 0 || n.Routing.TTLExceeded == 0 {
		t.Errorf("inspect's routes %v, routing %+v: want %s, packets forwarded and one TTL exceeded", n.Routes, n.Routing, directSubnetB)
	}
	if text := a.d.MustRun("network", "inspect", "direct"); !strings.Contains(text, directSubnetB+" via 10.213.81.254") || !strings.Contains(text, "Routed subnet:") {
		t.Errorf("inspect text lacks the routed subnet:\n%s", text)
	}

	// Removing the network removes the host interface and its routes.
	a.d.MustRun("disconnect", "direct", "ca")
	a.d.MustRun("network", "rm", "direct")
	if out, err := a.ns.Run("ip", "link", "show", "sy-direct"); err == nil {
		t.Errorf("host interface left after network rm: %s", out)
	}
}

// captureICMP captures two ICMP packets on ifname in ns, running
// traffic again and again until tshark has them (it takes a while to
// start), and returns them as "src dst" lines.
func captureICMP(t *testing.T, ns *netnstest.NS, ifname string, traffic func()) string {
	t.Helper()
	return ns.Tshark(t, netnstest.Capture{Iface: ifname, Filter: "icmp", Count: 2, Fields: []string{"ip.src", "ip.dst"}}, traffic)
}

// Bad direct-routing requests are refused with one error each, naming
// the flag, and create nothing.
func TestDirectRoutingRefusals(t *testing.T) {
	a, _ := newDirectHosts(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--subnet", "10.213.83.0/24", "--internal", "--host-interface", "sy-int", "--route", directSubnetB}, "--route"},
		{[]string{"--subnet", "10.213.83.0/24", "--host-interface", "sy-x", "--route", "10.213.83.0/25"}, "overlaps the network's own subnet"},
		{[]string{"--subnet", "10.213.83.0/24", "--host-interface", "vpc0"}, "host interface vpc0"},
	} {
		r := a.d.Run(append([]string{"network", "create", "bad"}, c.args...)...)
		if r.Code == 0 || !strings.Contains(r.Stderr, c.want) {
			t.Errorf("network create %v: %v, want a refusal saying %q", c.args, r, c.want)
		}
	}
	// Without forwarding in host A's kernel, routes are refused.
	a.ns.MustRun("sysctl", "-qw", "net.ipv4.ip_forward=0")
	r := a.d.Run("network", "create", "bad", "--subnet", "10.213.84.0/24", "--host-interface", "sy-fwd", "--route", directSubnetB)
	if r.Code == 0 || !strings.Contains(r.Stderr, "net.ipv4.ip_forward") {
		t.Errorf("routes without forwarding: %v, want a refusal naming net.ipv4.ip_forward", r)
	}
	if out := a.d.MustRun("network", "ls"); strings.Contains(out, "bad") {
		t.Errorf("a refused network is listed:\n%s", out)
	}
	for _, name := range []string{"sy-int", "sy-x", "sy-fwd"} {
		if out, err := a.ns.Run("ip", "link", "show", name); err == nil {
			t.Errorf("a refused network left %s: %s", name, out)
		}
	}
}

// --icc=false keeps a host-interface network's endpoints apart while the
// host still reaches each of them by address, as through docker0.
func TestDirectRoutingICCFalse(t *testing.T) {
	a, _ := newDirectHosts(t)
	a.d.MustRun("network", "create", "iso", "--subnet", "10.213.85.0/24", "--icc=false", "--host-interface", "sy-iso", "--route", directSubnetB)
	c1, addr1 := a.container(t, "iso", "c1")
	_, addr2 := a.container(t, "iso", "c2")
	for _, addr := range []string{addr1, addr2} {
		if err := a.ns.Ping(addr, 1); err != nil {
			t.Errorf("host A → %s on an --icc=false network: %v", addr, err)
		}
	}
	if err := c1.Ping(addr2, 1); err == nil {
		t.Errorf("endpoints of an --icc=false network reached each other (%s → %s)", addr1, addr2)
	}
}

// An internal network may have a host interface, and never routes: the
// host reaches its container by address, but the container's connection
// to another host's container subnet is refused by the gateway (not
// routed to the host interface). (That the replies to a sender that came
// in through the host interface do not go back there either is
// TestHostInterfaceReturnPath's, in package daemon.)
func TestDirectRoutingInternal(t *testing.T) {
	a, b := newDirectHosts(t)
	b.d.MustRun("network", "create", "direct", "--subnet", directSubnetB, "--host-interface", "sy-direct", "--route", directSubnetA)
	cb, addrB := b.container(t, "direct", "cb")
	whoServer(t, cb, addrB+":8080")
	a.d.MustRun("network", "create", "direct", "--subnet", directSubnetA, "--internal", "--host-interface", "sy-direct")
	ca, addrA := a.container(t, "direct", "ca")
	whoServer(t, ca, addrA+":8080")

	if got := askWho(t, a.ns, addrA+":8080"); !strings.HasPrefix(got, "10.213.81.254:") {
		t.Errorf("host A → its internal container: the server saw %q, want the host interface's address", got)
	}
	// An internal container has no default route; given one to host B's
	// subnet through the gateway, it is refused at once (RST), not routed.
	ca.MustRun("ip", "route", "add", directSubnetB, "via", "10.213.81.1")
	if _, err := dialErr(ca, addrB+":8080", 10*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("internal container → %s on host B: %v, want connection refused by its gateway", addrB, err)
	}
	n := inspectNetwork(t, a.d, "direct")
	if n.Routing != nil || n.ReturnPath != nil || len(n.Routes) != 0 {
		t.Errorf("internal network: routes %v, routing %+v, return path %+v; want none", n.Routes, n.Routing, n.ReturnPath)
	}
	if st := n.HostInterface.Port; st.RXFrames == 0 {
		t.Errorf("host interface counters %+v, want the frames host A sent", st)
	}
}

// Port security on a direct-routing network: a container that forges its
// source address (another host's container subnet, a host's VPC address)
// toward the other host is dropped at its port, counted, and so neither
// routed nor remembered by the return path; its own address still
// crosses.
func TestDirectRoutingPortSecurity(t *testing.T) {
	a, b := newDirectHosts(t)
	a.d.MustRun("network", "create", "direct", "--subnet", directSubnetA, "--host-interface", "sy-direct", "--route", directSubnetB)
	b.d.MustRun("network", "create", "direct", "--subnet", directSubnetB, "--host-interface", "sy-direct", "--route", directSubnetA)
	ca, _ := a.container(t, "direct", "ca")
	_, addrB := b.container(t, "direct", "cb")
	caMAC := mustMAC(t, endpointNamed(t, a.d, "direct", "ca").MAC)
	gwMAC := mustMAC(t, inspectNetwork(t, a.d, "direct").GatewayMAC)
	dst := netip.MustParseAddr(addrB)
	sendRaw(t, ca, "eth0",
		spoofedUDP(caMAC, gwMAC, netip.MustParseAddr("10.213.82.99"), dst),
		spoofedUDP(caMAC, gwMAC, netip.MustParseAddr(directVPCB), dst))
	waitDrops(t, a.d, "direct", "ca", map[string]uint64{"spoofed_ip": 2})
	n := inspectNetwork(t, a.d, "direct")
	if n.Routing == nil || n.Routing.Forwarded != 0 || n.ReturnPath == nil || n.ReturnPath.Learned != 0 {
		t.Errorf("after forged packets: routing %+v, return path %+v; want nothing routed or learned", n.Routing, n.ReturnPath)
	}
	if err := ca.Ping(addrB, 1); err != nil {
		t.Errorf("ca → %s with its own address: %v", addrB, err)
	}
}
