package cni

import (
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/switchyard-net/switchyard/daemon/api"
)

func TestPortMappingSpec(t *testing.T) {
	for _, c := range []struct {
		pm   PortMapping
		want string
		err  string
	}{
		{PortMapping{HostPort: 8080, ContainerPort: 80}, "8080:80/tcp", ""},
		{PortMapping{HostPort: 53, ContainerPort: 53, Protocol: "UDP", HostIP: "127.0.0.1"}, "127.0.0.1:53:53/udp", ""},
		{PortMapping{HostPort: 8080, ContainerPort: 80, HostIP: "::1"}, "[::1]:8080:80/tcp", ""},
		{PortMapping{HostPort: 8080, ContainerPort: 80, HostIP: "::ffff:127.0.0.1"}, "127.0.0.1:8080:80/tcp", ""},
		{PortMapping{HostPort: 0, ContainerPort: 80}, "", "hostPort 0"},
		{PortMapping{HostPort: 80, ContainerPort: 70000}, "", "containerPort 70000"},
		{PortMapping{HostPort: 80, ContainerPort: 80, HostIP: "localhost"}, "", `hostIP "localhost"`},
		{PortMapping{HostPort: 80, ContainerPort: 80, Protocol: "sctp"}, "", `protocol "sctp"`},
	} {
		got, err := c.pm.Spec()
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%+v: error %v, want one naming %s", c.pm, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%+v: %q, %v; want %q", c.pm, got, err, c.want)
		}
	}
}

func TestParseConfig(t *testing.T) {
	conf, err := ParseConfig([]byte(`{"cniVersion":"1.0.0","name":"synet","type":"switchyard","subnet":"10.99.0.0/24",
		"runtimeConfig":{"portMappings":[{"hostPort":18081,"containerPort":80,"protocol":"tcp"}],"ips":["10.99.0.7/24"],"mac":"02:00:00:00:00:07"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if conf.Network != "synet" {
		t.Errorf("network %q, want the name, synet", conf.Network)
	}
	args, err := ParseArgs("IgnoreUnknown=1;K8S_POD_NAME=web;IP=10.99.0.7")
	if err != nil {
		t.Fatal(err)
	}
	r, err := buildRequest(conf, args)
	if err != nil {
		t.Fatal(err)
	}
	if r.IP != "10.99.0.7" || r.MAC != "02:00:00:00:00:07" || r.Name != "web" || len(r.Publish) != 1 || r.Publish[0] != "18081:80/tcp" {
		t.Errorf("request %+v", r)
	}
	for in, want := range map[string]string{
		`{"name":"n","type":"bridge"}`:                           `type "bridge"`,
		`{"type":"switchyard"}`:                                  "neither `network` nor `name`",
		`{"name":"n","type":"switchyard","socket":"run/x.sock"}`: `socket "run/x.sock"`,
		`{"name":"n","type":"switchyard","subnet":"10.0.0.0"}`:   `subnet "10.0.0.0"`,
		`{"name":"n","type":"switchyard","runtimeConfig":{"portMappings":[{"hostPort":-1,"containerPort":1}]}}`: "portMappings[0]: hostPort -1",
		`{"name":"n","type":"switchyard"`: "network config",
	} {
		if _, err := ParseConfig([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one naming %s", in, err, want)
		}
	}
}

// CHECK's comparison: a prevResult that is the endpoint passes; one whose
// MAC, address, gateway or route differ fails, naming what differs.
func TestCompare(t *testing.T) {
	nw := api.Network{Name: "n", MTU: 1500}
	ep := api.Endpoint{IfName: "eth0", MAC: "02:42:0a:63:00:02", Address: netip.MustParsePrefix("10.99.0.2/24"), Gateway: netip.MustParseAddr("10.99.0.1")}
	now := result(nw, ep, "/run/netns/c")
	same := result(nw, ep, "/run/netns/c")
	if _, err := compare(same, now); err != nil {
		t.Errorf("same result: %v", err)
	}
	mutate := map[string]func(r *types100.Result){
		"MAC":       func(r *types100.Result) { r.Interfaces[0].Mac = "02:42:0a:63:00:09" },
		"interface": func(r *types100.Result) { r.Interfaces[0].Name = "eth1" },
		"sandbox":   func(r *types100.Result) { r.Interfaces[0].Sandbox = "/run/netns/other" },
		"address": func(r *types100.Result) {
			r.IPs[0].Address = net.IPNet{IP: net.IPv4(10, 99, 0, 3), Mask: net.CIDRMask(24, 32)}
		},
		"gateway": func(r *types100.Result) { r.IPs[0].Gateway = net.IPv4(10, 99, 0, 254) },
		"route": func(r *types100.Result) {
			r.Routes = append(r.Routes, &types.Route{Dst: net.IPNet{IP: net.IPv4(192, 168, 0, 0), Mask: net.CIDRMask(16, 32)}, GW: net.IPv4(10, 99, 0, 1)})
		},
	}
	for what, f := range mutate {
		prev := result(nw, ep, "/run/netns/c")
		f(prev)
		if _, err := compare(prev, now); err == nil {
			t.Errorf("a prevResult with another %s passed", what)
		}
	}
}

// The plugin is a translator: it imports the API client and nothing
// else of Switchyard's (DESIGN.md, "Next rooms").
func TestImportsOnlyTheAPI(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	const mod = "github.com/switchyard-net/switchyard/"
	for _, pkg := range strings.Fields(string(out)) {
		if !strings.HasPrefix(pkg, mod) || pkg == mod+"plugins/cni" {
			continue
		}
		if pkg != mod+"daemon/api" && !strings.HasPrefix(pkg, mod+"internal/") {
			t.Errorf("plugins/cni depends on %s; it may use daemon/api only", pkg)
		}
	}
}

// Chained after another plugin, ADD's result keeps the earlier result's
// interfaces and addresses first and adds its own after them.
func TestMerge(t *testing.T) {
	nw := api.Network{Name: "n", MTU: 1500}
	ep := api.Endpoint{IfName: "eth1", MAC: "02:42:0a:63:00:02", Address: netip.MustParsePrefix("10.99.0.2/24"), Gateway: netip.MustParseAddr("10.99.0.1")}
	prev := &types100.Result{
		CNIVersion: "1.0.0",
		Interfaces: []*types100.Interface{{Name: "lo"}},
		IPs:        []*types100.IPConfig{{Interface: types100.Int(0), Address: net.IPNet{IP: net.IPv4(127, 0, 0, 1), Mask: net.CIDRMask(8, 32)}}},
		DNS:        types.DNS{Nameservers: []string{"10.99.0.1"}},
	}
	got := merge(prev, result(nw, ep, "/run/netns/c"))
	if len(got.Interfaces) != 2 || got.Interfaces[1].Name != "eth1" || len(got.IPs) != 2 || *got.IPs[1].Interface != 1 ||
		got.IPs[1].Address.String() != "10.99.0.2/24" || len(got.DNS.Nameservers) != 1 || len(prev.Interfaces) != 1 {
		t.Errorf("merged %+v (prev now %+v)", got, prev)
	}
}
