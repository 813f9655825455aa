package cni

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	types100 "github.com/containernetworking/cni/pkg/types/100"
)

// A config with subnet and subnet6 creates a dual-stack network; the ADD
// result carries both addresses, each with its gateway, and both default
// routes.
func TestAddDualStack(t *testing.T) {
	e := newEnv(t)
	raw := fmt.Sprintf(`{"cniVersion": "1.0.0", "name": "cni-dual", "plugins": [{"type": "switchyard", "network": "dual",
		"subnet": "10.97.0.0/24", "subnet6": "fd00:97::/64", "socket": %q}]}`, e.socket)
	list, err := libcni.NetworkConfFromBytes([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	rt := &libcni.RuntimeConf{ContainerID: "d0a1", NetNS: e.netns("dual"), IfName: "eth0"}
	r, err := e.cni.AddNetworkList(context.Background(), list, rt)
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	res, err := types100.NewResultFromResult(r)
	if err != nil {
		t.Fatal(err)
	}
	var ips, routes []string
	for _, ip := range res.IPs {
		ips = append(ips, ip.Address.String()+" via "+ip.Gateway.String())
	}
	for _, rt := range res.Routes {
		routes = append(routes, rt.Dst.String()+" via "+rt.GW.String())
	}
	if got, want := strings.Join(ips, ", "), "10.97.0.2/24 via 10.97.0.1, fd00:97::2/64 via fd00:97::1"; got != want {
		t.Errorf("ips %s, want %s", got, want)
	}
	if got, want := strings.Join(routes, ", "), "0.0.0.0/0 via 10.97.0.1, ::/0 via fd00:97::1"; got != want {
		t.Errorf("routes %s, want %s", got, want)
	}
	if eps := e.endpoints("dual"); len(eps) != 1 || eps[0].Address6.String() != "fd00:97::2/64" {
		t.Errorf("endpoints %+v, want one with fd00:97::2/64", eps)
	}
}

// subnet6 is checked: an IPv6 prefix, canonical, beside an IPv4 subnet.
func TestSubnet6Config(t *testing.T) {
	for _, c := range []struct{ subnet, subnet6, want string }{
		{"10.97.0.0/24", "10.98.0.0/24", "not an IPv6 CIDR prefix"},
		{"10.97.0.0/24", "fd00:97::1/64", "host bits set"},
		{"", "fd00:97::/64", "without an IPv4 `subnet`"},
		{"fd00:96::/64", "fd00:97::/64", "without an IPv4 `subnet`"},
	} {
		sub := ""
		if c.subnet != "" {
			sub = fmt.Sprintf(`"subnet": %q, `, c.subnet)
		}
		_, err := ParseConfig([]byte(fmt.Sprintf(`{"cniVersion": "1.0.0", "name": "n", "type": "switchyard", %s"subnet6": %q}`, sub, c.subnet6)))
		if err == nil || !strings.Contains(err.Error(), "subnet6") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("subnet %q subnet6 %q: %v, want an error on subnet6 saying %q", c.subnet, c.subnet6, err, c.want)
		}
	}
}
