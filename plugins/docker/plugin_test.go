package docker

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/switchyard-net/switchyard/daemon/api"
)

const (
	nid  = "5f1e3c7a9b2d4e6f8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f"
	eid  = "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9"
	eid2 = "9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0"
)

// createNetworkBody is CreateNetwork as dockerd 20.10 sends it for
// `docker network create -d switchyard --ipam-driver switchyard
// --subnet 10.98.0.0/24 [-o name=NAME]`.
func createNetworkBody(id, subnet, gateway, generic string) string {
	return `{"NetworkID":"` + id + `","Options":{"com.docker.network.enable_ipv6":false,"com.docker.network.generic":{` + generic + `}},` +
		`"IPv4Data":[{"AddressSpace":"switchyard","Gateway":"` + gateway + `","Pool":"` + subnet + `"}],"IPv6Data":[]}`
}

// createNetworkBody6 is CreateNetwork for `docker network create --ipv6
// --subnet SUBNET --subnet SUBNET6 -d switchyard --ipam-driver switchyard`,
// the gateways the first addresses.
func createNetworkBody6(id, subnet, subnet6, generic string) string {
	gw := netip.MustParsePrefix(subnet).Addr().Next().String() + "/" + strings.Split(subnet, "/")[1]
	gw6 := netip.MustParsePrefix(subnet6).Addr().Next().String() + "/" + strings.Split(subnet6, "/")[1]
	return `{"NetworkID":"` + id + `","Options":{"com.docker.network.enable_ipv6":true,"com.docker.network.generic":{` + generic + `}},` +
		`"IPv4Data":[{"AddressSpace":"switchyard","Gateway":"` + gw + `","Pool":"` + subnet + `"}],` +
		`"IPv6Data":[{"AddressSpace":"switchyard","Gateway":"` + gw6 + `","Pool":"` + subnet6 + `"}]}`
}

func endpointBody(netID, epID string) string {
	return `{"NetworkID":"` + netID + `","EndpointID":"` + epID + `"}`
}

func portmapBody(netID, epID, ip string, hostPort int) string {
	return fmt.Sprintf(`{"NetworkID":%q,"EndpointID":%q,"Options":{"com.docker.network.endpoint.exposedports":[{"Proto":6,"Port":80}],`+
		`"com.docker.network.portmap":[{"Proto":6,"IP":%q,"Port":80,"HostIP":"127.0.0.1","HostPort":%d,"HostPortEnd":%d}]}}`,
		netID, epID, ip, hostPort, hostPort)
}

// A container's whole life on a Docker network, call by call as dockerd
// makes them, checked against what the daemon holds after each.
func TestLifecycle(t *testing.T) {
	e := newEnv(t)
	hostPort := freePort(t)
	tap := "sy" + eid[:12]

	steps := []struct {
		call, body string
		want       map[string]any // fields of the answer
		check      func(t *testing.T)
	}{
		{call: "/Plugin.Activate", want: map[string]any{"Implements": []any{"NetworkDriver", "IpamDriver"}}},
		{call: "/NetworkDriver.GetCapabilities", want: map[string]any{"Scope": "local"}},
		{call: "/IpamDriver.GetCapabilities", want: map[string]any{"RequiresMACAddress": false}},
		{call: "/IpamDriver.GetDefaultAddressSpaces", want: map[string]any{"LocalDefaultAddressSpace": "switchyard"}},
		{call: "/IpamDriver.RequestPool", body: `{"AddressSpace":"switchyard","Pool":"10.98.0.0/24","SubPool":"","Options":{},"V6":false}`,
			want: map[string]any{"PoolID": "10.98.0.0/24", "Pool": "10.98.0.0/24"}},
		{call: "/IpamDriver.RequestAddress", body: `{"PoolID":"10.98.0.0/24","Address":"","Options":{"RequestAddressType":"com.docker.network.gateway"}}`,
			want: map[string]any{"Address": "10.98.0.1/24"}},
		{call: "/NetworkDriver.CreateNetwork", body: createNetworkBody(nid, "10.98.0.0/24", "10.98.0.1/24", `"name":"synet"`),
			check: func(t *testing.T) {
				nets, _, _ := e.state()
				if len(nets) != 1 || nets[0].Name != "synet" || nets[0].Subnet.String() != "10.98.0.0/24" || nets[0].Gateway.String() != "10.98.0.1" {
					t.Fatalf("networks = %+v, want synet 10.98.0.0/24 via 10.98.0.1", nets)
				}
			}},
		{call: "/IpamDriver.RequestAddress", body: `{"PoolID":"10.98.0.0/24","Address":"","Options":{}}`,
			want: map[string]any{"Address": "10.98.0.2/24"}},
		{call: "/NetworkDriver.CreateEndpoint",
			body: `{"NetworkID":"` + nid + `","EndpointID":"` + eid + `","Interface":{"Address":"10.98.0.2/24","AddressIPv6":"","MacAddress":""},"Options":{}}`,
			want: map[string]any{"Interface": map[string]any{"MacAddress": "02:42:0a:62:00:02"}}},
		{call: "/NetworkDriver.Join",
			body: `{"NetworkID":"` + nid + `","EndpointID":"` + eid + `","SandboxKey":"/var/run/docker/netns/0123456789ab","Options":{}}`,
			want: map[string]any{"InterfaceName": map[string]any{"SrcName": tap, "DstPrefix": "eth"}, "Gateway": "10.98.0.1", "DisableGatewayService": false},
			check: func(t *testing.T) {
				_, eps, _ := e.state()
				if len(eps) != 1 || eps[0].Name != tap || eps[0].Network != "synet" || eps[0].Address.String() != "10.98.0.2/24" || eps[0].MAC != "02:42:0a:62:00:02" ||
					eps[0].Kind != "handoff" || eps[0].Runtime != "docker" || eps[0].Sandbox != "/var/run/docker/netns/0123456789ab" {
					t.Fatalf("endpoints = %+v, want %s in synet at 10.98.0.2/24, handed off to docker's sandbox", eps, tap)
				}
			}},
		{call: "/NetworkDriver.ProgramExternalConnectivity", body: portmapBody(nid, eid, "10.98.0.2", hostPort),
			check: func(t *testing.T) {
				_, _, ports := e.state()
				if len(ports) != 1 || ports[0].HostPort != uint16(hostPort) || ports[0].ContainerPort != 80 || ports[0].Endpoint != tap {
					t.Fatalf("ports = %+v, want 127.0.0.1:%d → %s:80", ports, hostPort, tap)
				}
			}},
		{call: "/NetworkDriver.EndpointOperInfo", body: endpointBody(nid, eid),
			want: map[string]any{"Value": map[string]any{"network": "synet", "endpoint": tap, "mac": "02:42:0a:62:00:02", "address": "10.98.0.2/24"}}},
		// The next container gets the next address: .2 is the daemon's.
		{call: "/IpamDriver.RequestAddress", body: `{"PoolID":"10.98.0.0/24","Address":"","Options":{}}`,
			want: map[string]any{"Address": "10.98.0.3/24"}},
		{call: "/IpamDriver.ReleaseAddress", body: `{"PoolID":"10.98.0.0/24","Address":"10.98.0.3"}`},
		// docker rm -f: revoke, leave, delete, release.
		{call: "/NetworkDriver.RevokeExternalConnectivity", body: endpointBody(nid, eid),
			check: func(t *testing.T) {
				if _, _, ports := e.state(); len(ports) != 0 {
					t.Fatalf("ports after revoke = %+v, want none", ports)
				}
			}},
		{call: "/NetworkDriver.Leave", body: endpointBody(nid, eid)},
		{call: "/NetworkDriver.DeleteEndpoint", body: endpointBody(nid, eid),
			check: func(t *testing.T) {
				if _, eps, _ := e.state(); len(eps) != 0 {
					t.Fatalf("endpoints after delete = %+v, want none", eps)
				}
			}},
		{call: "/IpamDriver.ReleaseAddress", body: `{"PoolID":"10.98.0.0/24","Address":"10.98.0.2"}`},
		{call: "/IpamDriver.RequestAddress", body: `{"PoolID":"10.98.0.0/24","Address":"","Options":{}}`,
			want: map[string]any{"Address": "10.98.0.2/24"}},
		{call: "/IpamDriver.ReleaseAddress", body: `{"PoolID":"10.98.0.0/24","Address":"10.98.0.2"}`},
		// Deleting twice is no error: Docker retries after a failure.
		{call: "/NetworkDriver.DeleteEndpoint", body: endpointBody(nid, eid)},
		{call: "/NetworkDriver.DeleteNetwork", body: `{"NetworkID":"` + nid + `"}`,
			check: func(t *testing.T) {
				if nets, _, _ := e.state(); len(nets) != 0 {
					t.Fatalf("networks after delete = %+v, want none", nets)
				}
			}},
		{call: "/IpamDriver.ReleaseAddress", body: `{"PoolID":"10.98.0.0/24","Address":"10.98.0.1"}`},
		{call: "/IpamDriver.ReleasePool", body: `{"PoolID":"10.98.0.0/24"}`},
		{call: "/NetworkDriver.DiscoverNew", body: `{"DiscoveryType":1,"DiscoveryData":{"Address":"192.0.2.1","self":true}}`},
		{call: "/NetworkDriver.DiscoverDelete", body: `{"DiscoveryType":1,"DiscoveryData":{"Address":"192.0.2.1","self":true}}`},
	}
	for i, s := range steps {
		out := e.ok(s.call, s.body)
		for k, v := range s.want {
			if got := fmt.Sprint(out[k]); got != fmt.Sprint(v) {
				t.Fatalf("step %d %s: %s = %s, want %s (answer %v)", i, s.call, k, got, fmt.Sprint(v), out)
			}
		}
		if s.check != nil {
			s.check(t)
		}
	}
}

// A network with no name option is named after its ID; a user MAC is
// kept; --ip (an Address in RequestAddress) is honoured or refused.
func TestDefaultsAndChoices(t *testing.T) {
	e := newEnv(t)
	e.ok("/NetworkDriver.CreateNetwork", createNetworkBody(nid, "10.97.0.0/24", "10.97.0.1/24", ""))
	if nets, _, _ := e.state(); len(nets) != 1 || nets[0].Name != "docker-"+nid[:12] {
		t.Fatalf("networks = %+v, want docker-%s", nets, nid[:12])
	}
	out := e.ok("/IpamDriver.RequestAddress", `{"PoolID":"10.97.0.0/24","Address":"10.97.0.9","Options":{}}`)
	if out["Address"] != "10.97.0.9/24" {
		t.Fatalf("RequestAddress 10.97.0.9 = %v", out)
	}
	msg := e.fails("/IpamDriver.RequestAddress", `{"PoolID":"10.97.0.0/24","Address":"10.97.0.9","Options":{}}`)
	if !strings.Contains(msg, "10.97.0.9") || !strings.Contains(msg, "in use") {
		t.Fatalf("second RequestAddress 10.97.0.9: %q, want it named as in use", msg)
	}
	out = e.ok("/NetworkDriver.CreateEndpoint",
		`{"NetworkID":"`+nid+`","EndpointID":"`+eid+`","Interface":{"Address":"10.97.0.9/24","MacAddress":"02:00:00:00:00:09"},"Options":{}}`)
	if out["Interface"] != nil {
		t.Fatalf("CreateEndpoint with a MAC answered an interface: %v (Docker rolls back)", out)
	}
	e.ok("/NetworkDriver.Join", `{"NetworkID":"`+nid+`","EndpointID":"`+eid+`","SandboxKey":"/var/run/docker/netns/x","Options":{}}`)
	if _, eps, _ := e.state(); len(eps) != 1 || eps[0].MAC != "02:00:00:00:00:09" || eps[0].Address.Addr().String() != "10.97.0.9" {
		t.Fatalf("endpoints = %+v, want 10.97.0.9 with MAC 02:00:00:00:00:09", eps)
	}
	// An ip range: addresses come from it.
	out = e.ok("/IpamDriver.RequestPool", `{"AddressSpace":"switchyard","Pool":"10.96.0.0/24","SubPool":"10.96.0.128/25","Options":{},"V6":false}`)
	if out["PoolID"] != "10.96.0.0/24,10.96.0.128/25" {
		t.Fatalf("RequestPool with a sub-pool = %v", out)
	}
	out = e.ok("/IpamDriver.RequestAddress", `{"PoolID":"10.96.0.0/24,10.96.0.128/25","Address":"","Options":{}}`)
	if out["Address"] != "10.96.0.128/24" {
		t.Fatalf("RequestAddress from 10.96.0.128/25 = %v", out)
	}
}

// Bad input gets one error naming it, and leaves nothing in the daemon.
func TestBadInput(t *testing.T) {
	e := newEnv(t)
	if _, err := e.client.CreateNetwork(context.Background(), api.NetworkCreate{Name: "other", Subnet: "10.98.0.0/16"}); err != nil {
		t.Fatal(err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port

	cases := []struct {
		call, body string
		want       []string // in the message
	}{
		{"/IpamDriver.RequestPool", `{"AddressSpace":"switchyard","Pool":"","V6":false}`, []string{"--subnet"}},
		{"/IpamDriver.RequestPool", `{"AddressSpace":"switchyard","Pool":"10.98.0.0/24","V6":true}`, []string{"IPv6"}},
		{"/IpamDriver.RequestPool", `{"AddressSpace":"switchyard","Pool":"10.98.0.300/24"}`, []string{`"10.98.0.300/24"`, "10.98.0.0/24"}},
		{"/IpamDriver.RequestPool", `{"AddressSpace":"switchyard","Pool":"10.98.0.5/24"}`, []string{`"10.98.0.5/24"`, "10.98.0.0/24"}},
		{"/IpamDriver.RequestPool", `{"AddressSpace":"switchyard","Pool":"10.98.0.0/24","SubPool":"10.99.0.0/25"}`, []string{`"10.99.0.0/25"`, "inside subnet 10.98.0.0/24"}},
		{"/IpamDriver.RequestAddress", `{"PoolID":"bogus","Address":""}`, []string{`"bogus"`}},
		{"/IpamDriver.RequestAddress", `{"PoolID":"10.95.0.0/24","Address":"10.94.0.3"}`, []string{`"10.94.0.3"`, "10.95.0.0/24"}},
		{"/IpamDriver.ReleaseAddress", `{"PoolID":"10.95.0.0/24","Address":"x"}`, []string{`"x"`}},
		// The subnet overlaps network "other": the daemon's conflict.
		{"/NetworkDriver.CreateNetwork", createNetworkBody(nid, "10.98.0.0/24", "10.98.0.1/24", `"name":"synet"`), []string{"synet", "10.98.0.0/24", "other"}},
		{"/NetworkDriver.CreateNetwork", `{"NetworkID":"` + nid + `","IPv4Data":[],"IPv6Data":[]}`, []string{"--subnet"}},
		{"/NetworkDriver.CreateNetwork", createNetworkBody(nid, "10.90.0.0/24", "10.90.0.1/24", `"com.docker.network.driver.mtu":"big"`), []string{"mtu", "big"}},
		{"/NetworkDriver.CreateEndpoint", `{"NetworkID":"` + nid + `","EndpointID":"` + eid + `","Interface":{"Address":"","MacAddress":""}}`, []string{eid, "IPv4"}},
		{"/NetworkDriver.CreateEndpoint", `{"NetworkID":"` + nid + `","EndpointID":"` + eid + `","Interface":{"Address":"10.98.0.2/24","MacAddress":"zz"}}`, []string{`"zz"`}},
		{"/NetworkDriver.Join", `{"NetworkID":"` + nid + `","EndpointID":"` + eid2 + `","SandboxKey":"/x"}`, []string{eid2, "unknown"}},
		{"/NetworkDriver.ProgramExternalConnectivity", `{"NetworkID":"` + nid + `","EndpointID":"` + eid + `","Options":{"com.docker.network.portmap":[{"Proto":132,"Port":80,"HostPort":80}]}}`, []string{"protocol 132", "tcp or udp"}},
		{"/NetworkDriver.ProgramExternalConnectivity", `{"NetworkID":"` + nid + `","EndpointID":"` + eid + `","Options":{"com.docker.network.portmap":"80"}}`, []string{"com.docker.network.portmap"}},
		{"/NetworkDriver.CreateNetwork", `{"NetworkID":`, []string{"undecodable"}},
	}
	for _, c := range cases {
		msg := e.fails(c.call, c.body)
		for _, w := range c.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%s %s: %q does not say %q", c.call, c.body, msg, w)
			}
		}
		if strings.Count(msg, Name+":") != 1 {
			t.Errorf("%s: %q: want one message", c.call, msg)
		}
	}
	if nets, eps, ports := e.state(); len(nets) != 1 || len(eps) != 0 || len(ports) != 0 {
		t.Fatalf("after bad input: networks %+v, endpoints %+v, ports %+v; want only `other`", nets, eps, ports)
	}

	// A host port in use: the error names it, nothing stays published,
	// and Docker's roll-back (Leave, DeleteEndpoint) leaves nothing.
	e.ok("/NetworkDriver.CreateNetwork", createNetworkBody(nid, "10.91.0.0/24", "10.91.0.1/24", `"name":"synet"`))
	free := freePort(t)
	e.ok("/NetworkDriver.CreateEndpoint", `{"NetworkID":"`+nid+`","EndpointID":"`+eid+`","Interface":{"Address":"10.91.0.2/24"}}`)
	e.ok("/NetworkDriver.Join", `{"NetworkID":"`+nid+`","EndpointID":"`+eid+`","SandboxKey":"/var/run/docker/netns/y"}`)
	body := fmt.Sprintf(`{"NetworkID":%q,"EndpointID":%q,"Options":{"com.docker.network.portmap":[`+
		`{"Proto":6,"IP":"10.91.0.2","Port":80,"HostIP":"127.0.0.1","HostPort":%d,"HostPortEnd":%d},`+
		`{"Proto":6,"IP":"10.91.0.2","Port":81,"HostIP":"127.0.0.1","HostPort":%d,"HostPortEnd":%d}]}}`, nid, eid, free, free, busyPort, busyPort)
	msg := e.fails("/NetworkDriver.ProgramExternalConnectivity", body)
	if !strings.Contains(msg, fmt.Sprint(busyPort)) {
		t.Errorf("port in use: %q does not name port %d", msg, busyPort)
	}
	if _, _, ports := e.state(); len(ports) != 0 {
		t.Fatalf("after a failed publish, ports = %+v, want none", ports)
	}
	// An address another endpoint holds: Join fails, naming it.
	e.ok("/NetworkDriver.CreateEndpoint", `{"NetworkID":"`+nid+`","EndpointID":"`+eid2+`","Interface":{"Address":"10.91.0.2/24"}}`)
	msg = e.fails("/NetworkDriver.Join", `{"NetworkID":"`+nid+`","EndpointID":"`+eid2+`","SandboxKey":"/var/run/docker/netns/z"}`)
	if !strings.Contains(msg, "10.91.0.2") {
		t.Errorf("address in use: %q does not name 10.91.0.2", msg)
	}
	e.ok("/NetworkDriver.DeleteEndpoint", endpointBody(nid, eid2))
	e.ok("/NetworkDriver.Leave", endpointBody(nid, eid))
	e.ok("/NetworkDriver.DeleteEndpoint", endpointBody(nid, eid))
	e.ok("/NetworkDriver.DeleteNetwork", `{"NetworkID":"`+nid+`"}`)
	if nets, eps, ports := e.state(); len(nets) != 1 || len(eps) != 0 || len(ports) != 0 {
		t.Fatalf("after roll-back: networks %+v, endpoints %+v, ports %+v; want only `other`", nets, eps, ports)
	}

	// An unknown call is a 404, so that Docker knows it is not implemented.
	if status, _ := e.call("/NetworkDriver.NoSuchCall", "{}"); status != http.StatusNotFound {
		t.Fatalf("unknown call: status %d, want 404", status)
	}
}

// Port bindings become the -p specs Docker would take.
func TestBindingSpec(t *testing.T) {
	cases := []struct {
		b    portBinding
		want string
	}{
		{portBinding{Proto: 6, Port: 80, HostPort: 8080, HostPortEnd: 8080}, "8080:80/tcp"},
		{portBinding{Proto: 17, Port: 53, HostIP: "127.0.0.1", HostPort: 5353}, "127.0.0.1:5353:53/udp"},
		{portBinding{Proto: 6, Port: 80, HostIP: "0.0.0.0"}, "0.0.0.0::80/tcp"},
		{portBinding{Proto: 6, Port: 80}, "80/tcp"},
		{portBinding{Proto: 6, Port: 80, HostIP: "::1", HostPort: 8000, HostPortEnd: 8010}, "[::1]:8000-8010:80/tcp"},
	}
	for _, c := range cases {
		got, err := c.b.spec()
		if err != nil || got != c.want {
			t.Errorf("%+v: %q, %v; want %q", c.b, got, err, c.want)
		}
	}
}

// A restarted plugin (no memory) finds the networks and endpoints made
// before by their labels and names: a named network's containers still
// join, leave and go, and the network is removed.
func TestPluginRestart(t *testing.T) {
	e := newEnv(t)
	e.ok("/NetworkDriver.CreateNetwork", createNetworkBody(nid, "10.98.0.0/24", "10.98.0.1/24", `"name":"synet"`))
	e.ok("/NetworkDriver.CreateEndpoint", `{"NetworkID":"`+nid+`","EndpointID":"`+eid+`","Interface":{"Address":"10.98.0.2/24"}}`)
	e.ok("/NetworkDriver.Join", `{"NetworkID":"`+nid+`","EndpointID":"`+eid+`","SandboxKey":"/var/run/docker/netns/a"}`)

	// What a restart leaves: no memory.
	e.plugin.mu.Lock()
	e.plugin.networks, e.plugin.endpoints, e.plugin.handed = map[string]string{}, map[string]pendingEndpoint{}, map[netip.Prefix]map[netip.Addr]bool{}
	e.plugin.mu.Unlock()

	e.ok("/NetworkDriver.ProgramExternalConnectivity", portmapBody(nid, eid, "10.98.0.2", freePort(t)))
	e.ok("/NetworkDriver.CreateEndpoint", `{"NetworkID":"`+nid+`","EndpointID":"`+eid2+`","Interface":{"Address":"10.98.0.3/24"}}`)
	e.ok("/NetworkDriver.Join", `{"NetworkID":"`+nid+`","EndpointID":"`+eid2+`","SandboxKey":"/var/run/docker/netns/b"}`)
	if _, eps, ports := e.state(); len(eps) != 2 || len(ports) != 1 || eps[0].Network != "synet" || eps[1].Network != "synet" {
		t.Fatalf("after the restart: endpoints %+v, ports %+v; want two in synet, one port", eps, ports)
	}
	for _, id := range []string{eid, eid2} {
		e.ok("/NetworkDriver.RevokeExternalConnectivity", endpointBody(nid, id))
		e.ok("/NetworkDriver.Leave", endpointBody(nid, id))
		e.ok("/NetworkDriver.DeleteEndpoint", endpointBody(nid, id))
	}
	e.ok("/NetworkDriver.DeleteNetwork", `{"NetworkID":"`+nid+`"}`)
	if nets, eps, ports := e.state(); len(nets) != 0 || len(eps) != 0 || len(ports) != 0 {
		t.Fatalf("left: networks %+v, endpoints %+v, ports %+v", nets, eps, ports)
	}
}

// Docker's network options reach the Switchyard network: --gateway,
// --aux-address, --internal and the MTU option.
func TestNetworkOptions(t *testing.T) {
	e := newEnv(t)
	out := e.ok("/IpamDriver.RequestAddress", `{"PoolID":"10.95.0.0/24","Address":"10.95.0.254","Options":{"RequestAddressType":"com.docker.network.gateway"}}`)
	if out["Address"] != "10.95.0.254/24" {
		t.Fatalf("RequestAddress for --gateway 10.95.0.254 = %v", out)
	}
	e.ok("/NetworkDriver.CreateNetwork", `{"NetworkID":"`+nid+`","Options":{"com.docker.network.enable_ipv6":false,"com.docker.network.internal":true,`+
		`"com.docker.network.generic":{"name":"inner","com.docker.network.driver.mtu":"1400"}},`+
		`"IPv4Data":[{"AddressSpace":"switchyard","Gateway":"10.95.0.254/24","Pool":"10.95.0.0/24","AuxAddresses":{"router":"10.95.0.9/24"}}],"IPv6Data":[]}`)
	nets, _, _ := e.state()
	if len(nets) != 1 {
		t.Fatalf("networks = %+v", nets)
	}
	n := nets[0]
	if n.Name != "inner" || n.Gateway.String() != "10.95.0.254" || !n.Internal || n.MTU != 1400 || n.AuxAddresses["router"].String() != "10.95.0.9" {
		t.Fatalf("network = %+v; want inner, gateway 10.95.0.254, internal, MTU 1400, router=10.95.0.9", n)
	}
	// The reserved address is skipped.
	for _, want := range []string{"10.95.0.1/24", "10.95.0.2/24"} {
		if out := e.ok("/IpamDriver.RequestAddress", `{"PoolID":"10.95.0.0/24"}`); out["Address"] != want {
			t.Fatalf("RequestAddress = %v, want %s", out, want)
		}
	}
	if out := e.ok("/IpamDriver.RequestAddress", `{"PoolID":"10.95.0.0/24","Address":"10.95.0.8"}`); out["Address"] != "10.95.0.8/24" {
		t.Fatalf("RequestAddress 10.95.0.8 = %v", out)
	}
	if msg := e.fails("/IpamDriver.RequestAddress", `{"PoolID":"10.95.0.0/24","Address":"10.95.0.9"}`); !strings.Contains(msg, "10.95.0.9") {
		t.Fatalf("RequestAddress of the aux address: %q", msg)
	}
}

// The plugin's socket replaces a stale one, refuses one another process
// serves and a path that is not a socket, each naming the path.
func TestListen(t *testing.T) {
	dir := t.TempDir()
	sock := dir + "/p/" + Name + ".sock"
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(sock); err == nil || !strings.Contains(err.Error(), sock) || !strings.Contains(err.Error(), "another process") {
		t.Errorf("second Listen on a served socket: %v", err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close() // a stale socket file stays
	l, err = Listen(sock)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	l.Close()
	file := dir + "/file"
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(file); err == nil || !strings.Contains(err.Error(), file) || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Listen on a file: %v", err)
	}
}
