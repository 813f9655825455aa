package tap_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/tap"
	"github.com/switchyard-net/switchyard/testing/vnettest"
)

const nobody = 65534

// TestRootlessTAP runs, as the unprivileged user nobody, what a rootless
// runtime and the daemon do: a process in a new user and network
// namespace, a TAP created inside it through the helper, attached to a
// switch, and a ping across it.
func TestRootlessTAP(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root to switch to the user nobody")
	}
	var st unix.Stat_t
	if err := unix.Stat("/dev/net/tun", &st); err != nil {
		t.Skipf("skipping: no /dev/net/tun: %v", err)
	}
	if st.Mode&0o006 != 0o006 {
		t.Skipf("skipping: /dev/net/tun is mode %04o; an unprivileged user needs 0666 (as Debian, Ubuntu and Fedora ship it; .ci/run sets it)", st.Mode&0o777)
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skipf("skipping: setpriv not installed: %v", err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// nobody must be able to run the test binary (and so the helper):
	// copy it where it can.
	dir, err := os.MkdirTemp("", "switchyard-rootless-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	self = dir + "/tap.test"
	if err := os.WriteFile(self, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "setpriv", fmt.Sprintf("--reuid=%d", nobody), fmt.Sprintf("--regid=%d", nobody),
		"--clear-groups", "--inh-caps=-all", self, "-test.run=XXX")
	cmd.Env = append(os.Environ(), "SWITCHYARD_TEST_ROOTLESS_CHILD=1")
	out, err := cmd.CombinedOutput()
	text := string(out)
	if strings.Contains(text, "SKIP:") {
		t.Skip(strings.TrimSpace(text[strings.Index(text, "SKIP:")+5:]))
	}
	if err != nil {
		t.Fatalf("rootless child failed: %v\n%s", err, out)
	}
	t.Logf("rootless child:\n%s", out)
}

// rootlessChild runs as nobody.
func rootlessChild() int {
	fail := func(format string, args ...any) int {
		fmt.Printf("FAIL: "+format+"\n", args...)
		return 1
	}
	if os.Geteuid() == 0 {
		return fail("still root")
	}
	// The "container": a process in a user and network namespace of its
	// own, as `unshare -Urn` or a rootless runtime makes it.
	sleeper := exec.Command("sleep", "60")
	sleeper.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNET,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
	}
	if err := sleeper.Start(); err != nil {
		fmt.Printf("SKIP: the kernel refused an unprivileged user namespace: %v\n", err)
		return 0
	}
	defer func() { sleeper.Process.Kill(); sleeper.Wait() }()
	pid := sleeper.Process.Pid
	nsPath := fmt.Sprintf("/proc/%d/ns/net", pid)

	if _, err := tap.Open(tap.Config{NetNS: fmt.Sprintf("/proc/%d/ns/net", os.Getpid()), Name: "eth9"}); err == nil {
		return fail("opened a TAP in the host's namespace as nobody")
	}
	names, err := tap.Links(nsPath)
	if err != nil || len(names) != 1 || names[0] != "lo" {
		return fail("links of the new namespace: %v %v", names, err)
	}
	port, err := tap.Open(tap.Config{
		NetNS: nsPath, Name: "eth0", MTU: 1500, Offload: true, Configure: true,
		MAC:     vswitch.MAC{0x02, 0x42, 10, 88, 0, 2},
		Addrs:   []netip.Prefix{netip.MustParsePrefix("10.88.0.2/24"), netip.MustParsePrefix("fd00:88::2/64")},
		Gateway: netip.MustParseAddr("10.88.0.1"),
	})
	if err != nil {
		return fail("open a TAP through the helper: %v", err)
	}
	sw := vswitch.New(vswitch.Config{})
	defer sw.Close()
	if _, err := sw.Attach(port, vswitch.AttachOptions{}); err != nil {
		return fail("attach: %v", err)
	}
	gw, err := vnettest.NewHost(sw, vnettest.HostConfig{Name: "gw", Addr: netip.MustParsePrefix("10.88.0.1/24")})
	if err != nil {
		return fail("virtual host: %v", err)
	}
	defer gw.Close()
	in := []string{"-t", fmt.Sprint(pid), "-U", "-n", "--preserve-credentials"}
	out, err := exec.Command("nsenter", append(in, "ip", "-brief", "addr", "show", "eth0")...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "10.88.0.2/24") {
		return fail("eth0 in the namespace: %s %v", out, err)
	}
	// The helper turned SLAAC off beside the static IPv6 address.
	out, err = exec.Command("nsenter", append(in, "cat", "/proc/sys/net/ipv6/conf/eth0/autoconf")...).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "0" {
		return fail("net.ipv6.conf.eth0.autoconf in the namespace: %q %v, want 0", out, err)
	}
	out, err = exec.Command("nsenter", append(in, "ping", "-c", "2", "-i", "0.2", "-W", "2", "10.88.0.1")...).CombinedOutput()
	if err != nil {
		return fail("ping across the rootless TAP: %v\n%s", err, out)
	}
	if names, _ := tap.Links(nsPath); len(names) != 2 {
		return fail("links after open: %v", names)
	}
	if err := tap.Remove(nsPath, "eth0"); err != nil {
		return fail("remove through the helper: %v", err)
	}
	fmt.Printf("ok: TAP made, addressed, pinged and removed as uid %d in the namespace of pid %d\n", os.Getuid(), pid)
	return 0
}
