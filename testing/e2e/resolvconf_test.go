package e2e_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/testing/clitest"
	"github.com/switchyard-net/switchyard/testing/netnstest"
)

// container starts a process in its own mount and network namespaces,
// chrooted into a tmpfs root that setup (a shell snippet, run with $R as
// the root) fills; it returns the process's PID.
func container(t *testing.T, setup string) int {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the test builds a container root with mount(2) and chroot(2)")
	}
	root := t.TempDir()
	script := `set -e; R=` + root + `
mount -t tmpfs tmpfs "$R"
mkdir -p "$R/etc" "$R/usr" "$R/proc"
mount --bind /usr "$R/usr"
for d in bin sbin lib lib64; do [ -e "/$d" ] && ln -s "usr/$d" "$R/$d"; done
` + setup + `
exec chroot "$R" /usr/bin/sleep 120`
	cmd := exec.Command("unshare", "--mount", "--net", "sh", "-c", script)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	// Wait until the process has chrooted: its root is no longer ours.
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("container setup failed: %s", stderr.String())
		default:
		}
		if target, err := os.Readlink("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/root"); err == nil && target != "/" {
			return cmd.Process.Pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("the container did not chroot in 10 s: %s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A container whose /etc/resolv.conf is a symlink to a host file cannot
// make the (root) daemon overwrite that file: connect refuses with an
// error naming the symlink, and nothing is attached.
func TestWriteResolvConfRefusesContainerSymlinks(t *testing.T) {
	victim := filepath.Join(t.TempDir(), "host-file")
	if err := os.WriteFile(victim, []byte("host secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pid := container(t, `ln -s `+victim+` "$R/etc/resolv.conf"`)
	d := clitest.NewDaemon(t)
	d.Start()
	d.MustRun("network", "create", "web", "--subnet", "10.246.0.0/24")

	r := d.Run("connect", "web", "--pid", strconv.Itoa(pid), "--write-resolv-conf")
	if r.Code == 0 {
		t.Fatalf("connect through a symlinked resolv.conf succeeded:\n%s", r)
	}
	if !strings.Contains(r.Stderr, "symlink") {
		t.Errorf("the error does not say why:\n%s", r)
	}
	if b, _ := os.ReadFile(victim); string(b) != "host secret\n" {
		t.Fatalf("the host file was overwritten through the container's symlink: %q", b)
	}
	if es := endpoints(t, d, "web"); len(es) != 0 {
		t.Errorf("a refused connect left endpoints: %+v", es)
	}
}

// connect --write-resolv-conf writes the container's own file inside its
// root, and disconnect puts back what it held.
func TestWriteResolvConfRestoresOnDisconnect(t *testing.T) {
	pid := container(t, `echo "nameserver 192.0.2.53" > "$R/etc/resolv.conf"`)
	d := clitest.NewDaemon(t)
	d.Start()
	d.MustRun("network", "create", "web", "--subnet", "10.246.1.0/24")
	d.MustRun("connect", "web", "--pid", strconv.Itoa(pid), "--name", "c", "--write-resolv-conf")

	file := "/proc/" + strconv.Itoa(pid) + "/root/etc/resolv.conf"
	b, err := os.ReadFile(file)
	if err != nil || !strings.Contains(string(b), "nameserver 10.246.1.1") {
		t.Fatalf("the container's resolv.conf after connect: %q, %v", b, err)
	}
	d.MustRun("disconnect", "web", "c")
	if b, err := os.ReadFile(file); err != nil || string(b) != "nameserver 192.0.2.53\n" {
		t.Fatalf("the container's resolv.conf after disconnect: %q, %v; want the original back", b, err)
	}
}

// connect refuses the daemon's own network namespace, whatever path
// names it (a TAP there would be a host interface), and files that are not
// network namespaces, with an error naming the path; nothing is attached.
func TestConnectRefusesHostAndNonNamespaces(t *testing.T) {
	d := clitest.NewDaemon(t)
	// The daemon's "host" is a namespace of the test's: were the check
	// missing, the TAP would land there, not on this machine.
	d.Wrap = []string{"nsenter", "--net=" + netnstest.New(t).Path}
	d.Start()
	d.MustRun("network", "create", "web", "--subnet", "10.246.2.0/24")
	self := "/proc/" + strconv.Itoa(d.PID()) + "/ns/net"
	for _, tc := range []struct{ path, want string }{
		{self, "daemon's own network namespace"},
		{"/proc/" + strconv.Itoa(d.PID()) + "/ns/mnt", "not a network namespace"},
		{"/proc/version", "not a network namespace"},
	} {
		r := d.Run("connect", "web", "--netns", tc.path, "--name", "x")
		if r.Code == 0 || !strings.Contains(r.Stderr, tc.path) || !strings.Contains(r.Stderr, tc.want) {
			t.Errorf("connect --netns %s: want an error naming it and saying %q:\n%s", tc.path, tc.want, r)
		}
	}
	if es := endpoints(t, d, "web"); len(es) != 0 {
		t.Errorf("refused connects left endpoints: %+v", es)
	}
}

// After kill -9, whatever stands under an endpoint's interface name and
// is not a TAP the daemon made (here a veth) is neither adopted nor
// deleted by the restarted daemon: it reports it and drops the endpoint.
func TestRestoreLeavesForeignInterfacesAlone(t *testing.T) {
	c, far := netnstest.New(t), netnstest.New(t)
	d := clitest.NewDaemon(t)
	d.Wrap = []string{"nsenter", "--net=" + netnstest.New(t).Path}
	d.Start()
	d.MustRun("network", "create", "web", "--subnet", "10.246.5.0/24")
	d.MustRun("connect", "web", "--netns", c.Path, "--name", "c")
	d.Kill9()
	c.MustRun("ip", "link", "del", "eth0")
	c.MustRun("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "peer0", "netns", far.Name)
	d.Start()
	waitEndpoints(t, d, "web", 0, "the endpoint whose TAP was replaced")
	if _, err := c.Run("ip", "link", "show", "eth0"); err != nil {
		t.Errorf("the restarted daemon deleted the veth that replaced its TAP: %v", err)
	}
	if _, err := far.Run("ip", "link", "show", "peer0"); err != nil {
		t.Errorf("the veth's peer is gone: %v", err)
	}
	if !strings.Contains(d.Log(), "did not make it") {
		t.Errorf("the daemon did not say why it left the interface:\n%s", d.Log())
	}
}

// A daemon whose state file was lost while it was down (emptied after
// kill -9) removes, when it starts again, the TAP it had made in a named
// namespace, which no endpoint names any more, and says so; the
// namespace's other interfaces stay.
func TestLostStateOrphansAreRemoved(t *testing.T) {
	c := netnstest.New(t)
	c.MustRun("ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1")
	d := clitest.NewDaemon(t)
	d.Wrap = []string{"nsenter", "--net=" + netnstest.New(t).Path}
	d.Start()
	d.MustRun("network", "create", "web", "--subnet", "10.246.6.0/24")
	d.MustRun("connect", "web", "--netns", c.Path, "--name", "c")
	d.Kill9()
	if err := os.Truncate(filepath.Join(d.StateDir, "state.db"), 0); err != nil {
		t.Fatal(err)
	}
	d.Start()
	if _, err := c.Run("ip", "link", "show", "eth0"); err == nil {
		t.Error("the orphaned TAP eth0 is still in the namespace")
	}
	if _, err := c.Run("ip", "link", "show", "v0"); err != nil {
		t.Errorf("the namespace's own interface is gone: %v", err)
	}
	if !strings.Contains(d.Log(), "no longer in its state") || !strings.Contains(d.Log(), "moved to") {
		t.Errorf("the daemon did not say what it did:\n%s", d.Log())
	}
}
