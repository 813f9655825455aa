package e2e_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/testing/netnstest"
	"github.com/switchyard-net/switchyard/testing/runtimetest"
)

// cnitool add / check / del on a dual-stack conflist (subnet and
// subnet6): the ADD result carries an address and a default route of each
// family, the container has them and reaches another over IPv6, CHECK
// reads both in the namespace (and fails without the IPv6 default route),
// DEL frees both.
func TestCnitoolDualStack(t *testing.T) {
	tool := runtimetest.Cnitool(t)
	w := newWorld(t)
	w.conflist(t, "dual", "1.1.0", `"subnet": "10.98.0.0/24", "subnet6": "fd00:98::/64",`)
	c, c2 := netnstest.New(t), netnstest.New(t)
	whoServer(t, c, "[::]:80")
	env := []string{"CNI_PATH=" + w.plugins, "NETCONFPATH=" + w.netconf}
	cnitool := func(args ...string) (string, error) { return run(t, env, tool, args...) }

	out, err := cnitool("add", "dual", c.Path)
	if err != nil {
		t.Fatalf("cnitool add: %v\n%s", err, out)
	}
	t.Cleanup(func() { cnitool("del", "dual", c.Path) })
	var res struct {
		IPs    []struct{ Address, Gateway string }
		Routes []struct{ Dst, GW string }
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("cnitool add printed %q: %v", out, err)
	}
	var got []string
	for _, ip := range res.IPs {
		got = append(got, ip.Address+" via "+ip.Gateway)
	}
	for _, r := range res.Routes {
		got = append(got, r.Dst+" via "+r.GW)
	}
	if want := "10.98.0.2/24 via 10.98.0.1, fd00:98::2/64 via fd00:98::1, 0.0.0.0/0 via 10.98.0.1, ::/0 via fd00:98::1"; strings.Join(got, ", ") != want {
		t.Errorf("ADD result %q, want %q", strings.Join(got, ", "), want)
	}
	if a := c.MustRun("ip", "-6", "addr", "show", "dev", "eth0"); !strings.Contains(a, "inet6 fd00:98::2/64") {
		t.Errorf("eth0's IPv6 addresses: %q", a)
	}
	// No SLAAC address may form beside the static one (docs/ipv6.md).
	if v := strings.TrimSpace(c.MustRun("sysctl", "-n", "net.ipv6.conf.eth0.autoconf")); v != "0" {
		t.Errorf("net.ipv6.conf.eth0.autoconf = %s after ADD, want 0", v)
	}
	if r := c.MustRun("ip", "-6", "route", "show", "default"); !strings.Contains(r, "via fd00:98::1") {
		t.Errorf("IPv6 default route in the container: %q", r)
	}
	if out, err := cnitool("add", "dual", c2.Path); err != nil {
		t.Fatalf("cnitool add of a second container: %v\n%s", err, out)
	}
	t.Cleanup(func() { cnitool("del", "dual", c2.Path) })
	if got := askWho(t, c2, "[fd00:98::2]:80"); !strings.HasPrefix(got, "[fd00:98::3]:") {
		t.Errorf("the first container saw the second at %q over IPv6; want [fd00:98::3]:PORT", got)
	}

	if out, err := cnitool("check", "dual", c.Path); err != nil {
		t.Errorf("cnitool check: %v\n%s", err, out)
	}
	c.MustRun("ip", "-6", "route", "del", "default", "via", "fd00:98::1")
	if out, err := cnitool("check", "dual", c.Path); err == nil || !strings.Contains(out, "lacks route ::/0 via fd00:98::1") {
		t.Errorf("cnitool check without the IPv6 default route: %v\n%s", err, out)
	}
	c.MustRun("ip", "-6", "route", "add", "default", "via", "fd00:98::1")
	if out, err := cnitool("check", "dual", c.Path); err != nil {
		t.Errorf("cnitool check with the route back: %v\n%s", err, out)
	}

	for _, ns := range []*netnstest.NS{c, c2} {
		if out, err := cnitool("del", "dual", ns.Path); err != nil {
			t.Fatalf("cnitool del: %v\n%s", err, out)
		}
	}
	w.nothingAttached(t, c, c2)
	// Both addresses are free again: the next ADD gets the lowest of each.
	if out, err := cnitool("add", "dual", c2.Path); err != nil || !strings.Contains(out, "fd00:98::2/64") || !strings.Contains(out, "10.98.0.2/24") {
		t.Errorf("cnitool add after del: %v\n%s", err, out)
	}
}

// podman 4.3.1 (CNI backend) with a dual-stack conflist: the container
// has both addresses and IPv6 default route, another container reaches
// its server over IPv6, and podman rm frees both addresses.
func TestPodmanDualStack(t *testing.T) {
	w := newWorld(t)
	p := runtimetest.Podman(t, runtimetest.Opts{CNIPluginDirs: []string{w.plugins}, NetNS: w.host.Path, CNIConfDir: w.netconf})
	noPortReservation(t, p)
	w.conflist(t, "dual", "1.0.0", `"subnet": "10.97.0.0/24", "subnet6": "fd00:97::/64",`)
	root := whoRootfs(t)

	p.MustRun("run", "-d", "--name", "web", "--network", "dual", "--rootfs", root, "/bin/httpd", "-f", "-p", "80", "-h", "/www")
	eps := w.endpoints(t)
	if len(eps) != 1 || eps[0].Address.String() != "10.97.0.2/24" || eps[0].Address6.String() != "fd00:97::2/64" {
		t.Fatalf("endpoint ls: %+v, want web at 10.97.0.2/24 and fd00:97::2/64", eps)
	}
	if out := p.MustRun("exec", "web", "ip", "-o", "addr", "show", "dev", "eth0"); !strings.Contains(out, "inet6 fd00:97::2/64") || !strings.Contains(out, "inet 10.97.0.2/24") {
		t.Errorf("the container's eth0: %q, want 10.97.0.2/24 and fd00:97::2/64", out)
	}
	if out := p.MustRun("exec", "web", "ip", "-6", "route", "show", "default"); !strings.Contains(out, "via fd00:97::1") {
		t.Errorf("the container's IPv6 default route: %q, want via fd00:97::1", out)
	}
	var out string
	var err error
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, err = p.Run("run", "--rm", "--network", "dual", "--rootfs", root, "/bin/wget", "-q", "-O", "-", "http://[fd00:97::2]/cgi-bin/who")
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond) // httpd starting in the container
	}
	if err != nil || !strings.HasPrefix(strings.TrimSpace(out), "[fd00:97::") {
		t.Errorf("container to container over IPv6: %q, %v; want the client's address in fd00:97::/64", out, err)
	}
	p.MustRun("rm", "-f", "web")
	w.nothingAttached(t)
}
