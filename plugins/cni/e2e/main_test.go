// Package e2e_test drives the switchyard CNI plugin with real CNI clients
// (cnitool, podman) against a real daemon running in a namespace of the
// test's own. Traffic goes only between namespaces the tests create.
package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/testing/clitest"
	"github.com/switchyard-net/switchyard/testing/netnstest"
	"github.com/switchyard-net/switchyard/testing/runtimetest"
)

func TestMain(m *testing.M) {
	netnstest.RootOnly("the daemon under test runs in the tests' namespaces (nsenter --net) and makes TAPs in others")
	os.Exit(clitest.Main(noLeftovers{m}))
}

// noLeftovers fails the run if a runtime fixture's process (podman's
// conmon, containerd, a shim) outlived its test.
type noLeftovers struct{ m *testing.M }

func (r noLeftovers) Run() int {
	code := r.m.Run()
	if left := runtimetest.Leftovers(); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: processes of this binary's fixtures outlived their tests:\n  %s\n", strings.Join(left, "\n  "))
		code = 1
	}
	return code
}

// The daemon's namespace ("host") has hostAddr on a veth to a client
// namespace ("inet") with inetAddr: clients of published ports come from
// there with a real address.
const (
	hostAddr = "10.213.210.1"
	inetAddr = "10.213.210.2"
)

type world struct {
	host, inet *netnstest.NS
	d          *clitest.Daemon
	// plugins holds the switchyard binary as the CNI plugin
	// `switchyard`; netconf holds the conflists.
	plugins, netconf string
}

// newWorld starts the daemon after calling each of before on it.
func newWorld(t testing.TB, before ...func(*clitest.Daemon)) *world {
	t.Helper()
	w := &world{host: netnstest.New(t), inet: netnstest.New(t)}
	w.host.MustRun("ip", "link", "add", "veth0", "type", "veth", "peer", "name", "veth1", "netns", w.inet.Name)
	w.host.MustRun("ip", "addr", "add", hostAddr+"/24", "dev", "veth0")
	w.host.MustRun("ip", "link", "set", "veth0", "up")
	w.inet.MustRun("ip", "addr", "add", inetAddr+"/24", "dev", "veth1")
	w.inet.MustRun("ip", "link", "set", "veth1", "up")
	w.d = clitest.NewDaemon(t)
	w.d.Wrap = []string{"nsenter", "--net=" + w.host.Path}
	for _, f := range before {
		f(w.d)
	}
	w.d.Start()
	dir := t.TempDir()
	w.plugins, w.netconf = filepath.Join(dir, "bin"), filepath.Join(dir, "net.d")
	for _, d := range []string{w.plugins, w.netconf} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(w.d.Bin, filepath.Join(w.plugins, "switchyard")); err != nil {
		t.Fatal(err)
	}
	return w
}

// conflist writes NAME.conflist for the switchyard plugin with extra
// plugin keys (JSON members, comma-terminated, or "").
func (w *world) conflist(t testing.TB, name, cniVersion, extra string) string {
	t.Helper()
	raw := fmt.Sprintf(`{"cniVersion": %q, "name": %q, "plugins": [{"type": "switchyard", %s "socket": %q,
		"capabilities": {"portMappings": true, "ips": true, "mac": true}}]}`, cniVersion, name, extra, w.d.Socket)
	path := filepath.Join(w.netconf, name+".conflist")
	if err := os.WriteFile(path, []byte(raw), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func (w *world) endpoints(t testing.TB) []api.Endpoint {
	t.Helper()
	var eps []api.Endpoint
	if err := json.Unmarshal([]byte(w.d.MustRun("endpoint", "ls", "--format", "json")), &eps); err != nil {
		t.Fatal(err)
	}
	return eps
}

func (w *world) ports(t testing.TB) []api.PortBinding {
	t.Helper()
	var ps []api.PortBinding
	if err := json.Unmarshal([]byte(w.d.MustRun("port", "ls", "--format", "json")), &ps); err != nil {
		t.Fatal(err)
	}
	return ps
}

// nothingAttached fails unless the daemon has no endpoint and no port and
// ns has no link but lo.
func (w *world) nothingAttached(t testing.TB, nss ...*netnstest.NS) {
	t.Helper()
	if eps := w.endpoints(t); len(eps) != 0 {
		t.Errorf("endpoint ls: %+v, want none", eps)
	}
	if ps := w.ports(t); len(ps) != 0 {
		t.Errorf("port ls: %+v, want none", ps)
	}
	for _, ns := range nss {
		out := ns.MustRun("ip", "-o", "link", "show")
		if strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.Contains(out, "lo:") {
			t.Errorf("ip link in %s:\n%s\nwant lo alone", ns.Name, out)
		}
	}
}

// whoServer answers each TCP connection in ns with the address it came
// from.
func whoServer(t *testing.T, ns *netnstest.NS, addr string) {
	t.Helper()
	ns.ServeEach(t, addr, func(c net.Conn) string { return c.RemoteAddr().String() })
}

func askWho(t *testing.T, from *netnstest.NS, addr string) string {
	t.Helper()
	return from.Ask(t, addr)
}

// run runs a command with extra environment and returns its combined
// output.
func run(t *testing.T, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
