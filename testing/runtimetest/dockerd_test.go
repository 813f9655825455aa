package runtimetest_test

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/switchyard-net/switchyard/testing/netnstest"
	"github.com/switchyard-net/switchyard/testing/runtimetest"
)

func TestDockerdRunsImportedBusybox(t *testing.T) {
	_, statErr := os.Stat("/run/docker")
	hadRunDocker := statErr == nil
	d := runtimetest.Dockerd(t, runtimetest.Opts{})
	img := d.BusyboxImage()
	out := d.Docker("run", "--rm", "--network", "none", img, "/bin/sh", "-c", "echo hello-$((6*7)); ip -o link show | wc -l")
	if got := strings.Fields(out); strings.Join(got, " ") != "hello-42 1" {
		t.Fatalf("container printed %q; want hello-42 and one interface (lo)", out)
	}
	if out := d.Docker("info", "--format", "{{.DockerRootDir}} {{.Driver}} {{.CgroupDriver}}"); strings.TrimSpace(out) != d.DataRoot+" vfs cgroupfs" {
		t.Errorf("docker info: %q; want %s vfs cgroupfs", out, d.DataRoot)
	}
	// A running container's namespace is reachable from the test.
	d.Docker("run", "--detach", "--name", "sleeper", "--network", "none", img, "sleep", "600")
	ns := d.ContainerNetNS("sleeper")
	if out, err := exec.Command("nsenter", "--net="+ns, "ip", "-o", "link", "show").CombinedOutput(); err != nil || !strings.Contains(string(out), "lo:") {
		t.Errorf("ip link in %s: %v: %s", ns, err, out)
	}
	// dockerd made its /run/docker (libnetwork's key socket, at least)
	// in a /run of its own, not the machine's.
	if _, err := os.Stat("/run/docker"); err == nil && !hadRunDocker {
		t.Error("dockerd made /run/docker in the machine's /run")
	}
}

// probePlugin serves the start of libnetwork's remote driver protocol
// on a unix socket, accepting everything, and records the calls.
type probePlugin struct {
	mu    sync.Mutex
	calls []string
}

func (p *probePlugin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.calls = append(p.calls, r.URL.Path)
	p.mu.Unlock()
	w.Header().Set("Content-Type", "application/vnd.docker.plugins.v1.2+json")
	switch r.URL.Path {
	case "/Plugin.Activate":
		w.Write([]byte(`{"Implements": ["NetworkDriver"]}`))
	case "/NetworkDriver.GetCapabilities":
		w.Write([]byte(`{"Scope": "local"}`))
	default:
		w.Write([]byte(`{}`))
	}
}

func (p *probePlugin) seen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.calls...)
}

func (p *probePlugin) called(path string) bool {
	for _, c := range p.seen() {
		if c == path {
			return true
		}
	}
	return false
}

func serveProbe(t *testing.T, sock string) *probePlugin {
	t.Helper()
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	p := &probePlugin{}
	srv := &http.Server{Handler: p}
	done := make(chan struct{})
	go func() { srv.Serve(l); close(done) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return p
}

func TestDockerdFindsPlugins(t *testing.T) {
	// A plugin elsewhere, found through a spec file.
	specSock := filepath.Join(t.TempDir(), "p.sock")
	spec := serveProbe(t, specSock)
	d := runtimetest.Dockerd(t, runtimetest.Opts{DockerPlugins: map[string]string{"rtspec": specSock}})
	// A plugin whose socket is in /run/docker/plugins as dockerd sees it.
	sock := serveProbe(t, filepath.Join(d.PluginDir, "rtsock.sock"))

	for _, c := range []struct {
		driver string
		p      *probePlugin
	}{{"rtsock", sock}, {"rtspec", spec}} {
		net := "net-" + c.driver
		d.Docker("network", "create", "--driver", c.driver, "--subnet", "10.213.59.0/24", net)
		if !c.p.called("/Plugin.Activate") || !c.p.called("/NetworkDriver.CreateNetwork") {
			t.Errorf("driver %s: plugin saw %v; want Plugin.Activate and NetworkDriver.CreateNetwork", c.driver, c.p.seen())
		}
		d.Docker("network", "rm", net)
		if !c.p.called("/NetworkDriver.DeleteNetwork") {
			t.Errorf("driver %s: plugin saw %v; want NetworkDriver.DeleteNetwork", c.driver, c.p.seen())
		}
	}
}

func TestDockerdBridgeInItsNamespace(t *testing.T) {
	// dockerd's own bridge driver makes its bridge (with the gateway
	// address and its route) where dockerd runs: a namespace of the test's.
	hostNS := netnstest.New(t)
	d := runtimetest.Dockerd(t, runtimetest.Opts{NetNS: hostNS.Path})
	img := d.BusyboxImage()
	br := bridgeName(t)
	d.Docker("network", "create", "--driver", "bridge", "--subnet", "10.213.61.0/24",
		"--opt", "com.docker.network.bridge.name="+br, "rtbr")
	out := d.Docker("run", "--rm", "--network", "rtbr", img, "/bin/sh", "-c", "ip -4 -o addr show dev eth0")
	if !strings.Contains(out, "inet 10.213.61.") {
		t.Fatalf("container's eth0: %q; want an address in 10.213.61.0/24", out)
	}
	if _, err := hostNS.Run("ip", "link", "show", "dev", br); err != nil {
		t.Errorf("bridge %s not in dockerd's namespace: %v", br, err)
	}
	if err := exec.Command("ip", "link", "show", "dev", br).Run(); err == nil {
		t.Errorf("bridge %s appeared in the host's namespace", br)
	}
	d.Docker("network", "rm", "rtbr")
}
