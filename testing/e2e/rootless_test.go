package e2e_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/testing/clitest"
	"github.com/switchyard-net/switchyard/testing/netnstest"
)

// One endpoint on two networks: eth0 and eth1, the first network's
// default route kept; the networks stay apart; disconnecting from one
// leaves the other untouched.
func TestTwoNetworksOneEndpoint(t *testing.T) {
	x, y, z := netnstest.New(t), netnstest.New(t), netnstest.New(t)
	d := clitest.NewDaemon(t)
	// The daemon's host is a namespace of the test's: y's ping to the
	// other network leaves as egress, and must not reach this machine's
	// real network (where something may well answer it).
	d.Wrap = []string{"nsenter", "--net=" + netnstest.New(t).Path}
	d.Start()
	d.MustRun("network", "create", "front", "--subnet", "10.250.1.0/24")
	d.MustRun("network", "create", "back", "--subnet", "10.250.2.0/24")
	d.MustRun("connect", "front", "--netns", x.Path, "--name", "x")
	d.MustRun("connect", "back", "--netns", x.Path, "--name", "x")
	d.MustRun("connect", "front", "--netns", y.Path, "--name", "y")
	d.MustRun("connect", "back", "--netns", z.Path, "--name", "z")

	if out := x.MustRun("ip", "-brief", "addr", "show", "eth1"); !strings.Contains(out, "10.250.2.2/24") {
		t.Errorf("x's second interface: %q, want eth1 with 10.250.2.2/24", out)
	}
	if r := x.MustRun("ip", "route", "show", "default"); !strings.Contains(r, "via 10.250.1.1 dev eth0") || strings.Count(r, "default") != 1 {
		t.Errorf("x's default route %q, want the first network's gateway only", r)
	}
	if err := x.Ping("10.250.1.3", 1); err != nil {
		t.Errorf("x → y on front: %v", err)
	}
	if err := x.Ping("10.250.2.3", 1); err != nil {
		t.Errorf("x → z on back: %v", err)
	}
	if err := y.Ping("10.250.2.3", 1); err == nil {
		t.Error("y (front only) reached z (back only): the networks are not isolated")
	}
	d.MustRun("disconnect", "back", "x")
	if _, err := x.Run("ip", "link", "show", "eth1"); err == nil {
		t.Error("eth1 still in x after disconnecting from back")
	}
	if err := x.Ping("10.250.1.3", 1); err != nil {
		t.Errorf("x → y after leaving back: %v", err)
	}
}

// The daemon runs as an ordinary user and connects a namespace that user
// made (as `unshare -Urn`, podman or rootlesskit make them); a port below
// net.ipv4.ip_unprivileged_port_start is refused with that name.
func TestRootlessDaemon(t *testing.T) {
	requireRootlessTun(t)
	bin := clitest.PublicBinary(t)
	dir, err := os.MkdirTemp("", "switchyard-rootless-daemon-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chown(dir, clitest.Nobody, clitest.Nobody); err != nil {
		t.Fatal(err)
	}
	d := clitest.NewDaemon(t)
	d.Bin = bin
	d.Socket = filepath.Join(dir, "run", "switchyard.sock")
	d.StateDir = filepath.Join(dir, "state")
	d.Wrap = clitest.NobodyPrefix(t)
	d.Start()

	// nobody's "container": a process in a user and network namespace of
	// nobody's own.
	sleeper := clitest.AsNobody(t, "unshare", "-Urn", "sleep", "120")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() })
	pid := waitForChild(t, sleeper.Process.Pid, "sleep")

	// A host interface is a TAP in the daemon's own namespace: refused,
	// saying why, and nothing is made.
	r := d.Run("network", "create", "direct", "--subnet", "10.251.1.0/24", "--host-interface", "sy-rootless")
	if r.Code == 0 || !strings.Contains(r.Stderr, "--host-interface") || !strings.Contains(r.Stderr, "rootless") {
		t.Errorf("a host interface from a rootless daemon: want a refusal naming --host-interface and saying rootless; got %s", r)
	}
	if out, err := exec.Command("ip", "link", "show", "sy-rootless").CombinedOutput(); err == nil {
		t.Errorf("a refused host interface exists: %s", out)
	}
	if out := d.MustRun("network", "ls"); strings.Contains(out, "direct") {
		t.Errorf("a refused network is listed:\n%s", out)
	}

	d.MustRun("network", "create", "web", "--subnet", "10.251.0.0/24")
	out := d.MustRun("connect", "web", "--pid", fmt.Sprint(pid), "--name", "c")
	if !strings.Contains(out, "10.251.0.2/24") {
		t.Fatalf("connect: %s", out)
	}
	ping := clitest.AsNobody(t, "nsenter", "-t", fmt.Sprint(pid), "-U", "-n", "--preserve-credentials",
		"ping", "-c", "2", "-i", "0.2", "-W", "2", "10.251.0.1")
	if b, err := ping.CombinedOutput(); err != nil {
		t.Fatalf("ping the gateway from nobody's namespace: %v\n%s", err, b)
	}
	r = d.Run("port", "add", "web/c", "80:80")
	if r.Code == 0 || !strings.Contains(r.Stderr, "net.ipv4.ip_unprivileged_port_start") {
		t.Errorf("a privileged port as nobody: want an error naming net.ipv4.ip_unprivileged_port_start; got %s", r)
	}
	d.MustRun("port", "add", "web/c", "18280:80")

	// Another command of nobody's joins c's network (container mode):
	// it sees c's interface and reaches the gateway.
	join := clitest.AsNobody(t, bin, "--socket", d.Socket, "run", "--network", "container:web/c", "--",
		"sh", "-c", "ip -4 -brief addr show eth0 && ping -c 1 -W 2 10.251.0.1 >/dev/null && exit 3")
	join.Dir = "/"
	if b, err := join.CombinedOutput(); join.ProcessState == nil || join.ProcessState.ExitCode() != 3 || !strings.Contains(string(b), "10.251.0.2/24") {
		t.Errorf("run --network container:web/c as nobody: %v, want exit 3 and c's address:\n%s", err, b)
	}
	d.MustRun("disconnect", "web", "c")
}

// waitForChild returns the pid of parent's child running comm (unshare
// forks sleep into the new namespaces... or execs it; either way, the
// process that runs comm).
func waitForChild(t *testing.T, parent int, comm string) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", parent)); strings.TrimSpace(string(b)) == comm {
			return parent
		}
		out, _ := exec.Command("pgrep", "-P", fmt.Sprint(parent), comm).Output()
		var pid int
		if _, err := fmt.Sscan(string(out), &pid); err == nil {
			return pid
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no %s under pid %d", comm, parent)
	return 0
}
