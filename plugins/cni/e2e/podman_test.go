package e2e_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/testing/netnstest"
	"github.com/switchyard-net/switchyard/testing/runtimetest"
)

// httpGet fetches url with a client whose connections start in ns.
func httpGet(t *testing.T, ns *netnstest.NS, url string) (string, error) {
	t.Helper()
	c := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) { return ns.Dial(ctx, network, addr) },
	}}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	b = []byte(unmapped(string(b)))
	if resp.StatusCode != 200 {
		return string(b), fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), err
}

// unmapped turns busybox httpd's "[::ffff:10.0.0.1]" (it listens on a
// dual-stack socket) into "10.0.0.1".
func unmapped(s string) string {
	s = strings.TrimSpace(s)
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	return strings.TrimPrefix(s, "::ffff:")
}

// whoRootfs is a busybox tree whose httpd answers /cgi-bin/who with the
// address the client came from.
func whoRootfs(t *testing.T) string {
	t.Helper()
	root := runtimetest.Rootfs(t)
	cgi := filepath.Join(root, "www", "cgi-bin")
	if err := os.MkdirAll(cgi, 0o755); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\necho 'Content-Type: text/plain'\necho\necho \"$REMOTE_ADDR\"\n"
	if err := os.WriteFile(filepath.Join(cgi, "who"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

// noPortReservation sets containers.conf's enable_port_reservation =
// false: rootful podman otherwise binds each -p host port itself (in
// conmon, to hold it for iptables DNAT rules), and Switchyard, which
// really listens on the port, could not.
func noPortReservation(t testing.TB, p *runtimetest.PodmanRuntime) {
	t.Helper()
	b, err := os.ReadFile(p.ContainersConf)
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.Replace(string(b), "[engine]\n", "[engine]\nenable_port_reservation = false\n", 1)
	if conf == string(b) {
		t.Fatalf("%s has no [engine] table:\n%s", p.ContainersConf, b)
	}
	if err := os.WriteFile(p.ContainersConf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
}

// podman 4.3.1 with the CNI backend and a conflist of the switchyard
// plugin: --ip, -p, the client's real address, container to container,
// and podman rm freeing the address and the host port.
func TestPodman(t *testing.T) {
	w := newWorld(t)
	p := runtimetest.Podman(t, runtimetest.Opts{CNIPluginDirs: []string{w.plugins}, NetNS: w.host.Path, CNIConfDir: w.netconf})
	noPortReservation(t, p)
	w.conflist(t, "synet", "1.0.0", `"subnet": "10.99.0.0/24",`)
	root := whoRootfs(t)

	p.MustRun("run", "-d", "--name", "web", "--network", "synet", "--ip", "10.99.0.7", "-p", "18081:80",
		"--rootfs", root, "/bin/httpd", "-f", "-p", "80", "-h", "/www")
	eps := w.endpoints(t)
	if len(eps) != 1 || eps[0].Address.String() != "10.99.0.7/24" || eps[0].Runtime != "cni" || eps[0].Name != "web" {
		t.Fatalf("endpoint ls: %+v, want web at 10.99.0.7/24 made by cni", eps)
	}
	if out := p.MustRun("exec", "web", "ip", "-4", "-o", "addr", "show", "dev", "eth0"); !strings.Contains(out, "10.99.0.7/24") {
		t.Errorf("the container's eth0: %q, want 10.99.0.7/24", out)
	}
	url := func(host string) string { return "http://" + net.JoinHostPort(host, "18081") + "/cgi-bin/who" }
	// From the host (the daemon's namespace), on loopback.
	var got string
	var err error
	deadline := time.Now().Add(15 * time.Second)
	for {
		if got, err = httpGet(t, w.host, url("127.0.0.1")); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond) // httpd starting in the container
	}
	if err != nil || got == "" {
		t.Fatalf("the published port from the host: %q, %v", got, err)
	}
	// From another machine: the container sees the client's address.
	if got, err = httpGet(t, w.inet, url(hostAddr)); err != nil || strings.TrimSpace(got) != inetAddr {
		t.Errorf("the container saw the client as %q (%v), want %s", got, err, inetAddr)
	}

	// A second container reaches the first, by address and by name.
	out := p.MustRun("run", "--rm", "--name", "client", "--network", "synet", "--rootfs", root,
		"/bin/wget", "-q", "-O", "-", "http://10.99.0.7/cgi-bin/who")
	if !strings.HasPrefix(unmapped(out), "10.99.0.") {
		t.Errorf("container to container: %q, want the client's address in 10.99.0.0/24", out)
	}
	// podman writes the result's nameserver (the gateway) into
	// resolv.conf, so wget finds web by name.
	if out, err := p.Run("run", "--rm", "--network", "synet", "--rootfs", root, "/bin/sh", "-c",
		"cat /etc/resolv.conf; echo who=$(wget -q -O - http://web/cgi-bin/who)"); err != nil || !strings.Contains(out, "nameserver 10.99.0.1") || !strings.Contains(out, "who=[::ffff:10.99.0.") {
		t.Errorf("the name web in the network's DNS: %v\n%s", err, out)
	}

	p.MustRun("rm", "-f", "web")
	w.nothingAttached(t)
	// The address and the host port are free again.
	l, err := w.host.Listen("0.0.0.0:18081")
	if err != nil {
		t.Errorf("host port 18081 after podman rm: %v", err)
	} else {
		l.Close()
	}
	p.MustRun("run", "-d", "--name", "again", "--network", "synet", "--ip", "10.99.0.7", "-p", "18081:80",
		"--rootfs", root, "/bin/httpd", "-f", "-p", "80", "-h", "/www")
	p.MustRun("rm", "-f", "again")
	w.nothingAttached(t)
}

// Bad input through podman: an address outside the subnet and a host
// port in use each fail `podman run` with the plugin's message, and
// leave nothing attached.
func TestPodmanBadInput(t *testing.T) {
	w := newWorld(t)
	p := runtimetest.Podman(t, runtimetest.Opts{CNIPluginDirs: []string{w.plugins}, NetNS: w.host.Path, CNIConfDir: w.netconf})
	noPortReservation(t, p)
	w.conflist(t, "synet", "1.0.0", `"subnet": "10.99.6.0/24",`)
	root := runtimetest.Rootfs(t)
	busy, err := w.host.Listen("0.0.0.0:18083")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"IP outside the subnet", []string{"--ip", "10.98.0.7"}, "10.98.0.7"},
		{"host port in use", []string{"-p", "18083:80"}, "18083"},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append(append([]string{"run", "--rm", "--network", "synet"}, c.args...), "--rootfs", root, "/bin/true")
			out, err := p.Run(args...)
			if err == nil {
				t.Fatalf("podman run succeeded: %s", out)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "switchyard") {
				t.Errorf("podman run: %v\nwant the plugin's error naming %s", err, c.want)
			}
			t.Logf("podman run: %v", err)
			w.nothingAttached(t)
		})
	}
}
