package daemon

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/daemon/store"
	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/testing/attachtest"
)

// Bad host_interface, host_interface_addr and routes each get one error
// naming the field and what is accepted.
func TestDirectRoutingFieldErrors(t *testing.T) {
	ok := func(r api.NetworkCreate) api.NetworkCreate {
		r.Name, r.Subnet = "n", "10.2.0.0/24"
		if r.HostInterface == "" {
			r.HostInterface = "sy-n"
		}
		return r
	}
	cases := []struct {
		name    string
		req     api.NetworkCreate
		field   string
		problem string
	}{
		{"route not a prefix", ok(api.NetworkCreate{Routes: []string{"10.1.0.0"}}), "routes", "not a CIDR prefix"},
		{"route bad length", ok(api.NetworkCreate{Routes: []string{"10.1.0.0/33"}}), "routes", "not a CIDR prefix"},
		{"route host bits", ok(api.NetworkCreate{Routes: []string{"10.1.0.5/24"}}), "routes", "bits set after the prefix length"},
		{"route default", ok(api.NetworkCreate{Routes: []string{"0.0.0.0/0"}}), "routes", "default route"},
		{"route overlaps own subnet", ok(api.NetworkCreate{Routes: []string{"10.2.0.0/16"}}), "routes", "overlaps the network's own subnet"},
		{"route other family", ok(api.NetworkCreate{Routes: []string{"fd00:1::/64"}}), "routes", "address family"},
		{"route loopback", ok(api.NetworkCreate{Routes: []string{"127.0.0.0/8"}}), "routes", "loopback"},
		{"routes overlap each other", ok(api.NetworkCreate{Routes: []string{"10.1.0.0/24", "10.1.0.0/16"}}), "routes", "overlaps route 10.1.0.0/24"},
		{"routes without host interface", api.NetworkCreate{Name: "n", Subnet: "10.2.0.0/24", Routes: []string{"10.1.0.0/24"}}, "routes", "without `host_interface`"},
		{"routes on internal", ok(api.NetworkCreate{Internal: true, Routes: []string{"10.1.0.0/24"}}), "routes", "never routes"},
		{"interface name too long", ok(api.NetworkCreate{HostInterface: "a-very-long-name-x"}), "host_interface", "longer than 15"},
		{"interface name with slash", ok(api.NetworkCreate{HostInterface: "a/b"}), "host_interface", "'/'"},
		{"addr without interface", api.NetworkCreate{Name: "n", Subnet: "10.2.0.0/24", HostInterfaceAddr: "10.2.0.9"}, "host_interface_addr", "without `host_interface`"},
		{"addr not an address", ok(api.NetworkCreate{HostInterfaceAddr: "ten"}), "host_interface_addr", "not an IP address"},
		{"addr outside subnet", ok(api.NetworkCreate{HostInterfaceAddr: "10.3.0.9"}), "host_interface_addr", "not a usable address"},
		{"addr is broadcast", ok(api.NetworkCreate{HostInterfaceAddr: "10.2.0.255"}), "host_interface_addr", "not a usable address"},
		{"addr is the gateway", ok(api.NetworkCreate{HostInterfaceAddr: "10.2.0.1"}), "host_interface_addr", "the gateway's"},
		{"addr is an aux address", ok(api.NetworkCreate{AuxAddresses: []string{"r=10.2.0.254"}}), "subnet", "aux address r's"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := checkDaemon().newNetworkRecord(c.req)
			if err == nil {
				t.Fatal("accepted")
			}
			fs := fieldsOf(t, err)
			if len(fs) != 1 || fs[0].Field != c.field || !strings.Contains(fs[0].Problem, c.problem) {
				t.Fatalf("fields %+v, want one on %s saying %q", fs, c.field, c.problem)
			}
		})
	}
}

// A rootless daemon refuses a host interface, saying why.
func TestRootlessRefusesHostInterface(t *testing.T) {
	d := checkDaemon()
	d.cfg.Rootless = true
	_, err := d.newNetworkRecord(api.NetworkCreate{Name: "n", Subnet: "10.2.0.0/24", HostInterface: "sy-n"})
	fs := fieldsOf(t, err)
	if len(fs) != 1 || fs[0].Field != "host_interface" || !strings.Contains(fs[0].Problem, "rootless") || !strings.Contains(fs[0].Accepted, "root") {
		t.Fatalf("fields %+v, want host_interface refused for a rootless daemon", fs)
	}
	d.cfg.Rootless = false
	rec, err := d.newNetworkRecord(api.NetworkCreate{Name: "n", Subnet: "10.2.0.0/24", HostInterface: "sy-n"})
	if err != nil {
		t.Fatal(err)
	}
	if hi := rec.HostInterface; hi == nil || hi.Addr != netip.MustParseAddr("10.2.0.254") || hi.MAC != dockerMAC(hi.Addr) {
		t.Fatalf("host interface %+v, want 10.2.0.254, the last usable address, with its Docker MAC", hi)
	}
}

// Routes the host kernel would not forward are refused, naming the
// sysctl that fixes it.
func TestRoutesNeedForwarding(t *testing.T) {
	d := checkDaemon()
	asked := 0
	d.cfg.Forwarding = func(v6 bool) (bool, error) { asked++; return false, nil }
	_, err := d.newNetworkRecord(api.NetworkCreate{Name: "n", Subnet: "10.2.0.0/24", HostInterface: "sy-n", Routes: []string{"10.1.0.0/24"}})
	if !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "sysctl -w net.ipv4.ip_forward=1") {
		t.Fatalf("routes without forwarding: %v, want a conflict naming net.ipv4.ip_forward", err)
	}
	// A host interface alone needs no forwarding.
	if _, err := d.newNetworkRecord(api.NetworkCreate{Name: "n", Subnet: "10.2.0.0/24", HostInterface: "sy-n"}); err != nil {
		t.Fatal(err)
	}
	if asked != 1 {
		t.Errorf("forwarding asked %d times, want once (for the network with routes)", asked)
	}
}

// Routes and subnets of different networks of a host must not overlap,
// and two networks cannot share a host interface.
func TestDirectRoutingConflicts(t *testing.T) {
	d := checkDaemon(
		store.Network{Name: "a", Subnet: netip.MustParsePrefix("10.2.0.0/24"), HostInterface: &store.HostInterface{Name: "sy-a"},
			Routes: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/24")}},
	)
	cases := []struct {
		name string
		req  api.NetworkCreate
		want string
	}{
		{"route over another network", api.NetworkCreate{Name: "b", Subnet: "10.3.0.0/24", HostInterface: "sy-b", Routes: []string{"10.2.0.0/16"}}, `overlaps network "a"`},
		{"subnet another network routes", api.NetworkCreate{Name: "b", Subnet: "10.1.0.0/25"}, `network "a" routes to another host`},
		{"host interface of another network", api.NetworkCreate{Name: "b", Subnet: "10.3.0.0/24", HostInterface: "sy-a"}, `network "a"'s`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := d.newNetworkRecord(c.req)
			if !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want a conflict saying %q", err, c.want)
			}
		})
	}
}

// A network with a host interface makes it in the daemon's namespace
// with its address, reserves the address, shows it and its routes, keeps
// it over a restart and deletes it with the network.
func TestHostInterfaceLifecycle(t *testing.T) {
	e := newEnv(t)
	v := e.createNetwork(api.NetworkCreate{Name: "direct", Subnet: "10.2.0.0/24", HostInterface: "sy-direct", Routes: []string{"10.1.0.0/24", "10.9.0.0/16"}})
	want := netip.MustParseAddr("10.2.0.254")
	if v.HostInterface == nil || v.HostInterface.Name != "sy-direct" || v.HostInterface.Addr != want {
		t.Fatalf("view's host interface %+v, want sy-direct at %s", v.HostInterface, want)
	}
	if !slices.Equal(v.Routes, []netip.Prefix{netip.MustParsePrefix("10.1.0.0/24"), netip.MustParsePrefix("10.9.0.0/16")}) || v.Routing == nil {
		t.Fatalf("view's routes %v (stats %v), want both routes and their counters", v.Routes, v.Routing)
	}
	dev := hostDevice(t, e.att, "sy-direct")
	if c := dev.Config; !slices.Equal(c.Addrs, []netip.Prefix{netip.MustParsePrefix("10.2.0.254/24")}) || c.MAC != dockerMAC(want) || !c.Configure || c.Owner != e.d.id {
		t.Fatalf("host interface opened with %+v, want 10.2.0.254/24, its Docker MAC, configured, marked as this daemon's", c)
	}
	if e.switchPorts("direct") != 2 {
		t.Fatalf("switch has %d ports, want the gateway and the host interface", e.switchPorts("direct"))
	}
	if _, ok := e.pinned("direct", want); !ok {
		t.Error("the gateway does not hold the host interface as a pinned neighbour")
	}
	e.att.AddNetNS("/run/netns/c1")
	if _, err := e.d.Connect(context.Background(), "direct", api.EndpointCreate{NetNS: "/run/netns/c1", IP: "10.2.0.254"}); err == nil {
		t.Fatal("an endpoint got the host interface's address")
	}

	// Restart: the device is re-attached, not swept as an orphan.
	if err := e.d.Close(); err != nil {
		t.Fatal(err)
	}
	e.start()
	if dev := hostDevice(t, e.att, "sy-direct"); dev.Opens != 2 || !dev.Config.Existing {
		t.Fatalf("after a restart the host interface was opened %d times (existing %v), want re-attached once", dev.Opens, dev.Config.Existing)
	}
	if err := e.d.RemoveNetwork(context.Background(), "direct"); err != nil {
		t.Fatal(err)
	}
	for _, d := range e.att.Devices() {
		t.Errorf("device %s %q left after the network was removed", d.NetNS, d.Name)
	}
}

// hostDevice returns the attacher's device name in the daemon's own
// namespace.
func hostDevice(t *testing.T, att *attachtest.Attacher, name string) attachtest.Device {
	t.Helper()
	for _, d := range att.Devices() {
		if d.NetNS == "" && d.Name == name {
			return d
		}
	}
	t.Fatalf("no device %s in the daemon's namespace: %+v", name, att.Devices())
	return attachtest.Device{}
}

// A host interface name in use, or a failure after the interface is
// made, leaves nothing: no network, no device, the subnet free.
func TestHostInterfaceRollback(t *testing.T) {
	e := newEnv(t)
	e.att.AddLink("", "eth0")
	req := api.NetworkCreate{Name: "direct", Subnet: "10.2.0.0/24", HostInterface: "eth0", Routes: []string{"10.1.0.0/24"}}
	_, err := e.d.CreateNetwork(context.Background(), req)
	if !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "host interface eth0") {
		t.Fatalf("host interface on a taken name: %v, want a conflict naming it", err)
	}
	if ns := e.d.Networks(); len(ns) != 0 {
		t.Fatalf("networks after a refused host interface: %+v", ns)
	}

	req.HostInterface = "sy-direct"
	e.store.failAfter("PutNetwork", 0)
	if _, err := e.d.CreateNetwork(context.Background(), req); !errors.Is(err, errInjected) {
		t.Fatalf("create with a failing store: %v", err)
	}
	if ds := e.att.Devices(); len(ds) != 0 {
		t.Fatalf("devices left by a failed create: %+v", ds)
	}
	if ns := e.d.Networks(); len(ns) != 0 {
		t.Fatalf("networks after a failed create: %+v", ns)
	}
	e.createNetwork(req) // name and subnet are free again
	hostDevice(t, e.att, "sy-direct")
}

func TestLastUsable(t *testing.T) {
	for in, want := range map[string]string{
		"10.2.0.0/24": "10.2.0.254", "172.17.0.0/16": "172.17.255.254", "10.0.0.0/30": "10.0.0.2",
		"fd00:1::/64": "fd00:1::ffff:ffff:ffff:ffff",
	} {
		if got := lastUsable(netip.MustParsePrefix(in)); got.String() != want {
			t.Errorf("lastUsable(%s) = %s, want %s", in, got, want)
		}
	}
}

// Whatever a request says about its host interface and routes, a record
// that comes out routes only canonical prefixes, disjoint from each other
// and from the subnet, through an address of the subnet that is neither
// its gateway nor an aux address.
func FuzzDirectRouting(f *testing.F) {
	f.Add("10.2.0.0/24", "sy-n", "", "10.1.0.0/24,10.9.0.0/16", false)
	f.Add("10.2.0.0/24", "sy-n", "10.2.0.7", "10.1.0.5/24", false)
	f.Add("10.2.0.0/24", "sy-n", "10.2.0.1", "10.2.0.0/25", true)
	f.Add("fd00:2::/64", "sy-n", "", "fd00:1::/64,10.1.0.0/24", false)
	f.Add("", "sy-n", "", "0.0.0.0/0", false)
	f.Add("10.2.0.0/24", "", "x", ",", false)
	f.Fuzz(func(t *testing.T, subnet, ifname, addr, routes string, internal bool) {
		req := api.NetworkCreate{Name: "n", Subnet: subnet, HostInterface: ifname, HostInterfaceAddr: addr, Internal: internal,
			AuxAddresses: []string{"r=10.2.0.9"}}
		if routes != "" {
			req.Routes = strings.Split(routes, ",")
		}
		d := checkDaemon()
		d.host = hostView{}
		rec, err := d.newNetworkRecord(req)
		if err != nil {
			return
		}
		if len(rec.Routes) > 0 && (rec.HostInterface == nil || rec.Internal) {
			t.Fatalf("routes %v without a host interface or on an internal network", rec.Routes)
		}
		for i, p := range rec.Routes {
			if p != p.Masked() || p.Overlaps(rec.Subnet) || p.Addr().Is4() != rec.Subnet.Addr().Is4() {
				t.Fatalf("route %s accepted on subnet %s", p, rec.Subnet)
			}
			for _, q := range rec.Routes[:i] {
				if q.Overlaps(p) {
					t.Fatalf("overlapping routes %s and %s accepted", q, p)
				}
			}
		}
		if hi := rec.HostInterface; hi != nil {
			if !rec.Subnet.Contains(hi.Addr) || hi.Addr == rec.Gateway || hi.Addr == rec.Subnet.Addr() || hi.Addr == rec.AuxAddresses["r"] {
				t.Fatalf("host interface address %s accepted on %s (gateway %s)", hi.Addr, rec.Subnet, rec.Gateway)
			}
			if ifNameProblem(hi.Name) != "" || hi.Name == "" {
				t.Fatalf("host interface name %q accepted", hi.Name)
			}
		}
	})
}

// icmpFrame builds an Ethernet frame carrying an ICMP echo message of
// type typ from src to dst.
func icmpFrame(dstMAC, srcMAC vswitch.MAC, src, dst netip.Addr, typ header.ICMPv4Type) []byte {
	b := make([]byte, 14+20+8)
	copy(b[0:6], dstMAC[:])
	copy(b[6:12], srcMAC[:])
	b[12], b[13] = 0x08, 0x00
	ip := header.IPv4(b[14:])
	ip.Encode(&header.IPv4Fields{TotalLength: 28, TTL: 64, Protocol: 1, SrcAddr: tcpip.AddrFrom4(src.As4()), DstAddr: tcpip.AddrFrom4(dst.As4())})
	ip.SetChecksum(^ip.CalculateChecksum())
	icmp := header.ICMPv4(ip.Payload())
	icmp.SetType(typ)
	icmp.SetChecksum(^checksum.Checksum(icmp, 0))
	return b
}

// A network with a host interface, routes or not, sends an endpoint's
// replies to a sender that came in through the host interface back
// there, and shows the return path's counters; an internal network's
// endpoints reach nothing beyond the host interface, and its view has no
// return path.
func TestHostInterfaceReturnPath(t *testing.T) {
	e := newEnv(t)
	outsider := netip.MustParseAddr("192.0.2.77")
	for _, c := range []struct {
		name     string
		internal bool
	}{{"direct", false}, {"internal", true}} {
		t.Run(c.name, func(t *testing.T) {
			subnet := map[bool]string{false: "10.2.0.0/24", true: "10.3.0.0/24"}[c.internal]
			v := e.createNetwork(api.NetworkCreate{Name: c.name, Subnet: subnet, HostInterface: "sy-" + c.name, Internal: c.internal})
			if (v.ReturnPath != nil) == c.internal {
				t.Fatalf("view's return path %+v on a network internal=%v", v.ReturnPath, c.internal)
			}
			nsPath := "/run/netns/" + c.name
			e.att.AddNetNS(nsPath)
			ep := e.connect(c.name, api.EndpointCreate{NetNS: nsPath})
			epMAC, _ := vswitch.ParseMAC(ep.MAC)
			gwMAC, _ := vswitch.ParseMAC(v.GatewayMAC)
			hostIf, epPort := e.att.Port("", "sy-"+c.name), e.att.Port(nsPath, "eth0")
			if hostIf == nil || epPort == nil {
				t.Fatalf("ports: host interface %v, endpoint %v", hostIf, epPort)
			}
			hiMAC := dockerMAC(v.HostInterface.Addr)
			if err := hostIf.Inject(icmpFrame(epMAC, hiMAC, outsider, ep.Address.Addr(), header.ICMPv4Echo)); err != nil {
				t.Fatal(err)
			}
			hostIf.Take()
			if err := epPort.Inject(icmpFrame(gwMAC, epMAC, ep.Address.Addr(), outsider, header.ICMPv4EchoReply)); err != nil {
				t.Fatal(err)
			}
			back := 0
			for _, f := range hostIf.Take() {
				if b := f.Data; len(b) >= 34 && netip.AddrFrom4([4]byte(b[30:34])) == outsider && vswitch.MAC(b[0:6]) == hiMAC {
					back++
				}
			}
			n, err := e.d.Network(c.name)
			if err != nil {
				t.Fatal(err)
			}
			if c.internal {
				if back != 0 || n.ReturnPath != nil {
					t.Fatalf("internal network: %d replies back to the host interface, return path %+v; want none", back, n.ReturnPath)
				}
				return
			}
			if back != 1 || n.ReturnPath == nil || n.ReturnPath.Senders != 1 || n.ReturnPath.Forwarded != 1 {
				t.Fatalf("%d replies back to the host interface, return path %+v; want the reply, one sender, one forwarded", back, n.ReturnPath)
			}
			for _, ns := range e.d.Stats().Networks {
				if ns.Network == c.name && (ns.ReturnPath == nil || *ns.ReturnPath != *n.ReturnPath) {
					t.Errorf("stats' return path %+v, want inspect's %+v", ns.ReturnPath, n.ReturnPath)
				}
			}
		})
	}
}
