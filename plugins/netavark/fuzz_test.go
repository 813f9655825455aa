package netavark

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/switchyard-net/switchyard/daemon/api"
)

// FuzzDecodeExec feeds setup's and teardown's stdin decoding and the
// translation into a connect request: they never panic, an accepted input
// gives a request whose fields are well-formed, and every -p spec names a
// protocol the daemon takes.
func FuzzDecodeExec(f *testing.F) {
	f.Add([]byte(docSetup), "/run/netns/netns-1")
	f.Add([]byte(`{"container_id":"a","container_name":"b","network":{"name":"n"},"network_options":{"interface_name":"eth0"}}`), "/x")
	f.Add([]byte(`{"container_id":"a","container_name":"","port_mappings":[{"container_port":65535,"host_ip":"::1","host_port":65535,"protocol":"udp,tcp","range":1}],"network":{"name":"n","options":{"mtu":"9000"}},"network_options":{"interface_name":"eth0","static_ips":["fd00::5"]}}`), "/x")
	f.Add([]byte(`{"container_id":"a","port_mappings":[{"container_port":1,"host_port":0,"protocol":"","range":65535}],"network":{"name":"n","subnets":[{"subnet":"10.0.0.0/8","lease_range":{"start_ip":"10.0.0.5"}}]},"network_options":{"interface_name":"eth0"}}`), "rel")
	f.Add([]byte(`{"container_id":"a","port_mappings":[{"container_port":65535,"host_port":80,"protocol":"tcp","range":2}],"network":{"name":"n"},"network_options":{"interface_name":"eth0"}}`), "/x")
	f.Add([]byte(`[]`), "")
	f.Add([]byte(`{"container_id":"a"} x`), "/x")
	f.Fuzz(func(t *testing.T, data []byte, netns string) {
		ex, err := decodeExec(bytes.NewReader(data))
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an error without a message")
			}
			return
		}
		if ex.ContainerID == "" || ex.NetworkOptions.InterfaceName == "" || ex.Network.Name == "" {
			t.Fatalf("accepted without a required field: %+v", ex)
		}
		parseOptions(ex.Network.Options)
		v4, v6, _ := ex.Network.subnets()
		req, err := endpointRequest(netns, ex, v4.subnet.IsValid() || !v6.subnet.IsValid())
		if err != nil {
			return
		}
		if req.IP6 != "" {
			if a, err := netip.ParseAddr(req.IP6); err != nil || !a.Is6() {
				t.Fatalf("ip6 %q: %v", req.IP6, err)
			}
		}
		if req.NetNS != netns || req.ContainerID != ex.ContainerID || req.Runtime != Runtime || req.Name == "" {
			t.Fatalf("request %+v from %+v", req, ex)
		}
		if req.IP != "" {
			if _, err := netip.ParseAddr(req.IP); err != nil {
				t.Fatalf("ip %q: %v", req.IP, err)
			}
		}
		for _, s := range req.Publish {
			checkSpec(t, s)
		}
		// The answer netavark reads back encodes.
		if _, err := json.Marshal(status(fakeEndpoint(req), req.IfName)); err != nil {
			t.Fatal(err)
		}
	})
}

// checkSpec checks the shape of a -p spec made from a port mapping:
// [ip:][host]:container/proto with ports in range.
func checkSpec(t *testing.T, s string) {
	t.Helper()
	rest, proto, ok := strings.Cut(s, "/")
	if !ok || (proto != "tcp" && proto != "udp") {
		t.Fatalf("spec %q: protocol %q", s, proto)
	}
	i := strings.LastIndex(rest, ":")
	for _, ports := range []string{rest[i+1:], hostPart(rest, i)} {
		if ports == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(ports, "-")
		for _, p := range []string{lo, hi} {
			if p == "" && !isRange {
				continue
			}
			if n, err := strconv.Atoi(p); err != nil || n < 0 || n > 65535 {
				t.Fatalf("spec %q: port %q", s, p)
			}
		}
	}
}

func hostPart(rest string, i int) string {
	if i < 0 {
		return ""
	}
	h := rest[:i]
	if j := strings.LastIndex(h, ":"); j >= 0 && !strings.HasSuffix(h, "]") {
		return h[j+1:]
	}
	return h
}

// FuzzDecodeNetwork feeds create's stdin decoding and the checks of the
// network config: never a panic, and an accepted subnet is a valid masked
// prefix with its gateway inside.
func FuzzDecodeNetwork(f *testing.F) {
	f.Add([]byte(docCreate))
	f.Add([]byte(`{"name":"n","id":"1","driver":"d","subnets":[{"subnet":"fd00::/64","gateway":"fd00::1"}],"routes":[]}`))
	f.Add([]byte(`{"name":"n","id":"1","driver":"d","subnets":[{"subnet":"10.0.0.1/24"}],"options":{"socket":"rel"}}`))
	f.Add([]byte(`{"name":"n","id":"1","driver":"d","routes":[{"destination":"0.0.0.0/0"}]}`))
	f.Add([]byte(`{"name":"n","id":"1","driver":"d","ipv6_enabled":true,"subnets":[{"subnet":"10.0.0.0/24"},{"subnet":"fd00:1::/64","gateway":"fd00:1::1"}]}`))
	f.Add([]byte(`{"name":"n","id":"1","driver":"d","subnets":[{"subnet":"fd00:1::/64"},{"subnet":"fd00:2::/64"}]}`))
	f.Add([]byte(`{"name":"n","id":"1","driver":"d","subnets":[{"subnet":"10.0.0.0/24","gateway":"10.0.1.1"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		nw, err := decodeNetwork(bytes.NewReader(data))
		if err != nil {
			return
		}
		parseOptions(nw.Options)
		v4, v6, err := nw.subnets()
		if err != nil {
			return
		}
		for i, f := range []subnetGW{v4, v6} {
			p, gw := f.subnet, f.gw
			if p.IsValid() && p != p.Masked() {
				t.Fatalf("subnet %s accepted with host bits", p)
			}
			if gw.IsValid() && !p.Contains(gw) {
				t.Fatalf("gateway %s outside %s accepted", gw, p)
			}
			if p.IsValid() && p.Addr().Is6() != (i == 1) {
				t.Fatalf("subnet %s accepted as the other family's", p)
			}
		}
		if _, err := json.Marshal(nw); err != nil {
			t.Fatal(err)
		}
	})
}

// fakeEndpoint is an endpoint as a daemon would answer req.
func fakeEndpoint(req api.EndpointCreate) api.Endpoint {
	addr, _ := netip.ParseAddr(req.IP)
	p, _ := addr.Prefix(addr.BitLen())
	return api.Endpoint{Name: req.Name, IfName: req.IfName, MAC: req.MAC, Address: p, Gateway: addr, DNS: addr}
}
