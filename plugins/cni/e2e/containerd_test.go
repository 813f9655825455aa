package e2e_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard-net/switchyard/testing/runtimetest"
)

// containerd 1.6's ctr run --cni with the switchyard conflist in its CNI
// config dir: the container gets an address and reaches its gateway,
// and --rm's teardown leaves nothing attached.
func TestContainerdCtrRun(t *testing.T) {
	w := newWorld(t)
	c := runtimetest.Containerd(t, runtimetest.Opts{CNIPluginDirs: []string{w.plugins}, NetNS: w.host.Path})
	raw, err := os.ReadFile(w.conflist(t, "synet", "1.0.0", `"subnet": "10.99.2.0/24",`))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.CNIConfDir, "10-synet.conflist"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	rootfs := runtimetest.Rootfs(t)
	out := c.Ctr("run", "--rm", "--cni", "--rootfs", rootfs, "sy-ctr", "/bin/sh", "-c",
		"ip -4 -o addr show dev eth0; ip route show default; ping -c 1 -W 5 10.99.2.1 >/dev/null && echo gateway-ok")
	for _, want := range []string{"inet 10.99.2.2/24", "default via 10.99.2.1", "gateway-ok"} {
		if !strings.Contains(out, want) {
			t.Errorf("the container printed:\n%s\nwant %q", out, want)
		}
	}
	w.nothingAttached(t)
}
