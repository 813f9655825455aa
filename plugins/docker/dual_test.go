package docker

import (
	"fmt"
	"strings"
	"testing"
)

// `docker network create --ipv6 --subnet 10.99.0.0/24 --subnet
// fd00:99::/64 -d switchyard --ipam-driver switchyard`, then two
// containers, call by call as dockerd makes them: both pools, both
// gateways, an address of each family per endpoint (in EndpointOperInfo
// too), and Join answers the IPv4 gateway (the IPv6 default route comes
// from the gateway's RAs). The daemon holds a dual-stack network and
// endpoints.
func TestLifecycleDualStack(t *testing.T) {
	e := newEnv(t)
	e.ok("/IpamDriver.RequestPool", `{"AddressSpace":"switchyard","Pool":"10.99.0.0/24","Options":{},"V6":false}`)
	out := e.ok("/IpamDriver.RequestPool", `{"AddressSpace":"switchyard","Pool":"fd00:99::/64","Options":{},"V6":true}`)
	if out["PoolID"] != "fd00:99::/64" || out["Pool"] != "fd00:99::/64" {
		t.Fatalf("RequestPool V6 answered %v, want pool fd00:99::/64", out)
	}
	gw := `"Options":{"RequestAddressType":"com.docker.network.gateway"}`
	if out := e.ok("/IpamDriver.RequestAddress", `{"PoolID":"fd00:99::/64","Address":"",`+gw+`}`); out["Address"] != "fd00:99::1/64" {
		t.Fatalf("IPv6 gateway %v, want fd00:99::1/64", out["Address"])
	}
	e.ok("/NetworkDriver.CreateNetwork", createNetworkBody6(nid, "10.99.0.0/24", "fd00:99::/64", `"name":"dual"`))
	nets, _, _ := e.state()
	if len(nets) != 1 || nets[0].Subnet.String() != "10.99.0.0/24" || nets[0].Subnet6.String() != "fd00:99::/64" || nets[0].Gateway6.String() != "fd00:99::1" {
		t.Fatalf("networks %+v, want dual with 10.99.0.0/24 and fd00:99::/64 via fd00:99::1", nets)
	}
	// Docker's containers keep their IPAM address only: the network's
	// advertisements carry no autonomous flag.
	if nets[0].SLAAC {
		t.Errorf("network dual advertises SLAAC; the plugin's networks must not")
	}

	for i, id := range []string{eid, eid2} {
		a4 := e.ok("/IpamDriver.RequestAddress", `{"PoolID":"10.99.0.0/24","Address":"","Options":{}}`)["Address"].(string)
		a6 := e.ok("/IpamDriver.RequestAddress", `{"PoolID":"fd00:99::/64","Address":"","Options":{}}`)["Address"].(string)
		if want := []string{"fd00:99::2/64", "fd00:99::3/64"}[i]; a6 != want {
			t.Fatalf("endpoint %d: IPv6 address %s, want %s", i, a6, want)
		}
		e.ok("/NetworkDriver.CreateEndpoint", `{"NetworkID":"`+nid+`","EndpointID":"`+id+`","Interface":{"Address":"`+a4+`","AddressIPv6":"`+a6+`"},"Options":{}}`)
		j := e.ok("/NetworkDriver.Join", `{"NetworkID":"`+nid+`","EndpointID":"`+id+`","SandboxKey":"/var/run/docker/netns/`+id[:12]+`","Options":{}}`)
		// The IPv6 default route comes from the gateway's RAs (see join).
		if _, has6 := j["GatewayIPv6"]; j["Gateway"] != "10.99.0.1" || has6 {
			t.Fatalf("Join answered %v, want Gateway 10.99.0.1 and no GatewayIPv6", j)
		}
		info := e.ok("/NetworkDriver.EndpointOperInfo", endpointBody(nid, id))
		if v, _ := info["Value"].(map[string]any); v["address6"] != a6 {
			t.Errorf("EndpointOperInfo %v, want address6 %s", info, a6)
		}
	}
	_, eps, _ := e.state()
	var got []string
	for _, ep := range eps {
		got = append(got, ep.Address.String()+" "+ep.Address6.String()+" gw6 "+ep.Gateway6.String())
	}
	if want := "10.99.0.2/24 fd00:99::2/64 gw6 fd00:99::1, 10.99.0.3/24 fd00:99::3/64 gw6 fd00:99::1"; strings.Join(got, ", ") != want {
		t.Errorf("endpoints %q, want %q", strings.Join(got, ", "), want)
	}
	// An address Docker asks for by name (--ip6) that an endpoint holds
	// is refused, naming it.
	if msg := e.fails("/IpamDriver.RequestAddress", `{"PoolID":"fd00:99::/64","Address":"fd00:99::3","Options":{}}`); !strings.Contains(msg, "fd00:99::3") {
		t.Errorf("a taken IPv6 address: %q", msg)
	}
	for _, id := range []string{eid, eid2} {
		e.ok("/NetworkDriver.Leave", endpointBody(nid, id))
		e.ok("/NetworkDriver.DeleteEndpoint", endpointBody(nid, id))
	}
	e.ok("/IpamDriver.ReleasePool", `{"PoolID":"fd00:99::/64"}`)
	e.ok("/NetworkDriver.DeleteNetwork", `{"NetworkID":"`+nid+`"}`)
	if nets, eps, _ := e.state(); len(nets) != 0 || len(eps) != 0 {
		t.Errorf("after teardown: networks %v, endpoints %v", nets, eps)
	}
}

// IPv6 input Docker could send that the driver refuses, each with one
// error naming it.
func TestDualStackBadInput(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct{ call, body, want string }{
		{"/IpamDriver.RequestPool", `{"AddressSpace":"switchyard","Pool":"","V6":true}`, "IPv6 subnet"},
		{"/IpamDriver.RequestPool", `{"AddressSpace":"switchyard","Pool":"10.99.0.0/24","V6":true}`, `"10.99.0.0/24"`},
		{"/IpamDriver.RequestPool", `{"AddressSpace":"switchyard","Pool":"fd00:99::/64","V6":false}`, `"fd00:99::/64"`},
		{"/IpamDriver.RequestPool", `{"AddressSpace":"switchyard","Pool":"fe80::/64","V6":true}`, "link-local"},
		{"/IpamDriver.RequestPool", `{"AddressSpace":"switchyard","Pool":"fd00:99::1/64","V6":true}`, "host bits"},
		{"/IpamDriver.RequestPool", `{"AddressSpace":"switchyard","Pool":"fd00:99::/64","SubPool":"10.99.0.0/25","V6":true}`, `"10.99.0.0/25"`},
		{"/IpamDriver.RequestAddress", `{"PoolID":"fd00:99::/64","Address":"fd00:98::5","Options":{}}`, `"fd00:98::5"`},
		{"/NetworkDriver.CreateNetwork", `{"NetworkID":"` + nid + `","IPv4Data":[{"Pool":"10.99.0.0/24"}],"IPv6Data":[{"Pool":"10.98.0.0/24"}]}`, `"10.98.0.0/24"`},
		{"/NetworkDriver.CreateNetwork", `{"NetworkID":"` + nid + `","IPv4Data":[{"Pool":"10.99.0.0/24"}],"IPv6Data":[{"Pool":"fd00:1::/64"},{"Pool":"fd00:2::/64"}]}`, "2 IPv6 subnets"},
		{"/NetworkDriver.CreateEndpoint", `{"NetworkID":"` + nid + `","EndpointID":"` + eid + `","Interface":{"Address":"10.99.0.2/24","AddressIPv6":"10.99.0.3/24"}}`, `"10.99.0.3/24"`},
	} {
		if msg := e.fails(c.call, c.body); !strings.Contains(msg, c.want) {
			t.Errorf("%s %s: %q, want it to name %s", c.call, c.body, msg, c.want)
		}
	}
	if nets, _, _ := e.state(); len(nets) != 0 {
		t.Errorf("bad input created networks: %v", nets)
	}
}

// --aux-address of the IPv6 subnet (--aux-address r6=fd00:77::2) is
// reserved in the daemon's network, and the IPAM driver skips it.
func TestDualStackAuxAddress(t *testing.T) {
	e := newEnv(t)
	e.ok("/NetworkDriver.CreateNetwork", `{"NetworkID":"`+nid+`","Options":{"com.docker.network.enable_ipv6":true},`+
		`"IPv4Data":[{"AddressSpace":"switchyard","Gateway":"10.77.0.1/24","Pool":"10.77.0.0/24"}],`+
		`"IPv6Data":[{"AddressSpace":"switchyard","Gateway":"fd00:77::1/64","Pool":"fd00:77::/64","AuxAddresses":{"r6":"fd00:77::2/64"}}]}`)
	nets, _, _ := e.state()
	if len(nets) != 1 || !strings.Contains(fmt.Sprint(nets[0].AuxAddresses), "fd00:77::2") {
		t.Fatalf("networks %+v, want fd00:77::2 reserved", nets)
	}
	if a := e.ok("/IpamDriver.RequestAddress", `{"PoolID":"fd00:77::/64","Address":"","Options":{}}`)["Address"]; a != "fd00:77::3/64" {
		t.Errorf("first IPv6 address %v, want fd00:77::3/64 (::2 is reserved)", a)
	}
}
