package daemon

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/testing/attachtest"
)

// A network that cannot be brought up or stored leaves nothing: its name,
// its subnet and its tunnel's socket are free again.
func TestCreateNetworkRollback(t *testing.T) {
	e := newEnv(t)
	listen := "127.0.0.1:" + strconv.Itoa(freeUDPPort(t))
	req := api.NetworkCreate{Name: "tun", Subnet: "10.8.0.0/24", Tunnel: "vxlan", TunnelListen: listen}

	e.store.failAfter("PutNetwork", 0)
	if _, err := e.d.CreateNetwork(context.Background(), req); !errors.Is(err, errInjected) {
		t.Fatalf("create with a failing store: %v", err)
	}
	// Bringing up fails: the tunnel's socket is taken.
	c, err := net.ListenPacket("udp", listen)
	if err != nil {
		t.Fatalf("the tunnel's socket was left open: %v", err)
	}
	if _, err := e.d.CreateNetwork(context.Background(), req); err == nil {
		t.Fatal("create on a taken tunnel socket succeeded")
	}
	c.Close()
	if ns := e.d.Networks(); len(ns) != 0 {
		t.Errorf("networks after failed creates: %+v", ns)
	}
	e.createNetwork(req)
	if _, err := e.d.Tunnel("tun"); err != nil {
		t.Error(err)
	}
}

// A removal the state file refuses leaves the network; the default
// network cannot be removed, and is made once.
func TestRemoveNetworkFailures(t *testing.T) {
	e := &testEnv{t: t, dir: t.TempDir(), att: attachtest.New()}
	cfg := e.config()
	cfg.NoDefaultNetwork = false
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n, err := d.Network(DefaultNetwork)
	if err != nil || !n.Default || n.Subnet.String() != "172.17.0.0/16" {
		t.Fatalf("default network %+v, %v", n, err)
	}
	if err := d.RemoveNetwork(context.Background(), DefaultNetwork); !errors.Is(err, api.ErrConflict) {
		t.Errorf("removing the default network: %v, want a conflict", err)
	}
	d.Close()
	e.start() // without a default network now: the stored one comes back
	t.Cleanup(func() { e.d.Close() })
	if n, err := e.d.Network(DefaultNetwork); err != nil || !n.Default {
		t.Errorf("default network after a restart: %+v, %v", n, err)
	}

	e.createNetwork(api.NetworkCreate{Name: "web", Subnet: "10.7.0.0/24"})
	e.store.failAfter("DeleteNetwork", 0)
	if err := e.d.RemoveNetwork(context.Background(), "web"); !errors.Is(err, errInjected) {
		t.Fatalf("remove with a failing store: %v", err)
	}
	e.att.AddNetNS("/run/netns/a")
	e.connect("web", api.EndpointCreate{NetNS: "/run/netns/a"}) // it still works
	if err := e.d.Disconnect(context.Background(), "web", "a"); err != nil {
		t.Fatal(err)
	}
	if err := e.d.RemoveNetwork(context.Background(), "web"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.Network("web"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("removed network: %v", err)
	}
	e.createNetwork(api.NetworkCreate{Name: "web", Subnet: "10.7.0.0/24"}) // name and subnet free
}

// A port the state file refuses to record is not published; one it
// refuses to forget stays published.
func TestPortRollback(t *testing.T) {
	e := newEnv(t)
	e.createNetwork(api.NetworkCreate{Name: "web", Subnet: "10.7.0.0/24"})
	e.att.AddNetNS("/run/netns/a")
	e.connect("web", api.EndpointCreate{NetNS: "/run/netns/a"})
	port := freePorts(t, 1)[0]
	spec := "127.0.0.1:" + strconv.Itoa(int(port)) + ":80"

	e.store.failPut(0)
	if _, err := e.d.AddPort(context.Background(), "web", "a", spec); !errors.Is(err, errInjected) {
		t.Fatalf("add port with a failing store: %v", err)
	}
	if !bindable(port) || len(e.hostPorts("web/a")) != 0 {
		t.Errorf("a port the store refused is published: %v", e.hostPorts("web/a"))
	}
	if _, err := e.d.AddPort(context.Background(), "web", "a", spec); err != nil {
		t.Fatal(err)
	}

	e.store.failPut(0)
	if err := e.d.RemovePort(context.Background(), "web", "a", spec); !errors.Is(err, errInjected) {
		t.Fatalf("remove port with a failing store: %v", err)
	}
	if bindable(port) || e.hostPorts("web/a")[80] != port {
		t.Errorf("a port the store did not forget is unpublished: %v", e.hostPorts("web/a"))
	}
	if err := e.d.RemovePort(context.Background(), "web", "a", spec); err != nil {
		t.Fatal(err)
	}
	if !bindable(port) {
		t.Error("an unpublished port is still bound")
	}
}

// A peer the state file refuses to record is not added; one it refuses to
// forget stays.
func TestTunnelPeerRollback(t *testing.T) {
	e := newEnv(t)
	e.createNetwork(api.NetworkCreate{Name: "tun", Subnet: "10.8.0.0/24", Tunnel: "vxlan",
		TunnelListen: "127.0.0.1:" + strconv.Itoa(freeUDPPort(t))})
	peers := func() int {
		tn, err := e.d.Tunnel("tun")
		if err != nil {
			t.Fatal(err)
		}
		return len(tn.Peers) + len(tn.StaticPeers)
	}
	e.store.failAfter("PutNetwork", 0)
	if _, err := e.d.AddTunnelPeer(context.Background(), "tun", "127.0.0.2"); !errors.Is(err, errInjected) {
		t.Fatalf("add peer with a failing store: %v", err)
	}
	if n := peers(); n != 0 {
		t.Errorf("a peer the store refused is there (%d)", n)
	}
	if _, err := e.d.AddTunnelPeer(context.Background(), "tun", "127.0.0.2"); err != nil {
		t.Fatal(err)
	}
	e.store.failAfter("PutNetwork", 0)
	if err := e.d.RemoveTunnelPeer(context.Background(), "tun", "127.0.0.2"); !errors.Is(err, errInjected) {
		t.Fatalf("remove peer with a failing store: %v", err)
	}
	if n := peers(); n != 2 {
		t.Errorf("a peer the store did not forget is gone (%d)", n)
	}
}

// A request cancelled before it begins changes nothing.
func TestCancelled(t *testing.T) {
	e := newEnv(t)
	e.createNetwork(api.NetworkCreate{Name: "web", Subnet: "10.7.0.0/24"})
	e.createNetwork(api.NetworkCreate{Name: "tun", Subnet: "10.8.0.0/24", Tunnel: "vxlan",
		TunnelListen: "127.0.0.1:" + strconv.Itoa(freeUDPPort(t))})
	e.att.AddNetNS("/run/netns/a")
	e.connect("web", api.EndpointCreate{NetNS: "/run/netns/a", Publish: []string{"127.0.0.1::80"}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls := map[string]error{
		"connect": func() error {
			e.att.AddNetNS("/run/netns/b")
			_, err := e.d.Connect(ctx, "web", api.EndpointCreate{NetNS: "/run/netns/b"})
			return err
		}(),
		"disconnect":  e.d.Disconnect(ctx, "web", "a"),
		"add port":    func() error { _, err := e.d.AddPort(ctx, "web", "a", "127.0.0.1::81"); return err }(),
		"remove port": e.d.RemovePort(ctx, "web", "a", "127.0.0.1::80"),
		"add peer":    func() error { _, err := e.d.AddTunnelPeer(ctx, "tun", "127.0.0.2"); return err }(),
		"remove net":  e.d.RemoveNetwork(ctx, "tun"),
	}
	for what, err := range calls {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s: %v, want %v", what, err, context.Canceled)
		}
	}
	if eps, _ := e.d.Endpoints(""); len(eps) != 1 || len(eps[0].Ports) != 1 {
		t.Errorf("endpoints after cancelled calls: %+v", eps)
	}
	if ns := e.d.Networks(); len(ns) != 2 {
		t.Errorf("%d networks after cancelled calls, want 2", len(ns))
	}
	if tn, _ := e.d.Tunnel("tun"); len(tn.StaticPeers) != 0 {
		t.Errorf("peers after a cancelled add: %v", tn.StaticPeers)
	}
}

// VM TAPs and processes' namespaces: connected, refused and rolled back
// like named namespaces.
func TestConnectVMAndPID(t *testing.T) {
	e := newEnv(t)
	e.createNetwork(api.NetworkCreate{Name: "web", Subnet: "10.7.0.0/24"})
	e.createNetwork(api.NetworkCreate{Name: "db", Subnet: "10.9.0.0/24"})
	owner := 1000
	vm := e.connect("web", api.EndpointCreate{TapOnly: "vm0", TapOwner: &owner, MAC: "52:54:00:12:34:56"})
	if vm.Kind != "vm" || vm.NetNS != "" || !vm.DHCP || vm.MAC != "52:54:00:12:34:56" {
		t.Errorf("VM endpoint %+v", vm)
	}
	if p := e.att.Port("", "vm0"); p == nil {
		t.Fatal("no VM TAP open")
	}
	refused := []struct {
		network string
		req     api.EndpointCreate
		kind    error
	}{
		{"db", api.EndpointCreate{TapOnly: "vm0"}, api.ErrConflict},                        // the name is taken on the host
		{"web", api.EndpointCreate{TapOnly: "vm1", NetNS: "/run/netns/a"}, api.ErrInvalid}, // a VM has no namespace
		{"web", api.EndpointCreate{TapOnly: "vm1", Name: "other"}, api.ErrInvalid},
		{"web", api.EndpointCreate{TapOnly: "vm1", WriteResolvConf: true}, api.ErrInvalid},
		{"web", api.EndpointCreate{TapOnly: "bad/name"}, api.ErrInvalid},
		{"web", api.EndpointCreate{PID: 4242}, api.ErrInvalid}, // no such process
		{"web", api.EndpointCreate{PID: -1}, api.ErrInvalid},
		{"web", api.EndpointCreate{PID: 1, NetNS: "/run/netns/a"}, api.ErrInvalid},
		{"web", api.EndpointCreate{NetNS: "run/netns/a"}, api.ErrInvalid},
		{"web", api.EndpointCreate{NetNS: attachtest.SelfNetNS}, api.ErrInvalid}, // the daemon's own
	}
	for _, r := range refused {
		if _, err := e.d.Connect(context.Background(), r.network, r.req); !errors.Is(err, r.kind) {
			t.Errorf("connect %+v: %v, want %v", r.req, err, r.kind)
		}
	}
	e.att.Fail(attachtest.StepOpenVM, errInjected)
	if _, err := e.d.Connect(context.Background(), "web", api.EndpointCreate{TapOnly: "vm1"}); !errors.Is(err, errInjected) {
		t.Errorf("connect with a failing OpenVM: %v", err)
	}
	if len(e.att.Devices()) != 1 {
		t.Errorf("devices after a failed VM connect: %+v", e.att.Devices())
	}

	path := e.att.AddPID(4242)
	ep := e.connect("web", api.EndpointCreate{PID: 4242})
	if ep.Name != "pid4242" || ep.PID != 4242 || ep.NetNS != path || ep.IfName != "eth0" {
		t.Errorf("PID endpoint %+v", ep)
	}
	// The same namespace on a second network: the next free interface.
	if ep := e.connect("db", api.EndpointCreate{PID: 4242}); ep.IfName != "eth1" {
		t.Errorf("second network's interface %s, want eth1", ep.IfName)
	}
	if err := e.d.Disconnect(context.Background(), "web", "vm0"); err != nil {
		t.Fatal(err)
	}
	if e.att.Port("", "vm0") != nil || len(e.att.Devices()) != 2 {
		t.Errorf("devices after the VM's disconnect: %+v", e.att.Devices())
	}
}

// --write-resolv-conf for a process: written inside its root, put back on
// disconnect, but never into a process that has reused the PID; refused
// for a process in the daemon's own mount namespace.
func TestResolvConfOfProcess(t *testing.T) {
	e := newEnv(t)
	e.createNetwork(api.NetworkCreate{Name: "web", Subnet: "10.7.0.0/24"})
	e.createNetwork(api.NetworkCreate{Name: "db", Subnet: "10.9.0.0/24"})
	const inRoot = "/proc/4242/root/etc/resolv.conf"
	e.att.AddPID(4242)
	ep := e.connect("web", api.EndpointCreate{PID: 4242, WriteResolvConf: true})
	if _, ok := e.att.File(inRoot); !ok || ep.ResolvConf != inRoot {
		t.Fatalf("resolv.conf %q written: %v", ep.ResolvConf, ok)
	}
	if err := e.d.Disconnect(context.Background(), "web", ep.Name); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.att.File(inRoot); ok {
		t.Error("the process's resolv.conf was not put back")
	}

	e.connect("db", api.EndpointCreate{PID: 4242, WriteResolvConf: true})
	e.att.AddPID(4242) // the process died and its PID went to another
	if err := e.d.Disconnect(context.Background(), "db", ep.Name); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.att.File(inRoot); !ok {
		t.Error("the resolv.conf of a process that reused the PID was touched")
	}

	e.att.AddPID(77)
	e.att.ShareMountNS(77)
	_, err := e.d.Connect(context.Background(), "web", api.EndpointCreate{PID: 77, WriteResolvConf: true})
	if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "mount namespace") {
		t.Errorf("resolv.conf of a process in the daemon's mount namespace: %v, want invalid", err)
	}
	e.att.AddNetNS("/proc/1/ns/net")
	_, err = e.d.Connect(context.Background(), "web", api.EndpointCreate{NetNS: "/proc/1/ns/net", WriteResolvConf: true})
	if !errors.Is(err, api.ErrInvalid) {
		t.Errorf("resolv.conf of a namespace without a name: %v, want invalid", err)
	}
	if e.att.Files() != 1 || len(e.att.Devices()) != 0 {
		t.Errorf("refused connects left files (%d) or devices (%+v)", e.att.Files(), e.att.Devices())
	}
}
