package e2e_test

import (
	"encoding/json"
	"net"
	"strings"
	"testing"

	"github.com/switchyard-net/switchyard/testing/netnstest"
	"github.com/switchyard-net/switchyard/testing/runtimetest"
)

// cnitool add / check / status / gc / del with CAP_ARGS port mappings and
// CNI_ARGS IP=, against switchyardd in a namespace.
func TestCnitool(t *testing.T) {
	tool := runtimetest.Cnitool(t)
	w := newWorld(t)
	w.conflist(t, "synet", "1.1.0", `"subnet": "10.99.0.0/24",`)
	c, c2 := netnstest.New(t), netnstest.New(t)
	whoServer(t, c, "0.0.0.0:80")
	env := []string{"CNI_PATH=" + w.plugins, "NETCONFPATH=" + w.netconf}
	cnitool := func(extra []string, args ...string) (string, error) {
		return run(t, append(append([]string(nil), env...), extra...), tool, args...)
	}

	out, err := cnitool([]string{
		"CNI_ARGS=IgnoreUnknown=1;IP=10.99.0.7;K8S_POD_NAME=web",
		`CAP_ARGS={"portMappings":[{"hostPort":18081,"containerPort":80,"protocol":"tcp"}]}`,
	}, "add", "synet", c.Path)
	if err != nil {
		t.Fatalf("cnitool add: %v\n%s", err, out)
	}
	t.Cleanup(func() { cnitool(nil, "del", "synet", c.Path) })
	var res struct {
		Interfaces []struct{ Name, Mac, Sandbox string }
		IPs        []struct{ Address, Gateway string }
		Routes     []struct{ Dst, GW string }
		DNS        struct{ Nameservers []string }
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("cnitool add printed %q: %v", out, err)
	}
	if len(res.IPs) != 1 || res.IPs[0].Address != "10.99.0.7/24" || res.IPs[0].Gateway != "10.99.0.1" ||
		len(res.Routes) != 1 || res.Routes[0].Dst != "0.0.0.0/0" || len(res.DNS.Nameservers) != 1 ||
		len(res.Interfaces) != 1 || res.Interfaces[0].Sandbox != c.Path {
		t.Errorf("result %s", out)
	}
	addrs, err := c.Addrs("eth0")
	if err != nil || len(addrs) == 0 || addrs[0].String() != "10.99.0.7/24" {
		t.Errorf("eth0 in the container: %v (%v), want 10.99.0.7/24", addrs, err)
	}
	if r := c.MustRun("ip", "route", "show", "default"); !strings.Contains(r, "via 10.99.0.1") {
		t.Errorf("default route in the container: %q, want via 10.99.0.1", r)
	}
	eps := w.endpoints(t)
	if len(eps) != 1 || eps[0].Runtime != "cni" || !strings.HasPrefix(eps[0].ContainerID, "cnitool-") || eps[0].Name != "web" {
		t.Errorf("endpoint ls: %+v, want web, runtime cni, cnitool's container ID", eps)
	}
	// The published port, from another namespace: the container sees the
	// client's own address.
	if got := askWho(t, w.inet, net.JoinHostPort(hostAddr, "18081")); !strings.HasPrefix(got, inetAddr+":") {
		t.Errorf("the container saw the client as %q, want %s", got, inetAddr)
	}
	if out, err := cnitool(nil, "check", "synet", c.Path); err != nil {
		t.Errorf("cnitool check: %v\n%s", err, out)
	}
	// CHECK reads the interface in the container's namespace: without
	// its default route, it fails.
	c.MustRun("ip", "route", "del", "default")
	if out, err := cnitool(nil, "check", "synet", c.Path); err == nil || !strings.Contains(out, "lacks route 0.0.0.0/0 via 10.99.0.1") {
		t.Errorf("cnitool check without the default route: %v\n%s", err, out)
	}
	c.MustRun("ip", "route", "add", "default", "via", "10.99.0.1")
	if out, err := cnitool(nil, "status", "synet", c.Path); err != nil {
		t.Errorf("cnitool status: %v\n%s", err, out)
	}
	if out, err := cnitool(nil, "del", "synet", c.Path); err != nil {
		t.Fatalf("cnitool del: %v\n%s", err, out)
	}
	w.nothingAttached(t, c)
	if out, err := cnitool(nil, "del", "synet", c.Path); err != nil {
		t.Errorf("second cnitool del: %v\n%s", err, out)
	}

	// GC: cnitool passes no valid attachments, so all of synet's go.
	for _, ns := range []*netnstest.NS{c, c2} {
		if out, err := cnitool(nil, "add", "synet", ns.Path); err != nil {
			t.Fatalf("cnitool add: %v\n%s", err, out)
		}
	}
	if n := len(w.endpoints(t)); n != 2 {
		t.Fatalf("%d endpoints, want 2", n)
	}
	if out, err := cnitool(nil, "gc", "synet", c.Path); err != nil {
		t.Fatalf("cnitool gc: %v\n%s", err, out)
	}
	w.nothingAttached(t, c, c2)

	// The daemon down: STATUS fails with code 50.
	w.d.Stop()
	out, err = cnitool(nil, "status", "synet", c.Path)
	if err == nil {
		t.Fatalf("cnitool status with the daemon down succeeded: %s", out)
	}
	if !strings.Contains(out, "daemon") {
		t.Errorf("cnitool status with the daemon down: %s", out)
	}
}

// Bad input through cnitool: one clear error each, and nothing attached
// afterwards (endpoint ls, port ls, ip link).
func TestCnitoolBadInput(t *testing.T) {
	tool := runtimetest.Cnitool(t)
	w := newWorld(t)
	w.conflist(t, "good", "1.0.0", `"subnet": "10.99.1.0/24",`)
	w.conflist(t, "badsubnet", "1.0.0", `"network": "bad", "subnet": "10.99.1.0/33",`)
	w.conflist(t, "nosubnet", "1.0.0", `"network": "nosuch",`)
	c := netnstest.New(t)
	busy, err := w.host.Listen("0.0.0.0:18082")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	env := []string{"CNI_PATH=" + w.plugins, "NETCONFPATH=" + w.netconf}
	for _, tc := range []struct {
		name  string
		extra []string
		net   string
		netns string
		want  string
	}{
		{"bad subnet", nil, "badsubnet", c.Path, `subnet "10.99.1.0/33"`},
		{"unknown network", nil, "nosubnet", c.Path, `network "nosuch" does not exist`},
		{"IP outside the subnet", []string{"CNI_ARGS=IP=10.98.0.7"}, "good", c.Path, "10.98.0.7"},
		{"host port in use", []string{`CAP_ARGS={"portMappings":[{"hostPort":18082,"containerPort":80}]}`}, "good", c.Path, "18082"},
		{"netns missing", nil, "good", "/run/netns/sytest-none", "/run/netns/sytest-none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := run(t, append(append([]string(nil), env...), tc.extra...), tool, "add", tc.net, tc.netns)
			if err == nil {
				run(t, env, tool, "del", tc.net, tc.netns)
				t.Fatalf("cnitool add succeeded: %s", out)
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("cnitool add: %s\nwant it to name %s", out, tc.want)
			}
			w.nothingAttached(t, c)
		})
	}
	// An address in use: a first container holds 10.99.1.2.
	c2 := netnstest.New(t)
	if out, err := run(t, append(env, "CNI_ARGS=IP=10.99.1.2"), tool, "add", "good", c2.Path); err != nil {
		t.Fatalf("cnitool add: %v\n%s", err, out)
	}
	out, err := run(t, append(env, "CNI_ARGS=IP=10.99.1.2"), tool, "add", "good", c.Path)
	if err == nil || !strings.Contains(out, "10.99.1.2") {
		t.Errorf("cnitool add of an address in use: %v: %s", err, out)
	}
	if eps := w.endpoints(t); len(eps) != 1 {
		t.Errorf("endpoints: %+v, want the first container's alone", eps)
	}
	if out, err := run(t, env, tool, "del", "good", c2.Path); err != nil {
		t.Fatalf("cnitool del: %v\n%s", err, out)
	}
	w.nothingAttached(t, c, c2)
}
