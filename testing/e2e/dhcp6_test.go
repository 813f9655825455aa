package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/testing/clitest"
	"github.com/switchyard-net/switchyard/testing/netnstest"
)

// dhclientScript applies a DHCPv6 lease as Debian's dhclient-script does
// (without touching the host's /etc/resolv.conf) and records what the
// client was given, one file per event.
const dhclientScript = `#!/bin/sh
case "$reason" in
BOUND6|RENEW6|REBIND6|REBOOT6)
	[ -z "$new_ip6_address" ] || ip -6 addr replace "$new_ip6_address/$new_ip6_prefixlen" dev "$interface" ${new_max_life:+valid_lft $new_max_life} ${new_preferred_life:+preferred_lft $new_preferred_life}
	;;
RELEASE6|EXPIRE6|STOP6)
	if [ -n "$old_ip6_address" ]; then ip -6 addr del "$old_ip6_address/$old_ip6_prefixlen" dev "$interface"; fi
	;;
esac
env | sort > %[1]s/$reason.tmp && mv %[1]s/$reason.tmp %[1]s/$reason.env
exit 0
`

// dhclient6 is a run of ISC dhclient -6 on one interface of a namespace,
// with its own configuration, lease, PID and event files.
type dhclient6 struct {
	t      *testing.T
	ns     *netnstest.NS
	ifname string
	dir    string
	args   []string // the files: -cf, -lf, -pf, -sf
	cmd    *exec.Cmd
	out    strings.Builder
	exited chan struct{} // closed when cmd has ended, with err set
	err    error
}

// startDhclient6 starts dhclient -6 in the foreground on ifname in ns.
// conf is its dhclient.conf; extra are more flags (-D LL, say).
func startDhclient6(t *testing.T, ns *netnstest.NS, ifname, conf string, extra ...string) *dhclient6 {
	t.Helper()
	bin, err := exec.LookPath("dhclient")
	if err != nil {
		t.Fatalf("dhclient (Debian package isc-dhcp-client) is needed: %v", err)
	}
	c := &dhclient6{t: t, ns: ns, ifname: ifname, dir: t.TempDir(), exited: make(chan struct{})}
	script := filepath.Join(c.dir, "script.sh")
	if err := os.WriteFile(script, []byte(fmt.Sprintf(dhclientScript, c.dir)), 0o755); err != nil {
		t.Fatal(err)
	}
	cf := filepath.Join(c.dir, "dhclient6.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	c.args = []string{"-cf", cf, "-lf", filepath.Join(c.dir, "leases"), "-pf", filepath.Join(c.dir, "pid"), "-sf", script}
	args := append(append([]string{"-6", "-d", "-v"}, c.args...), extra...)
	c.cmd = ns.Command(context.Background(), bin, append(args, ifname)...)
	c.cmd.Stdout, c.cmd.Stderr = &c.out, &c.out
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.err = c.cmd.Wait(); close(c.exited) }()
	t.Cleanup(func() {
		select {
		case <-c.exited:
		default: // still running: the test failed before releasing
			c.cmd.Process.Kill()
			<-c.exited
		}
	})
	return c
}

// event waits for the script's event reason (BOUND6, RELEASE6) and
// returns its environment.
func (c *dhclient6) event(reason string) map[string]string {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ended := false
		select {
		case <-c.exited: // a stateless client ends once configured
			ended = true
		default:
		}
		b, err := os.ReadFile(filepath.Join(c.dir, reason+".env"))
		if err == nil {
			env := map[string]string{}
			for _, line := range strings.Split(string(b), "\n") {
				if k, v, ok := strings.Cut(line, "="); ok {
					env[k] = v
				}
			}
			return env
		}
		if ended {
			files, _ := filepath.Glob(filepath.Join(c.dir, "*.env"))
			c.t.Fatalf("dhclient -6 ended (%v) before %s (events: %v):\n%s", c.err, reason, files, c.out.String())
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no %s from dhclient -6 within 30 s:\n%s", reason, c.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// release runs dhclient -6 -r with the same files: it stops the running
// client and releases its lease, and the script removes the address.
func (c *dhclient6) release() {
	c.t.Helper()
	args := append(append([]string{"-6", "-r", "-v"}, c.args...), c.ifname)
	if out, err := c.ns.Run("dhclient", args...); err != nil {
		c.t.Fatalf("dhclient -6 -r: %v\n%s", err, out)
	}
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
		c.t.Fatalf("dhclient -6 -r did not stop the running client:\n%s", c.out.String())
	}
}

// waitAddr6 waits until ifname in ns has an IPv6 address whose line of
// ip -6 -o addr match accepts, out of the tentative state (duplicate
// address detection done), and returns that line.
func waitAddr6(t *testing.T, ns *netnstest.NS, ifname string, match func(line string) bool, what string) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		out := ns.MustRun("ip", "-6", "-o", "addr", "show", "dev", ifname)
		for _, line := range strings.Split(out, "\n") {
			if match(line) && !strings.Contains(line, "tentative") {
				return line
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s on %s did not appear, or stayed tentative, within 15 s:\n%s", what, ifname, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// leases6 returns the network's DHCPv6 leases by MAC.
func leases6(t *testing.T, run func(...string) string, network string) map[string]api.DHCPLease {
	t.Helper()
	var n api.Network
	if err := json.Unmarshal([]byte(run("network", "inspect", network, "--format", "json")), &n); err != nil {
		t.Fatal(err)
	}
	m := map[string]api.DHCPLease{}
	for _, l := range n.DHCPLeases {
		if l.Addr.Is6() {
			m[l.MAC] = l
		}
	}
	return m
}

// A VM on a --tap-only TAP of a dual-stack network (here: a namespace
// whose NIC the test joins to the TAP, as QEMU would) learns from the
// gateway's Router Advertisement that addresses come from DHCPv6 (M and
// O flags); ISC dhclient -6 gets exactly the IPv6 address IPAM reserved
// for the endpoint's --mac, with the gateway as DNS server and the
// network's name as domain, by the four-message exchange (DUID-LLT) and
// again by Rapid Commit (DUID-LL); the address works (ping the gateway
// from it), shows in the lease table, and a release removes it. A
// stateless client (dhclient -6 -S) gets the DNS server and domain only.
func TestDHCPv6ForVMTap(t *testing.T) {
	host, vm := netnstest.New(t), netnstest.New(t)
	d := clitest.NewDaemon(t)
	d.Wrap = []string{"nsenter", "--net=" + host.Path}
	d.Start()
	d.MustRun("network", "create", "vms6", "--subnet", "10.250.23.0/24", "--subnet", "fd00:250:23::/64")
	const mac = "52:54:00:23:00:06"
	var ep api.Endpoint
	if err := json.Unmarshal([]byte(d.MustRun("connect", "vms6", "--tap-only", "vm6tap0", "--mac", mac, "--ip6", "fd00:250:23::66", "--format", "json")), &ep); err != nil {
		t.Fatal(err)
	}
	want := ep.Address6.Addr().String()
	if want != "fd00:250:23::66" {
		t.Fatalf("endpoint's IPv6 address %s, want fd00:250:23::66", ep.Address6)
	}

	// The VM's NIC, eth0 in vm with the VM's MAC; its peer vm6nic in
	// host, joined to the TAP by the relay.
	host.MustRun("ip", "link", "add", "vm6nic", "type", "veth", "peer", "name", "eth0", "netns", vm.Name)
	host.MustRun("ip", "link", "set", "vm6nic", "up")
	vm.MustRun("ip", "link", "set", "eth0", "address", mac)
	relayVM(t, host, "vm6tap0", "vm6nic")
	vm.MustRun("ip", "link", "set", "eth0", "up")
	// dhclient binds its socket to the link-local address, which the
	// kernel refuses while duplicate address detection runs: wait for it
	// to leave the tentative state.
	waitAddr6(t, vm, "eth0", func(l string) bool { return strings.Contains(l, "scope link") }, "the link-local address")

	ra := vm.MustRun("rdisc6", "-1", "-w", "3000", "eth0")
	for _, re := range []string{`Stateful address conf\.\s*:\s*Yes`, `Stateful other conf\.\s*:\s*Yes`, `fd00:250:23::/64`} {
		if !regexp.MustCompile(re).MatchString(ra) {
			t.Errorf("rdisc6 eth0 lacks %q:\n%s", re, ra)
		}
	}

	for _, v := range []struct {
		name  string
		conf  string
		extra []string
	}{
		{"four messages, DUID-LLT", "request dhcp6.name-servers, dhcp6.domain-search;\n", []string{"-D", "LLT"}},
		{"rapid commit, DUID-LL", "send dhcp6.rapid-commit;\nrequest dhcp6.name-servers, dhcp6.domain-search;\n", []string{"-D", "LL"}},
	} {
		c := startDhclient6(t, vm, "eth0", v.conf, v.extra...)
		env := c.event("BOUND6")
		for k, w := range map[string]string{"new_ip6_address": want, "new_dhcp6_name_servers": "fd00:250:23::1", "new_dhcp6_domain_search": "vms6."} {
			if env[k] != w {
				t.Errorf("%s: dhclient got %s=%q, want %q", v.name, k, env[k], w)
			}
		}
		line := waitAddr6(t, vm, "eth0", func(l string) bool { return strings.Contains(l, " "+want+"/") }, want)
		if !strings.Contains(line, "scope global") {
			t.Errorf("%s: %s on eth0: %q", v.name, want, line)
		}
		if _, err := vm.Run("ping", "-6", "-c", "1", "-W", "2", "-I", want, "fd00:250:23::1"); err != nil {
			t.Errorf("%s: ping the gateway from %s: %v", v.name, want, err)
		}
		if l, ok := leases6(t, d.MustRun, "vms6")[mac]; !ok || l.Addr.String() != want || l.State != "bound" || l.DUID == "" {
			t.Errorf("%s: lease table has %+v for %s, want %s bound with a DUID", v.name, l, mac, want)
		}
		if v.extra[1] == "LL" && !strings.HasPrefix(leases6(t, d.MustRun, "vms6")[mac].DUID, "00030001"+strings.ReplaceAll(mac, ":", "")) {
			t.Errorf("%s: DUID %s, want a DUID-LL of %s", v.name, leases6(t, d.MustRun, "vms6")[mac].DUID, mac)
		}

		c.release()
		if _, ok := leases6(t, d.MustRun, "vms6")[mac]; ok {
			t.Errorf("%s: the released lease is still in the table", v.name)
		}
		if out := vm.MustRun("ip", "-6", "-o", "addr", "show", "dev", "eth0"); strings.Contains(out, " "+want+"/") {
			t.Errorf("%s: after the release, eth0 still has %s:\n%s", v.name, want, out)
		}
	}

	// Stateless (-S): an INFORMATION-REQUEST gets the DNS server and
	// domain, and no address, and binds nothing; the client then ends.
	c := startDhclient6(t, vm, "eth0", "request dhcp6.name-servers, dhcp6.domain-search;\n", "-S")
	env := c.event("RENEW6") // what dhclient calls a stateless configuration
	if env["new_dhcp6_name_servers"] != "fd00:250:23::1" || env["new_dhcp6_domain_search"] != "vms6." || env["new_ip6_address"] != "" {
		t.Errorf("stateless: dhclient got name servers %q, domain %q, address %q; want fd00:250:23::1, vms6. and none",
			env["new_dhcp6_name_servers"], env["new_dhcp6_domain_search"], env["new_ip6_address"])
	}
	if l := leases6(t, d.MustRun, "vms6"); len(l) != 0 {
		t.Errorf("stateless: lease table %+v, want empty", l)
	}
}
