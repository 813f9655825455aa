package docker

import (
	"context"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/switchyard-net/switchyard/daemon"
	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/testing/clitest"
	"github.com/switchyard-net/switchyard/testing/runtimetest"
)

// realDaemon is a Switchyard daemon in this process with real TAPs, in
// the machine's namespace (where dockerd runs too): the handoff TAPs are
// made here and Docker moves them into its containers.
type realDaemon struct {
	t      *testing.T
	dir    string
	d      *daemon.Daemon
	cancel context.CancelFunc
	served chan struct{}
	socket string
}

func startRealDaemon(t *testing.T, dir string) *realDaemon {
	t.Helper()
	r := &realDaemon{t: t, dir: dir, socket: filepath.Join(dir, "run", "api.sock")}
	d, err := daemon.New(daemon.Config{
		StateDir: filepath.Join(dir, "state"), Socket: r.socket, Logger: zaptest.NewLogger(t).Named("daemon"),
		Offload: true, NoDefaultNetwork: true, WatchInterval: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.d, r.cancel, r.served = d, cancel, make(chan struct{})
	go func() { defer close(r.served); d.Serve(ctx) }()
	c := api.NewClient(r.socket)
	waitFor(t, "the daemon's API", func() bool { _, err := c.Version(ctx); return err == nil })
	return r
}

// stop shuts the daemon down as a restart does: its TAPs stay, for the
// next daemon on the same state to re-attach.
func (r *realDaemon) stop() {
	r.cancel()
	<-r.served
	if err := r.d.Close(); err != nil {
		r.t.Errorf("closing the daemon: %v", err)
	}
}

// get fetches url from the host, through loopback.
func get(url string) (string, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// hostLinks lists the interfaces of the machine's own namespace.
func hostLinks(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("ip", "-o", "link", "show").CombinedOutput()
	if err != nil {
		t.Fatalf("ip link: %v: %s", err, out)
	}
	return string(out)
}

// checkTAPsGone reports, and deletes, each TAP of taps left in the host's
// namespace: a TAP of an endpoint the daemon lost track of is a leak.
func checkTAPsGone(t *testing.T, taps map[string]bool) {
	t.Helper()
	links := hostLinks(t)
	for name := range taps {
		if strings.Contains(links, " "+name+":") {
			t.Errorf("TAP %s left in the host's namespace", name)
			exec.Command("ip", "link", "del", name).Run()
		}
	}
}

// pluginHarness is dockerd with this package's plugin, served by the test
// over a real Switchyard daemon, as network and IPAM driver.
type pluginHarness struct {
	dk         *runtimetest.DockerDaemon
	img        string // busybox
	sy         *realDaemon
	client     *api.Client
	stopPlugin func()
}

// startPluginHarness starts dockerd, the daemon and the plugin.
func startPluginHarness(t *testing.T) *pluginHarness {
	t.Helper()
	dir := t.TempDir()
	psock := filepath.Join(dir, "plugin", Name+".sock")
	h := &pluginHarness{dk: runtimetest.Dockerd(t, runtimetest.Opts{DockerPlugins: map[string]string{Name: psock}})}
	h.img = h.dk.BusyboxImage()
	h.sy = startRealDaemon(t, dir)
	h.client = api.NewClient(h.sy.socket)
	l, err := Listen(psock)
	if err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithCancel(context.Background())
	pserved := make(chan struct{})
	go func() { defer close(pserved); New(h.client, zaptest.NewLogger(t)).Serve(pctx, l) }()
	h.stopPlugin = func() { pcancel(); <-pserved }
	return h
}

// close runs the docker commands that remove what the test made
// (containers first, while the plugin serves their DeleteEndpoint),
// disconnects whatever a failed test left, so that no TAP outlives it,
// stops the plugin and the daemon, and checks that no TAP of taps is
// left.
func (h *pluginHarness) close(t *testing.T, taps map[string]bool, docker ...[]string) {
	t.Helper()
	for _, args := range docker {
		h.dk.TryDocker(args...)
	}
	ctx := context.Background()
	if eps, err := h.client.Endpoints(ctx, ""); err == nil {
		for _, e := range eps {
			h.client.Disconnect(ctx, e.Network, e.Name)
		}
	}
	h.stopPlugin()
	h.sy.stop()
	checkTAPsGone(t, taps)
}

// Docker 20.10 (Debian's) uses Switchyard as a network and IPAM driver:
// a published port reachable from the host, names between containers,
// connect and disconnect, a daemon restart under running containers,
// bad input refused in Docker's own output, and rm freeing everything.
func TestDockerd(t *testing.T) {
	h := startPluginHarness(t)
	dk, img, client := h.dk, h.img, h.client
	ctx := context.Background()
	taps := map[string]bool{} // every TAP the test saw
	defer h.close(t, taps, []string{"rm", "-f", "web1", "web2", "web3"})

	dk.Docker("network", "create", "-d", Name, "--ipam-driver", Name, "--subnet", "10.98.0.0/24", "-o", "name=synet", "synet")
	n, err := client.Network(ctx, "synet")
	if err != nil || n.Subnet.String() != "10.98.0.0/24" || n.Gateway.String() != "10.98.0.1" || n.Labels[LabelNetworkID] == "" {
		t.Fatalf("switchyard network synet: %+v, %v; want 10.98.0.0/24 via 10.98.0.1, labelled with its Docker ID", n, err)
	}

	// httpd -v logs each client's address.
	serve := "mkdir -p /w && echo hello from $(hostname) > /w/index.html && exec httpd -f -v -p 80 -h /w"
	dk.Docker("run", "-d", "--name", "web1", "--hostname", "web1", "--network", "synet", "-p", "127.0.0.1:18082:80", img, "sh", "-c", serve)
	dk.Docker("run", "-d", "--name", "web2", "--hostname", "web2", "--network", "synet", img, "sh", "-c", serve)
	var body string
	waitFor(t, "web1 through 127.0.0.1:18082", func() bool { body, err = get("http://127.0.0.1:18082/"); return err == nil })
	if body != "hello from web1\n" {
		t.Fatalf("127.0.0.1:18082 answered %q", body)
	}
	// A client on the host's loopback shows as the gateway (see
	// README): the container sees a real address of the network.
	waitFor(t, "web1's log of the request", func() bool {
		cmd := dk.Command("logs", "web1")
		out, _ := cmd.CombinedOutput() // httpd logs to stderr
		return strings.Contains(string(out), "10.98.0.1]")
	})
	// Docker's embedded DNS resolves container names on the network.
	if out := dk.Docker("exec", "web1", "wget", "-q", "-O", "-", "http://web2/"); out != "hello from web2\n" {
		t.Errorf("web1 → http://web2/: %q", out)
	}
	eps, err := client.Endpoints(ctx, "synet")
	if err != nil || len(eps) != 2 {
		t.Fatalf("endpoints of synet: %+v, %v; want two", eps, err)
	}
	for _, e := range eps {
		taps[e.IfName] = true
		if e.Kind != "handoff" || e.Runtime != "docker" || e.Sandbox == "" || !strings.HasPrefix(e.Address.String(), "10.98.0.") {
			t.Errorf("endpoint %+v: want a handoff TAP of docker's with an address of 10.98.0.0/24", e)
		}
		if strings.Contains(hostLinks(t), e.IfName+":") {
			t.Errorf("endpoint %s's TAP is still in the host's namespace", e.IfName)
		}
	}
	if ports, err := client.Ports(ctx, ""); err != nil || len(ports) != 1 || ports[0].HostPort != 18082 {
		t.Fatalf("ports: %+v, %v; want 127.0.0.1:18082", ports, err)
	}

	// docker network connect / disconnect.
	dk.Docker("network", "create", "-d", Name, "--ipam-driver", Name, "--subnet", "10.97.0.0/24", "-o", "name=synet2", "synet2")
	dk.Docker("network", "connect", "synet2", "web2")
	if out := dk.Docker("exec", "web2", "ip", "-4", "-o", "addr", "show"); !strings.Contains(out, "inet 10.97.0.2/24") {
		t.Errorf("web2 after connect: %q; want 10.97.0.2/24", out)
	}
	if eps, err := client.Endpoints(ctx, "synet2"); err != nil || len(eps) != 1 {
		t.Errorf("synet2 after connect: %+v, %v; want web2's endpoint", eps, err)
	}
	dk.Docker("network", "disconnect", "synet2", "web2")
	if eps, err := client.Endpoints(ctx, "synet2"); err != nil || len(eps) != 0 {
		t.Errorf("synet2 after disconnect: %+v, %v; want none", eps, err)
	}

	// The daemon restarts under running containers: their TAPs, now
	// eth0 in their sandboxes, are found and re-attached, the port is
	// published again.
	h.sy.stop()
	h.sy = startRealDaemon(t, h.sy.dir)
	if eps, err := client.Endpoints(ctx, "synet"); err != nil || len(eps) != 2 {
		t.Fatalf("after a restart, synet's endpoints: %+v, %v; want both back", eps, err)
	}
	waitFor(t, "web1 through 18082 after the restart", func() bool { body, err = get("http://127.0.0.1:18082/"); return err == nil })
	if out := dk.Docker("exec", "web2", "wget", "-q", "-O", "-", "http://web1/"); out != "hello from web1\n" {
		t.Errorf("web2 → http://web1/ after the restart: %q", out)
	}

	// The network driver with Docker's own IPAM, and --ip.
	dk.Docker("network", "create", "-d", Name, "--subnet", "10.96.0.0/24", "dflt")
	dk.Docker("run", "-d", "--name", "web3", "--network", "dflt", "--ip", "10.96.0.50", img, "sleep", "600")
	if eps, err := client.Endpoints(ctx, ""); err == nil {
		for _, e := range eps {
			taps[e.IfName] = true
		}
	}
	if out := dk.Docker("exec", "web3", "ip", "-4", "-o", "addr", "show", "eth0"); !strings.Contains(out, "inet 10.96.0.50/24") {
		t.Errorf("web3 with --ip on Docker's IPAM: %q; want 10.96.0.50/24", out)
	}
	dk.Docker("rm", "-f", "web3")
	dk.Docker("network", "rm", "dflt")

	// Bad input: one clear error in Docker's output, nothing left.
	out, err := dk.TryDocker("network", "create", "-d", Name, "--ipam-driver", Name, "--subnet", "10.98.0.0/16", "bad")
	if err == nil || !strings.Contains(out+err.Error(), "overlaps network \"synet\"") {
		t.Errorf("overlapping subnet: %q, %v; want Docker to say it overlaps synet", out, err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port
	out, err = dk.TryDocker("run", "-d", "--name", "web3", "--network", "synet", "-p", "127.0.0.1:"+strconv.Itoa(busyPort)+":80", img, "sleep", "600")
	if err == nil || !strings.Contains(out+err.Error(), "address already in use") {
		t.Errorf("host port in use: %q, %v; want Docker to say the address is in use", out, err)
	}
	dk.TryDocker("rm", "-f", "web3")
	nets, _ := client.Networks(ctx)
	eps, _ = client.Endpoints(ctx, "")
	ports, _ := client.Ports(ctx, "")
	if len(nets) != 2 || len(eps) != 2 || len(ports) != 1 {
		t.Errorf("after bad input: %d networks, endpoints %+v, ports %+v; want synet, synet2, web1, web2 and 18082", len(nets), eps, ports)
	}

	// docker rm -f frees the address and the port (and the TAPs, checked
	// at the end); network rm the networks.
	dk.Docker("rm", "-f", "web1", "web2")
	if eps, err := client.Endpoints(ctx, ""); err != nil || len(eps) != 0 {
		t.Errorf("after rm: endpoints %+v, %v", eps, err)
	}
	if ports, err := client.Ports(ctx, ""); err != nil || len(ports) != 0 {
		t.Errorf("after rm: ports %+v, %v", ports, err)
	}
	dk.Docker("network", "rm", "synet", "synet2")
	if nets, err := client.Networks(ctx); err != nil || len(nets) != 0 {
		t.Errorf("after network rm: networks %+v, %v", nets, err)
	}
	if _, err := get("http://127.0.0.1:18082/"); err == nil {
		t.Errorf("18082 still answers after rm")
	}
}

// `switchyard daemon --docker-plugin` serves the plugin; killed with
// SIGKILL under a running container and started again, it finds the
// container's TAP in its sandbox and its port answers again; docker rm
// then frees everything.
func TestDockerdDaemonKill9(t *testing.T) {
	dir := t.TempDir()
	psock := filepath.Join(dir, Name+".sock")
	dk := runtimetest.Dockerd(t, runtimetest.Opts{DockerPlugins: map[string]string{Name: psock}})
	img := dk.BusyboxImage()
	sy := clitest.NewDaemon(t)
	sy.Extra = []string{"--docker-plugin", "--docker-plugin-socket", psock}
	sy.Start()
	client := api.NewClient(sy.Socket)
	ctx := context.Background()
	taps := map[string]bool{}
	defer func() {
		dk.TryDocker("rm", "-f", "k9")
		checkTAPsGone(t, taps)
	}()

	dk.Docker("network", "create", "-d", Name, "--ipam-driver", Name, "--subnet", "10.94.0.0/24", "-o", "name=k9net", "k9net")
	dk.Docker("run", "-d", "--name", "k9", "--network", "k9net", "-p", "127.0.0.1:18085:80", img,
		"sh", "-c", "mkdir -p /w && echo k9 > /w/index.html && exec httpd -f -p 80 -h /w")
	eps, err := client.Endpoints(ctx, "k9net")
	if err != nil || len(eps) != 1 {
		t.Fatalf("endpoints: %+v, %v", eps, err)
	}
	taps[eps[0].IfName] = true
	var body string
	waitFor(t, "k9 through 18085", func() bool { body, err = get("http://127.0.0.1:18085/"); return err == nil })

	sy.Kill9()
	if _, err := get("http://127.0.0.1:18085/"); err == nil {
		t.Fatal("18085 answers with the daemon killed")
	}
	sy.Start()
	waitFor(t, "k9 through 18085 after the restart", func() bool { body, err = get("http://127.0.0.1:18085/"); return err == nil })
	if body != "k9\n" {
		t.Errorf("18085 after the restart: %q", body)
	}
	if eps, err := client.Endpoints(ctx, "k9net"); err != nil || len(eps) != 1 || eps[0].IfName != eps[0].Name {
		t.Errorf("endpoints after the restart: %+v, %v", eps, err)
	}
	// docker stop frees the endpoint and its port; docker start makes
	// them again.
	dk.Docker("stop", "-t", "1", "k9")
	if eps, err := client.Endpoints(ctx, ""); err != nil || len(eps) != 0 {
		t.Errorf("after stop: endpoints %+v, %v", eps, err)
	}
	if ports, err := client.Ports(ctx, ""); err != nil || len(ports) != 0 {
		t.Errorf("after stop: ports %+v, %v", ports, err)
	}
	dk.Docker("start", "k9")
	if eps, err := client.Endpoints(ctx, "k9net"); err == nil {
		for _, e := range eps {
			taps[e.IfName] = true
		}
	}
	waitFor(t, "k9 through 18085 after docker start", func() bool { body, err = get("http://127.0.0.1:18085/"); return err == nil })
	dk.Docker("rm", "-f", "k9")
	dk.Docker("network", "rm", "k9net")
	if eps, err := client.Endpoints(ctx, ""); err != nil || len(eps) != 0 {
		t.Errorf("after rm: endpoints %+v, %v", eps, err)
	}
	if ports, err := client.Ports(ctx, ""); err != nil || len(ports) != 0 {
		t.Errorf("after rm: ports %+v, %v", ports, err)
	}
	if _, err := client.Network(ctx, "k9net"); !isNotFound(err) {
		t.Errorf("k9net after network rm: %v; want not found", err)
	}
}
