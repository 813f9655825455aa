package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/switchyard-net/switchyard/testing/clitest"
	"github.com/switchyard-net/switchyard/testing/netnstest"
)

// The netavark plugin, driven as netavark drives it: the built binary,
// named switchyard-netavark, with the JSON of netavark's plugin-API.md on
// stdin, against a daemon in a "host" namespace of the test's own.

// netavarkRig is a daemon and the plugin pointed at it.
type netavarkRig struct {
	t      *testing.T
	host   *netnstest.NS
	d      *clitest.Daemon
	plugin string
}

func newNetavarkRig(t *testing.T) *netavarkRig {
	t.Helper()
	r := &netavarkRig{t: t, host: netnstest.New(t), d: clitest.NewDaemon(t)}
	r.d.Wrap = []string{"nsenter", "--net=" + r.host.Path}
	r.d.Start()
	// As installed in netavark's plugin directory: a link named after the
	// driver.
	r.plugin = filepath.Join(t.TempDir(), "switchyard-netavark")
	if err := os.Symlink(r.d.Bin, r.plugin); err != nil {
		t.Fatal(err)
	}
	return r
}

// run runs the plugin with stdin and returns its stdout and exit code.
func (r *netavarkRig) run(stdin string, args ...string) (string, int) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.plugin, args...)
	cmd.Env = append(os.Environ(), "SWITCHYARD_SOCKET="+r.d.Socket)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		r.t.Fatalf("run %s %v: %v", r.plugin, args, err)
	}
	if errOut.Len() > 0 {
		r.t.Logf("%v: stderr: %s", args, errOut.String())
	}
	return out.String(), code
}

// ok runs the plugin and fails the test unless it succeeds.
func (r *netavarkRig) ok(stdin string, args ...string) string {
	r.t.Helper()
	out, code := r.run(stdin, args...)
	if code != 0 {
		r.t.Fatalf("switchyard-netavark %v: exit %d: %s", args, code, out)
	}
	return out
}

// fails runs the plugin and checks it fails with netavark's error JSON
// containing want; it returns the message.
func (r *netavarkRig) fails(want, stdin string, args ...string) string {
	r.t.Helper()
	out, code := r.run(stdin, args...)
	var e struct {
		Error string `json:"error"`
	}
	if code == 0 || json.Unmarshal([]byte(out), &e) != nil || e.Error == "" {
		r.t.Fatalf("switchyard-netavark %v: exit %d, %q; want exit 1 and {\"error\": ...}", args, code, out)
	}
	if !strings.Contains(e.Error, want) {
		r.t.Errorf("switchyard-netavark %v: error %q; want it to contain %q", args, e.Error, want)
	}
	return e.Error
}

const netavarkCreate = `{
    "name": "synet",
    "id": "2f259bab93aaaaa2542ba43ef33eb990d0999ee1b9924b557b7be53c0b7a1bb9",
    "driver": "switchyard-netavark",
    "subnets": [{"subnet": "10.89.0.0/24", "gateway": "10.89.0.1"}],
    "ipv6_enabled": false,
    "internal": false,
    "dns_enabled": false,
    "ipam_options": {"driver": "host-local"}
}`

// setupInput is the setup/teardown input of plugin-API.md for a container
// on the network create made, with static IPs (none if ip is empty) and
// port mappings (JSON).
func setupInput(t *testing.T, created, id, name, ip, ports string) string {
	t.Helper()
	var network map[string]any
	if err := json.Unmarshal([]byte(created), &network); err != nil {
		t.Fatalf("create's answer %q: %v", created, err)
	}
	opts := map[string]any{"aliases": []string{id[:12]}, "interface_name": "eth0"}
	if ip != "" {
		opts["static_ips"] = []string{ip}
	}
	in := map[string]any{
		"container_id":    id,
		"container_name":  name,
		"port_mappings":   json.RawMessage(ports),
		"network":         network,
		"network_options": opts,
	}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

type statusBlock struct {
	DNSServerIPs []string `json:"dns_server_ips"`
	Interfaces   map[string]struct {
		MAC     string `json:"mac_address"`
		Subnets []struct {
			Gateway string `json:"gateway"`
			IPNet   string `json:"ipnet"`
		} `json:"subnets"`
	} `json:"interfaces"`
}

const (
	ctrID1 = "752947ff91f961eb3cb47ffe9315016979f3ffbec09e4d96a4fae3fb03391697"
	ctrID2 = "8b1c2a3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9"
	ctrID3 = "99aabbccddeeff00112233445566778899aabbccddeeff001122334455667788"
)

func TestNetavarkSetupTeardown(t *testing.T) {
	r := newNetavarkRig(t)
	created := r.ok(netavarkCreate, "create")
	if !strings.Contains(created, `"subnet":"10.89.0.0/24"`) || !strings.Contains(created, `"driver":"switchyard-netavark"`) {
		t.Errorf("create answered %s", created)
	}
	found := false
	for _, n := range networks(t, r.d) {
		found = found || n.Name == "synet" && n.Subnet.String() == "10.89.0.0/24" && n.Gateway.String() == "10.89.0.1"
	}
	if !found {
		t.Fatalf("no network synet 10.89.0.0/24 after create: %+v", networks(t, r.d))
	}

	c1, c2 := netnstest.New(t), netnstest.New(t)
	whoServers(t, c1, []int{80, 81}, []int{80})
	in1 := setupInput(t, created, ctrID1, "web", "10.89.0.50",
		`[{"container_port": 80, "host_ip": "127.0.0.1", "host_port": 18480, "protocol": "tcp,udp", "range": 2}]`)
	var sb statusBlock
	first := r.ok(in1, "setup", c1.Path)
	if err := json.Unmarshal([]byte(first), &sb); err != nil {
		t.Fatal(err)
	}
	// A repeated setup answers the same and makes nothing more.
	if again := r.ok(in1, "setup", c1.Path); again != first {
		t.Errorf("repeated setup answered %s; the first %s", again, first)
	}
	eth0, ok := sb.Interfaces["eth0"]
	if !ok || len(eth0.Subnets) != 1 || eth0.Subnets[0].IPNet != "10.89.0.50/24" || eth0.Subnets[0].Gateway != "10.89.0.1" ||
		eth0.MAC == "" || len(sb.DNSServerIPs) != 1 || sb.DNSServerIPs[0] != "10.89.0.1" {
		t.Fatalf("status block %+v", sb)
	}
	// The namespace has the address and a default route through the gateway.
	addrs, err := c1.Addrs("eth0")
	var v4 []string
	for _, a := range addrs {
		if a.Addr().Is4() {
			v4 = append(v4, a.String())
		}
	}
	if err != nil || len(v4) != 1 || v4[0] != "10.89.0.50/24" {
		t.Errorf("eth0's IPv4 addresses in the container: %v, %v; want 10.89.0.50/24", v4, err)
	}
	if routes := c1.MustRun("ip", "route"); !strings.Contains(routes, "default via 10.89.0.1 dev eth0") {
		t.Errorf("routes in the container:\n%s", routes)
	}
	if link := c1.MustRun("ip", "-o", "link", "show", "eth0"); !strings.Contains(link, "link/ether "+eth0.MAC+" ") {
		t.Errorf("eth0 in the container: %s; the status block says MAC %s", link, eth0.MAC)
	}
	// The published port, from the host's loopback.
	// The published ports, from the host's loopback: a range of two, TCP
	// and UDP.
	for _, port := range []string{"18480", "18481"} {
		if got := askWho(t, r.host, "127.0.0.1:"+port); got == "" {
			t.Errorf("no answer through the published port 127.0.0.1:%s", port)
		}
	}
	if reply, err := udpAsk(r.host, "127.0.0.1:18480", "hello"); err != nil || !strings.HasSuffix(reply, " hello") {
		t.Errorf("UDP through 127.0.0.1:18480: %q, %v", reply, err)
	}
	// The endpoint carries the runtime's identity.
	eps := endpoints(t, r.d, "synet")
	if len(eps) != 1 || eps[0].ContainerID != ctrID1 || eps[0].Runtime != "netavark" || eps[0].Name != "web" || eps[0].NetNS != c1.Path {
		t.Fatalf("endpoints: %+v", eps)
	}

	// A second container, address from IPAM, reaches the first.
	in2 := setupInput(t, created, ctrID2, "db", "", `[]`)
	if err := json.Unmarshal([]byte(r.ok(in2, "setup", c2.Path)), &sb); err != nil {
		t.Fatal(err)
	}
	if ip := sb.Interfaces["eth0"].Subnets[0].IPNet; ip != "10.89.0.2/24" {
		t.Errorf("second container got %s; want IPAM's lowest free, 10.89.0.2/24", ip)
	}
	if got := askWho(t, c2, "10.89.0.50:80"); !strings.HasPrefix(got, "10.89.0.2:") {
		t.Errorf("the first container saw the second at %q; want 10.89.0.2:PORT", got)
	}
	// The DNS server the status block names resolves the first container
	// by its name and by podman's alias (the short ID).
	for _, name := range []string{"web", ctrID1[:12]} {
		if got := aRecords(query(t, c2, "udp", sb.DNSServerIPs[0], name, dns.TypeA)); len(got) != 1 || got[0] != "10.89.0.50" {
			t.Errorf("%s from the second container: %v; want 10.89.0.50", name, got)
		}
	}

	// Teardown frees the address, the port and the interface; twice is fine.
	r.ok(in1, "teardown", c1.Path)
	if out, _ := r.run(in1, "teardown", c1.Path); out != "" {
		t.Errorf("second teardown printed %q", out)
	}
	r.ok(in1, "teardown", c1.Path)
	if eps := endpoints(t, r.d, "synet"); len(eps) != 1 || eps[0].ContainerID != ctrID2 {
		t.Errorf("endpoints after teardown: %+v", eps)
	}
	if ports := r.d.MustRun("port", "ls"); strings.Contains(ports, "18480") {
		t.Errorf("port ls after teardown:\n%s", ports)
	}
	if links := c1.MustRun("ip", "-o", "link"); strings.Contains(links, "eth0") {
		t.Errorf("links in the container after teardown:\n%s", links)
	}
	// Address and port are free: a third container takes both.
	c3 := netnstest.New(t)
	whoServer(t, c3, "0.0.0.0:80")
	in3 := setupInput(t, created, ctrID3, "web2", "10.89.0.50",
		`[{"container_port": 80, "host_ip": "127.0.0.1", "host_port": 18480, "protocol": "tcp", "range": 1}]`)
	r.ok(in3, "setup", c3.Path)
	if got := askWho(t, r.host, "127.0.0.1:18480"); got == "" {
		t.Error("no answer through 127.0.0.1:18480 after it was freed and taken again")
	}
	// Teardown of a container whose namespace is gone.
	if out, err := netnstest.Delete(c3); err != nil {
		t.Fatalf("delete namespace: %v: %s", err, out)
	}
	r.ok(in3, "teardown", c3.Path)
	if ports := r.d.MustRun("port", "ls"); strings.Contains(ports, "18480") {
		t.Errorf("port ls after teardown of a gone namespace:\n%s", ports)
	}
}

// The same plugin as a command of the CLI: its answers on stdout, the
// exit status its only other output.
func TestNetavarkPluginCommand(t *testing.T) {
	r := newNetavarkRig(t)
	info := r.d.Run("netavark-plugin", "info")
	var m map[string]string
	if info.Code != 0 || json.Unmarshal([]byte(info.Stdout), &m) != nil || m["api_version"] != "1.0.0" || m["socket"] != r.d.Socket {
		t.Errorf("netavark-plugin info: %v", info)
	}
	bad := r.d.Run("netavark-plugin", "setup")
	if bad.Code != 1 || !strings.HasPrefix(bad.Stdout, `{"error":"setup: the netns path argument is missing`) || bad.Stderr != "" {
		t.Errorf("netavark-plugin setup without a namespace: %v", bad)
	}
}

func TestNetavarkBadInput(t *testing.T) {
	r := newNetavarkRig(t)
	created := r.ok(netavarkCreate, "create")
	c1 := netnstest.New(t)
	r.ok(setupInput(t, created, ctrID1, "web", "10.89.0.50",
		`[{"container_port": 80, "host_ip": "127.0.0.1", "host_port": 18480, "protocol": "tcp", "range": 1}]`), "setup", c1.Path)

	state := func() string {
		var b strings.Builder
		for _, e := range endpoints(t, r.d, "") {
			b.WriteString(e.Network + "/" + e.Name + " " + e.Address.String() + "\n")
		}
		b.WriteString(r.d.MustRun("port", "ls"))
		for _, n := range networks(t, r.d) {
			b.WriteString(n.Name + " " + n.Subnet.String() + "\n")
		}
		return b.String()
	}
	before := state()
	c := netnstest.New(t)
	onlyLoopback := func(what string) {
		t.Helper()
		if links := c.MustRun("ip", "-o", "link"); strings.Count(links, "\n") != 1 || !strings.Contains(links, ": lo:") {
			t.Errorf("%s: links left in the container:\n%s", what, links)
		}
		if after := state(); after != before {
			t.Errorf("%s: the daemon's state changed:\n%s\nwas:\n%s", what, after, before)
		}
	}
	noPorts := `[]`
	for _, tc := range []struct {
		what, want, stdin string
		args              []string
	}{
		{"bad subnet", `subnets[0].subnet "10.90.0.0/33": not a subnet`,
			strings.Replace(netavarkCreate, `"10.89.0.0/24", "gateway": "10.89.0.1"`, `"10.90.0.0/33"`, 1), []string{"create"}},
		{"clashing subnet", `subnets[0].subnet "10.90.0.0/24": Switchyard network "synet" exists with subnet 10.89.0.0/24`,
			strings.Replace(netavarkCreate, `"10.89.0.0/24", "gateway": "10.89.0.1"`, `"10.90.0.0/24"`, 1), []string{"create"}},
		{"IP outside the subnet", `network_options.static_ips "10.90.0.5"`,
			setupInput(t, created, ctrID2, "db", "10.90.0.5", noPorts), []string{"setup", c.Path}},
		{"IP in use", "10.89.0.50",
			setupInput(t, created, ctrID2, "db", "10.89.0.50", noPorts), []string{"setup", c.Path}},
		{"port in use", "18480",
			setupInput(t, created, ctrID2, "db", "", `[{"container_port": 81, "host_ip": "127.0.0.1", "host_port": 18480, "protocol": "tcp", "range": 1}]`), []string{"setup", c.Path}},
		{"missing netns", "/var/run/netns/sytest-does-not-exist",
			setupInput(t, created, ctrID2, "db", "", noPorts), []string{"setup", "/var/run/netns/sytest-does-not-exist"}},
		{"no netns argument", "netns path argument is missing",
			setupInput(t, created, ctrID2, "db", "", noPorts), []string{"setup"}},
		{"not JSON", "not valid JSON", `{"container_id":`, []string{"setup", c.Path}},
	} {
		msg := r.fails(tc.want, tc.stdin, tc.args...)
		t.Logf("%s: %s", tc.what, msg)
		if strings.Count(msg, "\n") > 0 {
			t.Errorf("%s: the error is more than one line: %q", tc.what, msg)
		}
		onlyLoopback(tc.what)
	}

	// The daemon down: a clear error, and nothing made in the container.
	r.d.Stop()
	r.fails("cannot reach the switchyard daemon", setupInput(t, created, ctrID2, "db", "", noPorts), "setup", c.Path)
	r.fails("cannot reach the switchyard daemon", netavarkCreate, "create")
	if links := c.MustRun("ip", "-o", "link"); strings.Count(links, "\n") != 1 {
		t.Errorf("daemon down: links left in the container:\n%s", links)
	}
	r.d.Start()
	if after := state(); after != before {
		t.Errorf("after the daemon was down: the state changed:\n%s\nwas:\n%s", after, before)
	}
}

// The endpoint's container ID is what teardown goes by: teardown of
// another container leaves it alone.
func TestNetavarkTeardownOtherContainer(t *testing.T) {
	r := newNetavarkRig(t)
	created := r.ok(netavarkCreate, "create")
	c1 := netnstest.New(t)
	r.ok(setupInput(t, created, ctrID1, "web", "", `[]`), "setup", c1.Path)
	r.ok(setupInput(t, created, ctrID2, "db", "", `[]`), "teardown", c1.Path)
	if eps := endpoints(t, r.d, "synet"); len(eps) != 1 || eps[0].ContainerID != ctrID1 {
		t.Errorf("endpoints after another container's teardown: %+v", eps)
	}
}

// Endpoints made by setup survive a kill -9 of the daemon, container ID
// and published port included, and teardown after the restart frees them.
func TestNetavarkTeardownAfterDaemonRestart(t *testing.T) {
	r := newNetavarkRig(t)
	created := r.ok(netavarkCreate, "create")
	c1 := netnstest.New(t)
	whoServer(t, c1, "0.0.0.0:80")
	in := setupInput(t, created, ctrID1, "web", "",
		`[{"container_port": 80, "host_ip": "127.0.0.1", "host_port": 18480, "protocol": "tcp", "range": 1}]`)
	r.ok(in, "setup", c1.Path)
	r.d.Kill9()
	r.d.Start()
	if eps := endpoints(t, r.d, "synet"); len(eps) != 1 || eps[0].ContainerID != ctrID1 || eps[0].Runtime != "netavark" {
		t.Fatalf("endpoints after the restart: %+v", eps)
	}
	if got := askWho(t, r.host, "127.0.0.1:18480"); got == "" {
		t.Error("no answer through 127.0.0.1:18480 after the restart")
	}
	r.ok(in, "teardown", c1.Path)
	if eps := endpoints(t, r.d, "synet"); len(eps) != 0 {
		t.Errorf("endpoints after teardown: %+v", eps)
	}
	if ports := r.d.MustRun("port", "ls"); strings.Contains(ports, "18480") {
		t.Errorf("port ls after teardown:\n%s", ports)
	}
	if links := c1.MustRun("ip", "-o", "link"); strings.Contains(links, "eth0") {
		t.Errorf("links in the container after teardown:\n%s", links)
	}
}
