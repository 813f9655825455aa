package daemon

import (
	"strings"
	"testing"

	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/tunnel"
)

// IPv6 underlays in network create: the tunnel listens where it is told
// (or, with only IPv6 peers given, on [::]), its inner MTU is the IPv6
// one, and a dual-stack cluster network leases IPv6 ranges cut as many
// times as the IPv4 subnet unless told otherwise.
func TestTunnelIPv6Underlay(t *testing.T) {
	cases := []struct {
		name       string
		req        api.NetworkCreate
		listen     string
		mtu        int
		subnetLen6 int
	}{
		{"v6 listen", api.NetworkCreate{Subnet: "10.250.0.0/16", Tunnel: "vxlan", TunnelListen: "[fd00::1]:4789",
			Peers: []string{"[fd00::2]", "[fd00::3]:4790"}}, "[fd00::1]:4789", 1430, 0},
		{"v6 peer, no listen", api.NetworkCreate{Subnet: "10.250.0.0/16", Tunnel: "vxlan", Peers: []string{"fd00::2"}}, "[::]:4789", 1430, 0},
		{"both families on [::]", api.NetworkCreate{Subnet: "10.250.0.0/16", Tunnel: "vxlan", TunnelListen: "[::]:4789",
			Peers: []string{"192.0.2.2", "fd00::2"}}, "[::]:4789", 1430, 0},
		{"v4 stays v4", api.NetworkCreate{Subnet: "10.250.0.0/16", Tunnel: "vxlan", Peers: []string{"192.0.2.2"}}, "0.0.0.0:4789", 1450, 0},
		{"sealed over v6", api.NetworkCreate{Subnet: "10.250.0.0/16", Tunnel: "secure", KeyFile: keyFile(t, t.TempDir(), "key", tunnel.GenerateKey()), TunnelListen: "[fd00::1]"}, "[fd00::1]:4793", 1398, 0},
		{"link-local with zone", api.NetworkCreate{Subnet: "10.250.0.0/16", Tunnel: "vxlan", TunnelListen: "[fe80::1%eth0]:4789",
			Peers: []string{"[fe80::2%eth0]"}}, "[fe80::1%eth0]:4789", 1430, 0},
		{"dual-stack cluster", api.NetworkCreate{Subnets: []string{"10.250.0.0/16", "fd00:1::/64"}, Tunnel: "vxlan",
			Cluster: "etcd://[fd00::9]:2379", TunnelListen: "[fd00::1]:4789"}, "[fd00::1]:4789", 1430, 72},
		{"dual-stack cluster, own cut", api.NetworkCreate{Subnets: []string{"10.250.0.0/16", "fd00:1::/64"}, Tunnel: "vxlan",
			Cluster: "etcd://[fd00::9]:2379", TunnelListen: "[fd00::1]:4789", SubnetLen: 20, SubnetLen6: 80}, "[fd00::1]:4789", 1430, 80},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.req.Name = "n"
			rec, err := checkDaemon().newNetworkRecord(c.req)
			if err != nil {
				t.Fatal(err)
			}
			tc := rec.Tunnel
			if tc.Listen.String() != c.listen || rec.MTU != c.mtu || tc.SubnetLen6 != c.subnetLen6 {
				t.Fatalf("listen %s, MTU %d, IPv6 lease /%d; want %s, %d, /%d", tc.Listen, rec.MTU, tc.SubnetLen6, c.listen, c.mtu, c.subnetLen6)
			}
		})
	}
	rec, err := checkDaemon().newNetworkRecord(api.NetworkCreate{Name: "v6only", Subnet: "fd00:7::/64", Tunnel: "vxlan",
		Cluster: "etcd://[fd00::9]:2379", TunnelListen: "[fd00::1]:4789"})
	if err != nil || rec.Tunnel.SubnetLen != 80 {
		t.Fatalf("an IPv6-only cluster network: %v, lease /%d; want /80 leases of the /64", err, rec.Tunnel.SubnetLen)
	}
}

// Peers of the wrong family, link-local addresses without their
// interface and IPv6 lease lengths that do not fit get one error each,
// naming the field and the value, and saying what would do.
func TestTunnelIPv6Refusals(t *testing.T) {
	dual := []string{"10.250.0.0/16", "fd00:1::/64"}
	cases := []struct {
		name   string
		req    api.NetworkCreate
		field  string
		value  string
		accept string
	}{
		{"v6 peer on v4 listen", api.NetworkCreate{Subnet: "10.250.0.0/16", Tunnel: "vxlan", TunnelListen: "192.0.2.1:4789",
			Peers: []string{"[fd00::2]:4789"}}, "peers", "[fd00::2]:4789", "[::]:4789"},
		{"v4 peer on v6 listen", api.NetworkCreate{Subnet: "10.250.0.0/16", Tunnel: "vxlan", TunnelListen: "[fd00::1]:4789",
			Peers: []string{"192.0.2.2"}}, "peers", "192.0.2.2", "an IPv6 peer"},
		{"v6 peer on 0.0.0.0", api.NetworkCreate{Subnet: "10.250.0.0/16", Tunnel: "vxlan", TunnelListen: "0.0.0.0",
			Peers: []string{"fd00::2"}}, "peers", "fd00::2", "an IPv4 peer"},
		{"link-local peer without zone", api.NetworkCreate{Subnet: "10.250.0.0/16", Tunnel: "vxlan", TunnelListen: "[fd00::1]:4789",
			Peers: []string{"[fe80::2]:4789"}}, "peers", "[fe80::2]:4789", "%eth0"},
		{"link-local listen without zone", api.NetworkCreate{Subnet: "10.250.0.0/16", Tunnel: "vxlan", TunnelListen: "[fe80::1]:4789"},
			"tunnel_listen", "[fe80::1]:4789", "%eth0"},
		{"IPv6 lease too long", api.NetworkCreate{Subnets: dual, Tunnel: "vxlan", Cluster: "etcd://[fd00::9]:2379",
			TunnelListen: "[fd00::1]:4789", SubnetLen6: 127}, "subnet_len6", "127", "126"},
		{"IPv6 lease length, one family", api.NetworkCreate{Subnet: "10.250.0.0/16", Tunnel: "vxlan", Cluster: "etcd://[fd00::9]:2379",
			TunnelListen: "[fd00::1]:4789", SubnetLen6: 72}, "subnet_len6", "72", "IPv6 subnet"},
		{"IPv6 lease length without cluster", api.NetworkCreate{Subnets: dual, Tunnel: "vxlan", SubnetLen6: 72}, "subnet_len6", "72", "cluster"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.req.Name = "n"
			_, err := checkDaemon().newNetworkRecord(c.req)
			fs := fieldsOf(t, err)
			if len(fs) != 1 {
				t.Fatalf("got %d problems, want 1: %v", len(fs), err)
			}
			if f := fs[0]; f.Field != c.field || f.Value != c.value || f.Problem == "" || !strings.Contains(f.Accepted, c.accept) {
				t.Fatalf("got %+v, want field %q value %q, accepting %q", f, c.field, c.value, c.accept)
			}
		})
	}
}
