package e2e_test

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/switchyard-net/switchyard/testing/netnstest"
)

// The netavark plugin on a dual-stack podman network (`podman network
// create --ipv6 --subnet 10.89.0.0/24 --subnet fd00:89::/64`): create
// answers both subnets, setup both addresses with their gateways (static
// ones of each family, or IPAM's), the containers reach each other over
// IPv6 and a port published on [::1] answers; teardown frees both.
func TestNetavarkDualStack(t *testing.T) {
	r := newNetavarkRig(t)
	created := r.ok(`{"name": "dual", "id": "3f259bab93aaaaa2542ba43ef33eb990d0999ee1b9924b557b7be53c0b7a1bb9",
		"driver": "switchyard-netavark", "ipv6_enabled": true, "internal": false, "dns_enabled": false,
		"subnets": [{"subnet": "10.89.0.0/24", "gateway": "10.89.0.1"}, {"subnet": "fd00:89::/64", "gateway": "fd00:89::1"}]}`, "create")
	var nw struct {
		IPv6    bool `json:"ipv6_enabled"`
		Subnets []struct{ Subnet, Gateway string }
	}
	if err := json.Unmarshal([]byte(created), &nw); err != nil {
		t.Fatal(err)
	}
	if len(nw.Subnets) != 2 || nw.Subnets[0].Subnet != "10.89.0.0/24" || nw.Subnets[1].Subnet != "fd00:89::/64" || nw.Subnets[1].Gateway != "fd00:89::1" || !nw.IPv6 {
		t.Fatalf("create answered %s; want both subnets with their gateways", created)
	}

	c1, c2 := netnstest.New(t), netnstest.New(t)
	whoServer(t, c1, "[::]:80")
	in1 := setupInputIPs(t, created, ctrID1, "web", []string{"10.89.0.50", "fd00:89::50"},
		`[{"container_port": 80, "host_ip": "::1", "host_port": 18489, "protocol": "tcp", "range": 1}]`)
	var sb statusBlock
	if err := json.Unmarshal([]byte(r.ok(in1, "setup", c1.Path)), &sb); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range sb.Interfaces["eth0"].Subnets {
		got = append(got, s.IPNet+" via "+s.Gateway)
	}
	if want := "10.89.0.50/24 via 10.89.0.1, fd00:89::50/64 via fd00:89::1"; strings.Join(got, ", ") != want {
		t.Fatalf("status block subnets %q; want %q", strings.Join(got, ", "), want)
	}
	addrs, err := c1.Addrs("eth0")
	if err != nil || !containsPrefix(addrs, "fd00:89::50/64") || !containsPrefix(addrs, "10.89.0.50/24") {
		t.Errorf("eth0 in the container: %v, %v; want 10.89.0.50/24 and fd00:89::50/64", addrs, err)
	}
	// No SLAAC address may form beside the static one (docs/ipv6.md).
	if v := strings.TrimSpace(c1.MustRun("sysctl", "-n", "net.ipv6.conf.eth0.autoconf")); v != "0" {
		t.Errorf("net.ipv6.conf.eth0.autoconf = %s after netavark setup, want 0", v)
	}
	if routes := c1.MustRun("ip", "-6", "route", "show", "default"); !strings.Contains(routes, "via fd00:89::1 dev eth0") {
		t.Errorf("IPv6 default route in the container: %q", routes)
	}

	in2 := setupInputIPs(t, created, ctrID2, "db", nil, `[]`)
	if err := json.Unmarshal([]byte(r.ok(in2, "setup", c2.Path)), &sb); err != nil {
		t.Fatal(err)
	}
	if s := sb.Interfaces["eth0"].Subnets; len(s) != 2 || s[0].IPNet != "10.89.0.2/24" || s[1].IPNet != "fd00:89::2/64" {
		t.Errorf("second container got %+v; want IPAM's lowest free of each family, 10.89.0.2/24 and fd00:89::2/64", s)
	}
	if got := askWho(t, c2, "[fd00:89::50]:80"); !strings.HasPrefix(got, "[fd00:89::2]:") {
		t.Errorf("the first container saw the second at %q over IPv6; want [fd00:89::2]:PORT", got)
	}
	if got := askWho(t, r.host, "[::1]:18489"); got == "" {
		t.Error("no answer through the published port [::1]:18489")
	}
	if web := endpointNamed(t, r.d, "dual", "web"); web.Address6.String() != "fd00:89::50/64" || web.Gateway6.String() != "fd00:89::1" {
		t.Errorf("endpoint web: IPv6 %s via %s; want fd00:89::50/64 via fd00:89::1", web.Address6, web.Gateway6)
	}

	r.ok(in1, "teardown", c1.Path)
	r.ok(in2, "teardown", c2.Path)
	if eps := endpoints(t, r.d, "dual"); len(eps) != 0 {
		t.Errorf("endpoints after teardown: %+v", eps)
	}

	// ipv6_enabled with an IPv4 subnet only: the daemon gives the IPv6
	// subnet (a /64 of its ULA pool), and create answers it.
	auto := r.ok(`{"name": "auto6", "id": "4f259bab93aaaaa2542ba43ef33eb990d0999ee1b9924b557b7be53c0b7a1bb9",
		"driver": "switchyard-netavark", "ipv6_enabled": true, "internal": false, "dns_enabled": false,
		"subnets": [{"subnet": "10.88.7.0/24"}]}`, "create")
	if err := json.Unmarshal([]byte(auto), &nw); err != nil {
		t.Fatal(err)
	}
	if len(nw.Subnets) != 2 || !strings.HasPrefix(nw.Subnets[1].Subnet, "fd") || !strings.HasSuffix(nw.Subnets[1].Subnet, "/64") {
		t.Errorf("create with ipv6_enabled and an IPv4 subnet answered %s; want an IPv6 /64 beside it", auto)
	}

	// Bad input: one error naming it, nothing made.
	r.fails(`subnets[1].subnet "fd00:2::/64": a second subnet of its family`, `{"name": "bad", "id": "5", "driver": "switchyard-netavark",
		"subnets": [{"subnet": "fd00:1::/64"}, {"subnet": "fd00:2::/64"}]}`, "create")
	r.fails(`network_options.static_ips "fd00:99::5": outside the network's subnet`,
		setupInputIPs(t, created, ctrID3, "x", []string{"fd00:99::5"}, `[]`), "setup", netnstest.New(t).Path)
	for _, n := range networks(t, r.d) {
		if n.Name == "bad" {
			t.Errorf("a network was made from bad input: %+v", n)
		}
	}
}

// setupInputIPs is setupInput with any number of static IPs.
func setupInputIPs(t *testing.T, created, id, name string, ips []string, ports string) string {
	t.Helper()
	var in map[string]any
	if err := json.Unmarshal([]byte(setupInput(t, created, id, name, "", ports)), &in); err != nil {
		t.Fatal(err)
	}
	if len(ips) > 0 {
		in["network_options"].(map[string]any)["static_ips"] = ips
	}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func containsPrefix(ps []netip.Prefix, s string) bool {
	for _, p := range ps {
		if p.String() == s {
			return true
		}
	}
	return false
}
