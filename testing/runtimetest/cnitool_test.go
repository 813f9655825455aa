package runtimetest_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard-net/switchyard/testing/netnstest"
	"github.com/switchyard-net/switchyard/testing/runtimetest"
)

func TestCnitoolWithReferencePlugins(t *testing.T) {
	tool := runtimetest.Cnitool(t)
	if _, err := os.Stat(filepath.Join(runtimetest.ReferenceCNIDir, "bridge")); err != nil {
		t.Skipf("skipping: the reference CNI plugins are not installed (Debian package containernetworking-plugins): %v", err)
	}
	// cnitool runs in hostNS (where the bridge plugin makes its bridge)
	// and attaches ctrNS; neither is the host's own namespace.
	hostNS, ctrNS := netnstest.New(t), netnstest.New(t)
	dir := t.TempDir()
	br := bridgeName(t)
	bridgeConflist(t, dir, "rtcni", br, "10.213.58.0/24", filepath.Join(dir, "ipam"))
	env := []string{"CNI_PATH=" + runtimetest.ReferenceCNIDir, "NETCONFPATH=" + dir}

	cnitool := func(args ...string) (string, error) {
		cmd := hostNS.Command(t.Context(), "env", append(append(env, tool), args...)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := cnitool("add", "rtcni", ctrNS.Path)
	if err != nil {
		t.Fatalf("cnitool add: %v: %s", err, out)
	}
	deleted := false
	t.Cleanup(func() {
		if !deleted {
			cnitool("del", "rtcni", ctrNS.Path)
		}
	})
	var res struct {
		IPs []struct{ Address string }
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.IPs) != 1 {
		t.Fatalf("cnitool add printed %q (%v); want a result with one address", out, err)
	}
	addrs, err := ctrNS.Addrs("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if len(addrs) == 0 || addrs[0].String() != res.IPs[0].Address || !strings.HasPrefix(res.IPs[0].Address, "10.213.58.") {
		t.Fatalf("eth0 in the container namespace has %v; the result says %s (want 10.213.58.0/24)", addrs, res.IPs[0].Address)
	}
	if out, err := cnitool("check", "rtcni", ctrNS.Path); err != nil {
		t.Fatalf("cnitool check: %v: %s", err, out)
	}
	if out, err := cnitool("del", "rtcni", ctrNS.Path); err != nil {
		t.Fatalf("cnitool del: %v: %s", err, out)
	}
	deleted = true
	if _, err := ctrNS.Run("ip", "link", "show", "dev", "eth0"); err == nil {
		t.Error("eth0 still in the container namespace after cnitool del")
	}
	if leases, _ := filepath.Glob(filepath.Join(dir, "ipam", "rtcni", "10.*")); len(leases) != 0 {
		t.Errorf("addresses still leased after cnitool del: %v", leases)
	}
}

func TestCnitoolIsBuiltOnce(t *testing.T) {
	a := runtimetest.Cnitool(t)
	b := runtimetest.Cnitool(t)
	if a != b {
		t.Fatalf("Cnitool returned %s, then %s", a, b)
	}
	out, err := runCombined(a, "--help")
	if err != nil || !strings.Contains(out, "add") || !strings.Contains(out, "gc") {
		t.Fatalf("%s --help: %v: %s; want cnitool's usage naming add and gc", a, err, out)
	}
}

func TestCnitoolRebuildsABrokenCachedBinary(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("skipping: no go command: %v", err)
	}
	// An empty cache, as on a fresh CI machine, holding a truncated
	// binary where cnitool belongs.
	// (The go command's build cache, also under XDG_CACHE_HOME, stays
	// where it is: this tests the cnitool cache, not a cold compile.)
	gocache, err := exec.Command(gobin, "env", "GOCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("GOCACHE", strings.TrimSpace(string(gocache)))
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	version, err := runtimetest.CniVersionInGoMod(gobin)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(cache, "switchyard-runtimetest", "cnitool-"+version)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cnitool"), []byte("\x7fELF"), 0o755); err != nil {
		t.Fatal(err)
	}
	bin, err := runtimetest.BuildCnitool(gobin)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(bin) != dir {
		t.Errorf("built %s; want it in %s", bin, dir)
	}
	if out, err := runCombined(bin, "--help"); err != nil || !strings.Contains(out, "gc") {
		t.Fatalf("%s --help: %v: %s; want cnitool's usage", bin, err, out)
	}
}
