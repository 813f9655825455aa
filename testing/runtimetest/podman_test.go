package runtimetest_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard-net/switchyard/testing/netnstest"
	"github.com/switchyard-net/switchyard/testing/runtimetest"
)

func TestPodmanRunsRootfsWithoutNetwork(t *testing.T) {
	p := runtimetest.Podman(t, runtimetest.Opts{})
	rootfs := runtimetest.Rootfs(t)
	out := p.MustRun("run", "--rm", "--network", "none", "--rootfs", rootfs,
		"/bin/sh", "-c", "echo hello-$((6*7)); ulimit -n; ip -o link show | wc -l")
	if got, want := strings.Fields(out), []string{"hello-42", "1024", "1"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("container printed %q; want %v (echo, containers.conf's nofile ulimit, only lo)", out, want)
	}
	// Everything podman keeps is under the fixture's directory.
	if out := p.MustRun("info", "--format", "{{.Store.GraphRoot}} {{.Store.RunRoot}} {{.Host.NetworkBackend}}"); strings.TrimSpace(out) != p.Root+" "+p.RunRoot+" cni" {
		t.Errorf("podman info: %q; want %s %s cni", out, p.Root, p.RunRoot)
	}
	if out := p.MustRun("ps", "--all", "--quiet"); strings.TrimSpace(out) != "" {
		t.Errorf("container left after run --rm: %q", out)
	}
}

func TestPodmanBridgeNetwork(t *testing.T) {
	// podman runs in a namespace of the test's own, so the bridge the
	// reference plugin makes lands there, not in the host's namespace.
	hostNS := netnstest.New(t)
	p := runtimetest.Podman(t, runtimetest.Opts{NetNS: hostNS.Path})
	rootfs := runtimetest.Rootfs(t)
	br := bridgeName(t)
	bridgeConflist(t, p.NetworkConfigDir, "rtbridge", br, "10.213.57.0/24", filepath.Join(p.Dir, "ipam"))

	out := p.MustRun("run", "--rm", "--network", "rtbridge", "--rootfs", rootfs,
		"/bin/sh", "-c", "ip -4 -o addr show dev eth0")
	if !strings.Contains(out, "inet 10.213.57.") {
		t.Fatalf("container's eth0: %q; want an address in 10.213.57.0/24", out)
	}
	if _, err := hostNS.Run("ip", "link", "show", "dev", br); err != nil {
		t.Errorf("bridge %s not in the podman's namespace: %v", br, err)
	}
	if err := exec.Command("ip", "link", "show", "dev", br).Run(); err == nil {
		t.Errorf("bridge %s appeared in the host's namespace", br)
	}
	// run --rm released the address: host-local keeps one file per lease.
	leases, _ := filepath.Glob(filepath.Join(p.Dir, "ipam", "rtbridge", "10.*"))
	if len(leases) != 0 {
		t.Errorf("addresses still leased after the container was removed: %v", leases)
	}
	if out := p.MustRun("network", "ls", "--format", "{{.Name}}"); !strings.Contains(out, "rtbridge") {
		t.Errorf("podman network ls: %q; want rtbridge, read from %s", out, p.NetworkConfigDir)
	}
	if _, err := os.Stat(filepath.Join(p.NetworkConfigDir, "rtbridge.conflist")); err != nil {
		t.Error(err)
	}
}
