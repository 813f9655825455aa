package runtimetest_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard-net/switchyard/testing/netnstest"
	"github.com/switchyard-net/switchyard/testing/runtimetest"
)

func TestContainerdRunsRootfs(t *testing.T) {
	c := runtimetest.Containerd(t, runtimetest.Opts{})
	rootfs := runtimetest.Rootfs(t)
	out := c.Ctr("run", "--rm", "--rootfs", rootfs, "rt-echo", "/bin/sh", "-c", "echo hello-$((6*7)); ip -o link show | wc -l")
	if got := strings.Fields(out); strings.Join(got, " ") != "hello-42 1" {
		t.Fatalf("container printed %q; want hello-42 and one interface (lo)", out)
	}
	if out := c.Ctr("containers", "list", "--quiet"); strings.TrimSpace(out) != "" {
		t.Errorf("containers left after run --rm: %q", out)
	}
	// A container left running is the cleanup's to remove.
	c.Ctr("run", "--detach", "--rootfs", rootfs, "rt-sleeper", "/bin/sleep", "600")
}

func TestContainerdCtrRunWithCNI(t *testing.T) {
	// ctr runs the reference bridge plugin in a namespace of the test's.
	hostNS := netnstest.New(t)
	c := runtimetest.Containerd(t, runtimetest.Opts{NetNS: hostNS.Path})
	rootfs := runtimetest.Rootfs(t)
	br := bridgeName(t)
	bridgeConflist(t, c.CNIConfDir, "rtctr", br, "10.213.60.0/24", filepath.Join(c.Dir, "ipam"))

	out := c.Ctr("run", "--rm", "--cni", "--rootfs", rootfs, "rt-cni", "/bin/sh", "-c", "ip -4 -o addr show dev eth0")
	if !strings.Contains(out, "inet 10.213.60.") {
		t.Fatalf("container's eth0: %q; want an address in 10.213.60.0/24", out)
	}
	if _, err := hostNS.Run("ip", "link", "show", "dev", br); err != nil {
		t.Errorf("bridge %s not in ctr's namespace: %v", br, err)
	}
	if err := exec.Command("ip", "link", "show", "dev", br).Run(); err == nil {
		t.Errorf("bridge %s appeared in the host's namespace", br)
	}
	if leases, _ := filepath.Glob(filepath.Join(c.Dir, "ipam", "rtctr", "10.*")); len(leases) != 0 {
		t.Errorf("addresses still leased after run --rm: %v", leases)
	}
}
