// Package e2e_test drives the real switchyard binary against real network
// namespaces: the daemon runs as a process, every step is a CLI command a
// user would type, and traffic crosses real TAP devices and kernel stacks.
// Tests skip where the kernel refuses namespaces or TAPs.
package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/testing/clitest"
	"github.com/switchyard-net/switchyard/testing/netnstest"
)

const mb = 1 << 20

func endpoints(t *testing.T, d *clitest.Daemon, network string) []api.Endpoint {
	t.Helper()
	args := []string{"endpoint", "ls", "--format", "json"}
	if network != "" {
		args = append(args, "--network", network)
	}
	var es []api.Endpoint
	if err := json.Unmarshal([]byte(d.MustRun(args...)), &es); err != nil {
		t.Fatal(err)
	}
	return es
}

func networks(t *testing.T, d *clitest.Daemon) []api.Network {
	t.Helper()
	var ns []api.Network
	if err := json.Unmarshal([]byte(d.MustRun("network", "ls", "--format", "json")), &ns); err != nil {
		t.Fatal(err)
	}
	return ns
}

// waitEndpoints waits up to 15 s for network to have n endpoints; what
// names the endpoint that should have gone, for the failure message.
func waitEndpoints(t *testing.T, d *clitest.Daemon, network string, n int, what string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for len(endpoints(t, d, network)) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%s is still listed after 15 s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// identity is what must survive a restart: everything but counters.
func identity(es []api.Endpoint) string {
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "%s/%s %s %s %s %s %s\n", e.Network, e.Name, e.NetNS, e.IfName, e.Address, e.MAC, e.Gateway)
	}
	return b.String()
}

// Three namespaces on one network through the CLI: addresses from IPAM,
// 100 MB with equal checksums, the gateway answers ping; then kill -9 the
// daemon, restart it, and everything works again with the same state.
func TestOneNetworkThreeNamespacesSurvivesKill9(t *testing.T) {
	nsA, nsB, nsC := netnstest.New(t), netnstest.New(t), netnstest.New(t)
	d := clitest.NewDaemon(t)
	d.Start()
	d.MustRun("network", "create", "web", "--subnet", "10.240.0.0/24")
	for _, ns := range []*netnstest.NS{nsA, nsB, nsC} {
		d.MustRun("connect", "web", "--netns", ns.Path)
	}
	es := endpoints(t, d, "web")
	if len(es) != 3 {
		t.Fatalf("endpoint ls shows %d endpoints, want 3", len(es))
	}
	want := map[string]string{nsA.Name: "10.240.0.2/24", nsB.Name: "10.240.0.3/24", nsC.Name: "10.240.0.4/24"}
	for _, e := range es {
		if e.Address.String() != want[e.Name] || e.IfName != "eth0" || e.Gateway.String() != "10.240.0.1" {
			t.Errorf("endpoint %s: %s %s gw %s, want %s eth0 gw 10.240.0.1", e.Name, e.Address, e.IfName, e.Gateway, want[e.Name])
		}
		if ip := netip.MustParsePrefix(want[e.Name]).Addr().As4(); e.MAC != fmt.Sprintf("02:42:0a:f0:00:%02x", ip[3]) {
			t.Errorf("endpoint %s MAC %s, want Docker's 02:42 + address", e.Name, e.MAC)
		}
	}
	// The container's view: eth0 has the address, the default route
	// goes via the gateway.
	if r := nsA.MustRun("ip", "route", "show", "default"); !strings.Contains(r, "via 10.240.0.1 dev eth0") {
		t.Errorf("default route in %s: %q", nsA.Name, r)
	}

	for _, ns := range []*netnstest.NS{nsA, nsB, nsC} {
		if err := ns.Ping("10.240.0.1", 2); err != nil {
			t.Fatalf("ping gateway from %s: %v", ns.Name, err)
		}
	}
	if err := nsC.Ping("10.240.0.2", 2); err != nil {
		t.Fatalf("ping a from c: %v", err)
	}
	sum, took := netnstest.Transfer(t, nsA, nsB, "10.240.0.3:7000", 100*mb)
	t.Logf("100 MB a→b in %v (%.2f Gbit/s), sha256 %x", took, 800/took.Seconds()/1000, sum[:8])

	before := identity(es)
	beforeNets := networks(t, d)
	d.Kill9()
	// The container keeps its interface and address while the daemon is down.
	if addrs, err := nsA.Addrs("eth0"); err != nil || len(addrs) == 0 || addrs[0].String() != "10.240.0.2/24" {
		t.Errorf("eth0 of %s while the daemon is down: %v %v", nsA.Name, addrs, err)
	}
	d.Start()
	if after := identity(endpoints(t, d, "web")); after != before {
		t.Fatalf("endpoints after restart:\n%s\nbefore:\n%s", after, before)
	}
	afterNets := networks(t, d)
	if len(afterNets) != len(beforeNets) {
		t.Fatalf("networks after restart %v, before %v", afterNets, beforeNets)
	}
	for i := range afterNets {
		a, b := afterNets[i], beforeNets[i]
		if a.Name != b.Name || a.Subnet != b.Subnet || a.Gateway != b.Gateway || a.MTU != b.MTU || a.Endpoints != b.Endpoints {
			t.Errorf("network after restart %+v, before %+v", a, b)
		}
	}
	sum, took = netnstest.Transfer(t, nsA, nsB, "10.240.0.3:7001", 100*mb)
	t.Logf("after kill -9 and restart: 100 MB a→b in %v, sha256 %x", took, sum[:8])
	if err := nsC.Ping("10.240.0.1", 1); err != nil {
		t.Fatalf("ping gateway after restart: %v", err)
	}
}

// icc=false: endpoints reach the gateway but not each other.
func TestICCFalse(t *testing.T) {
	nsA, nsB := netnstest.New(t), netnstest.New(t)
	d := clitest.NewDaemon(t)
	d.Start()
	d.MustRun("network", "create", "iso", "--subnet", "10.241.0.0/24", "--icc=false")
	d.MustRun("connect", "iso", "--netns", nsA.Path, "--name", "a")
	d.MustRun("connect", "iso", "--netns", nsB.Path, "--name", "b")
	for _, ns := range []*netnstest.NS{nsA, nsB} {
		if err := ns.Ping("10.241.0.1", 2); err != nil {
			t.Fatalf("icc=false must still allow the gateway: %v", err)
		}
	}
	if err := nsA.Ping("10.241.0.3", 2); err == nil {
		t.Fatal("icc=false: a pinged b")
	}
	if _, err := nsB.Run("ping", "-c", "1", "-W", "1", "10.241.0.2"); err == nil {
		t.Fatal("icc=false: b pinged a")
	}
}

// Bad input gets one clear line, a non-zero exit, and changes nothing:
// the endpoints that were forwarding keep forwarding.
func TestBadInputChangesNothing(t *testing.T) {
	nsA, nsB, nsC := netnstest.New(t), netnstest.New(t), netnstest.New(t)
	d := clitest.NewDaemon(t)
	d.Start()
	d.MustRun("network", "create", "web", "--subnet", "10.242.0.0/24", "--aux-address", "router=10.242.0.5")
	d.MustRun("connect", "web", "--netns", nsA.Path, "--name", "a")
	d.MustRun("connect", "web", "--netns", nsB.Path, "--name", "b", "--ip", "10.242.0.50")
	netsBefore := networks(t, d)
	epsBefore := identity(endpoints(t, d, ""))

	for _, tc := range []struct {
		args []string
		want string // the offending input, named in the message
	}{
		{[]string{"network", "create", "x", "--subnet", "10.300.0.0/24"}, `"10.300.0.0/24"`},
		{[]string{"network", "create", "x", "--subnet", "10.243.0.7/24"}, "10.243.0.7/24"},
		{[]string{"network", "create", "x", "--subnet", "10.242.0.0/16"}, "10.242.0.0/16"},
		{[]string{"network", "create", "x", "--subnet", "10.243.0.0/24", "--gateway", "10.9.0.1"}, "10.9.0.1"},
		{[]string{"network", "create", "x", "--subnet", "10.243.0.0/24", "--ip-range", "10.9.0.0/28"}, "10.9.0.0/28"},
		{[]string{"network", "create", "x", "--subnet", "10.243.0.0/24", "--mtu", "70000"}, "70000"},
		{[]string{"network", "create", "web", "--subnet", "10.244.0.0/24"}, `"web"`},
		{[]string{"network", "create", "bad name!"}, `"bad name!"`},
		{[]string{"connect", "web", "--netns", "/var/run/netns/no-such-ns-sy"}, "/var/run/netns/no-such-ns-sy"},
		{[]string{"connect", "web", "--netns", nsC.Path, "--ip", "10.242.0.50"}, "10.242.0.50"},
		{[]string{"connect", "web", "--netns", nsC.Path, "--ip", "10.242.0.5"}, "10.242.0.5"},
		{[]string{"connect", "web", "--netns", nsC.Path, "--ip", "192.168.9.9"}, "192.168.9.9"},
		{[]string{"connect", "web", "--netns", nsC.Path, "--name", "a"}, `"a"`},
		{[]string{"connect", "web", "--netns", nsA.Path, "--name", "again"}, nsA.Path},
		{[]string{"connect", "web", "--netns", nsC.Path, "--mac", "zz:zz"}, "zz:zz"},
		{[]string{"connect", "web", "--pid", "999999999"}, "999999999"},
		{[]string{"connect", "nonet", "--netns", nsC.Path}, `"nonet"`},
		{[]string{"disconnect", "web", "nobody"}, `"nobody"`},
		{[]string{"network", "rm", "web"}, "active endpoints"},
		{[]string{"network", "rm", "bridge"}, "bridge"},
		{[]string{"network", "inspect", "nonet"}, `"nonet"`},
	} {
		r := d.Run(tc.args...)
		lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
		if r.Code == 0 || len(lines) != 1 || !strings.HasPrefix(lines[0], "switchyard: ") || !strings.Contains(lines[0], tc.want) {
			t.Errorf("want a non-zero exit and one line naming %s; got %s", tc.want, r)
		}
	}
	// nsC was never connected: no stray device was left in it.
	if out, err := nsC.Run("ip", "link", "show", "eth0"); err == nil {
		t.Errorf("a refused connect left eth0 in %s:\n%s", nsC.Name, out)
	}
	if got := networks(t, d); len(got) != len(netsBefore) {
		t.Errorf("networks changed: %d → %d", len(netsBefore), len(got))
	}
	if got := identity(endpoints(t, d, "")); got != epsBefore {
		t.Errorf("endpoints changed:\n%s\nwas:\n%s", got, epsBefore)
	}
	if err := nsA.Ping("10.242.0.50", 2); err != nil {
		t.Fatalf("forwarding broken after bad input: %v", err)
	}
	// The addresses refused above are free for a good request.
	d.MustRun("connect", "web", "--netns", nsC.Path, "--name", "c")
	if es := endpoints(t, d, "web"); len(es) != 3 {
		t.Fatalf("%d endpoints after a good connect, want 3", len(es))
	}
}

func TestDaemonNotRunning(t *testing.T) {
	d := clitest.NewDaemon(t) // never started
	r := d.Run("network", "ls")
	if r.Code == 0 || !strings.Contains(r.Stderr, d.Socket) || !strings.Contains(r.Stderr, "switchyard daemon") {
		t.Fatalf("want an error naming the socket and the daemon; got %s", r)
	}
}

func TestSecondDaemonRefused(t *testing.T) {
	d := clitest.NewDaemon(t)
	d.Start()
	out, err := exec.Command(d.Bin, "--socket", d.Socket, "daemon", "--state-dir", t.TempDir()).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "already listening") {
		t.Fatalf("second daemon on the same socket: err %v, output %s", err, out)
	}
	out, err = exec.Command(d.Bin, "--socket", d.Socket+"2", "daemon", "--state-dir", d.StateDir).CombinedOutput()
	if err == nil || !strings.Contains(string(out), d.StateDir) {
		t.Fatalf("second daemon on the same state dir: err %v, output %s", err, out)
	}
	d.MustRun("network", "ls") // the first one is unharmed
}

// Connect and disconnect: the TAP goes away, the address is reused, a
// name taken by the namespace's own interface is refused clearly.
func TestDisconnectFreesAddressAndDevice(t *testing.T) {
	nsA, nsB := netnstest.New(t), netnstest.New(t)
	d := clitest.NewDaemon(t)
	d.Start()
	d.MustRun("network", "create", "web", "--subnet", "10.245.0.0/24", "--ip-range", "10.245.0.128/25")
	d.MustRun("connect", "web", "--netns", nsA.Path, "--name", "a")
	if es := endpoints(t, d, "web"); len(es) != 1 || es[0].Address.String() != "10.245.0.128/24" {
		t.Fatalf("first address from --ip-range: %+v", es)
	}
	d.MustRun("disconnect", "web", "a")
	if out, err := nsA.Run("ip", "link", "show", "eth0"); err == nil {
		t.Fatalf("eth0 still in the namespace after disconnect:\n%s", out)
	}
	d.MustRun("connect", "web", "--netns", nsB.Path, "--name", "b")
	if es := endpoints(t, d, "web"); len(es) != 1 || es[0].Address.String() != "10.245.0.128/24" {
		t.Fatalf("freed address not reused: %+v", es)
	}
	// --ifname and a second interface.
	nsA.MustRun("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "vpeer")
	d.MustRun("connect", "web", "--netns", nsA.Path, "--name", "a2")
	es := endpoints(t, d, "web")
	for _, e := range es {
		if e.Name == "a2" && e.IfName != "eth1" {
			t.Errorf("with eth0 taken, the TAP is %s, want eth1", e.IfName)
		}
	}
	if r := d.Run("connect", "web", "--netns", nsB.Path, "--name", "b2", "--ifname", "eth0"); r.Code == 0 {
		t.Errorf("connect with a taken --ifname succeeded")
	}
}

// A namespace deleted while the daemon is down is reported and its
// endpoint removed at restart; one deleted while it runs is removed by
// the watcher.
func TestEndpointsOfGoneNamespacesAreRemoved(t *testing.T) {
	nsA, nsB, nsC := netnstest.New(t), netnstest.New(t), netnstest.New(t)
	d := clitest.NewDaemon(t)
	d.Start()
	d.MustRun("network", "create", "web", "--subnet", "10.246.0.0/24")
	d.MustRun("connect", "web", "--netns", nsA.Path, "--name", "a")
	d.MustRun("connect", "web", "--netns", nsB.Path, "--name", "b")
	d.MustRun("connect", "web", "--netns", nsC.Path, "--name", "c")
	d.Kill9()
	if out, err := netnstest.Delete(nsA); err != nil {
		t.Fatal(err, out)
	}
	d.Start()
	es := endpoints(t, d, "web")
	if len(es) != 2 {
		t.Fatalf("after restart: %d endpoints, want 2 (a's namespace is gone)", len(es))
	}
	if !strings.Contains(d.Log(), "endpoint removed") || !strings.Contains(d.Log(), "web/a") {
		t.Errorf("the removal of web/a was not reported in the log")
	}
	if err := nsB.Ping("10.246.0.4", 1); err != nil {
		t.Fatalf("surviving endpoints do not forward: %v", err)
	}
	if out, err := netnstest.Delete(nsC); err != nil {
		t.Fatal(err, out)
	}
	waitEndpoints(t, d, "web", 1, "the endpoint of a deleted namespace")
}

// connect --pid attaches the namespace of a process; when the process
// exits, the endpoint goes away.
func TestConnectByPID(t *testing.T) {
	ns := netnstest.New(t)
	d := clitest.NewDaemon(t)
	d.Start()
	d.MustRun("network", "create", "web", "--subnet", "10.247.0.0/24")
	cmd := exec.Command("nsenter", "--net="+ns.Path, "sleep", "120")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	pid := fmt.Sprint(cmd.Process.Pid)
	d.MustRun("connect", "web", "--pid", pid)
	es := endpoints(t, d, "web")
	if len(es) != 1 || es[0].Name != "pid"+pid || es[0].PID != cmd.Process.Pid {
		t.Fatalf("endpoints %+v, want one named pid%s", es, pid)
	}
	if err := ns.Ping("10.247.0.1", 1); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Kill()
	<-exited
	waitEndpoints(t, d, "web", 0, "the endpoint of an exited process")
}

// The default network is Docker's 172.17.0.0/16, unless the host uses it;
// then the next free /16, with a log line saying so.
func TestDefaultBridgeAvoidsHostSubnets(t *testing.T) {
	host := netnstest.New(t)
	host.MustRun("ip", "link", "add", "h0", "type", "veth", "peer", "name", "h1")
	host.MustRun("ip", "addr", "add", "172.17.0.1/16", "dev", "h0")
	host.MustRun("ip", "link", "set", "h0", "up")
	d := clitest.NewDaemon(t)
	d.Wrap = []string{"nsenter", "--net=" + host.Path}
	d.Start()
	var bridge *api.Network
	for _, n := range networks(t, d) {
		if n.Name == "bridge" {
			bridge = &n
		}
	}
	if bridge == nil || bridge.Subnet.String() != "172.18.0.0/16" || bridge.Gateway.String() != "172.18.0.1" || !bridge.Default {
		t.Fatalf("default network %+v, want bridge on 172.18.0.0/16 (172.17.0.0/16 is in use on the host)", bridge)
	}
	if !strings.Contains(d.Log(), "172.17.0.0/16") {
		t.Errorf("the log does not say why 172.17.0.0/16 was skipped:\n%s", d.Log())
	}

	plain := clitest.NewDaemon(t)
	plain.Wrap = []string{"nsenter", "--net=" + netnstest.New(t).Path}
	plain.Start()
	for _, n := range networks(t, plain) {
		if n.Name == "bridge" && n.Subnet.String() != "172.17.0.0/16" {
			t.Errorf("default network on a host without 172.17/16 is %s", n.Subnet)
		}
	}
}

// connect --wait: a runtime may ask before it has made the namespace;
// connect waits for it, and says which path never appeared. connect runs
// on a terminal, where it says that it waits; the namespace is made once
// it has said so.
func TestConnectWaitsForNamespace(t *testing.T) {
	d := clitest.NewDaemon(t)
	d.Start()
	name := fmt.Sprintf("%slate-%d", netnstest.Prefix, os.Getpid())
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	master, slave, err := openPTY()
	if err != nil {
		t.Skipf("skipping: no pseudo-terminal for connect to report on: %v", err)
	}
	defer master.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout strings.Builder
	cmd := exec.CommandContext(ctx, d.Bin, "--socket", d.Socket, "connect", "bridge", "--netns", "/var/run/netns/"+name, "--wait", "30s", "--name", "late")
	cmd.Stdout, cmd.Stderr = &stdout, slave
	err = cmd.Start()
	slave.Close() // connect has its own copy
	if err != nil {
		t.Fatal(err)
	}
	if err := waitOutput(master, "waiting for /var/run/netns/"+name, 10*time.Second); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("connect --wait: %v", err)
	}
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		if msg := string(out); strings.Contains(msg, "Operation not permitted") || strings.Contains(msg, "Permission denied") {
			t.Skipf("skipping: the kernel refused to create a named network namespace (needs root): %s", msg)
		}
		t.Fatalf("ip netns add %s: %v %s", name, err, out)
	}
	if err := cmd.Wait(); err != nil || !strings.Contains(stdout.String(), "connected bridge/late") {
		t.Fatalf("connect --wait: %v: %s", err, stdout.String())
	}
	d.MustRun("disconnect", "bridge", "late")
	r := d.Run("connect", "bridge", "--netns", "/var/run/netns/"+name+"-never", "--wait", "300ms")
	if r.Code == 0 || !strings.Contains(r.Stderr, name+"-never did not appear") {
		t.Errorf("connect --wait for a namespace that never comes: %s", r)
	}
}

// openPTY opens a pseudo-terminal: the master end (non-blocking, for
// deadlines) and the terminal a child process writes to.
func openPTY() (master, slave *os.File, err error) {
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		unix.Close(fd)
		return nil, nil, fmt.Errorf("unlock pty: %w", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		unix.Close(fd)
		return nil, nil, fmt.Errorf("pty number: %w", err)
	}
	master = os.NewFile(uintptr(fd), "/dev/ptmx")
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		return nil, nil, err
	}
	return master, slave, nil
}

// waitOutput reads r until what it has read contains want, for at most
// within.
func waitOutput(r *os.File, want string, within time.Duration) error {
	r.SetReadDeadline(time.Now().Add(within))
	var got []byte
	buf := make([]byte, 512)
	for !strings.Contains(string(got), want) {
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			return fmt.Errorf("%w before %q; read %q", err, want, got)
		}
	}
	return nil
}
