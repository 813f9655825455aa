package daemon

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/testing/attachtest"
)

// hostPorts returns the host ports endpoint key publishes, by container
// port.
func (e *testEnv) hostPorts(key string) map[uint16]uint16 {
	e.t.Helper()
	bs, err := e.d.Ports(key)
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[uint16]uint16{}
	for _, b := range bs {
		out[b.ContainerPort] = b.HostPort
	}
	return out
}

// restoreCase is the state TestRestore restarts a daemon on: a, b, c, d
// and vm0 come back; "gone", "reused" and "broken" do not.
type restoreCase struct {
	a, b, c, d, vm api.Endpoint
	fixed          uint16            // a's fixed host port (container port 81)
	portsA, portsB map[uint16]uint16 // host ports by container port
	portsC         map[uint16]uint16 // c's: the first port of a range
	portsD         map[uint16]uint16 // d's: -P of --expose 90
}

// A new daemon on the same state brings every endpoint back on its
// device, with its address, its MAC and its published ports on the same
// host ports (ephemeral ones too, unless taken meanwhile); it drops the
// endpoints whose namespace is gone or whose device cannot be re-attached.
func TestRestore(t *testing.T) {
	e := newEnv(t)
	rc := e.connectForRestore()
	if err := e.d.Close(); err != nil {
		t.Fatal(err)
	}
	if e.att.OpenPorts() != 0 || len(e.att.Devices()) != 8 {
		t.Fatalf("after Close: %d ports open, devices %+v; want none open, all 8 kept", e.att.OpenPorts(), e.att.Devices())
	}
	e.att.DeleteNetNS("/run/netns/gone")
	e.att.AddNetNS("/run/netns/reused") // the path now names another namespace
	e.att.FailIn(attachtest.StepOpen, "/run/netns/broken", errInjected)
	taken, err := net.Listen("tcp", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), rc.portsB[80]).String())
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	e.start()

	e.checkRestoredEndpoints(rc)
	e.checkRestoredDevices(rc)
	e.checkRestoredPorts(rc)
	// The addresses of the dropped endpoints are free again.
	for _, name := range []string{"gone", "reused", "broken"} {
		e.att.AddNetNS("/run/netns/x" + name)
		e.connect("web", api.EndpointCreate{NetNS: "/run/netns/x" + name})
	}
	if eps, _ := e.d.Endpoints("web"); len(eps) != 8 {
		t.Errorf("%d endpoints, want 8", len(eps))
	}
}

// connectForRestore connects the endpoints TestRestore restarts with.
func (e *testEnv) connectForRestore() restoreCase {
	t := e.t
	e.createNetwork(api.NetworkCreate{Name: "web", Subnet: "10.7.0.0/24"})
	for _, ns := range []string{"a", "b", "c", "d", "gone", "reused", "broken"} {
		e.att.AddNetNS("/run/netns/" + ns)
	}
	var rc restoreCase
	rc.fixed = freePorts(t, 1)[0]
	// An ephemeral port taken and given back first: a new daemon's first
	// ephemeral port is not the one a had.
	e.att.AddNetNS("/run/netns/first")
	first := e.connect("web", api.EndpointCreate{NetNS: "/run/netns/first", Publish: []string{"127.0.0.1::80"}})
	if err := e.d.Disconnect(context.Background(), "web", "first"); err != nil {
		t.Fatal(err)
	}
	// c takes that port back through a range that starts at it. At the
	// restart b, whose own port is taken, needs a fresh ephemeral port:
	// the lowest free one, c's, were c not given its own first.
	low := int(first.Ports[0].HostPort)
	rc.c = e.connect("web", api.EndpointCreate{NetNS: "/run/netns/c",
		Publish: []string{"127.0.0.1:" + strconv.Itoa(low) + "-" + strconv.Itoa(low+9) + ":80"}})
	rc.portsC = e.hostPorts("web/c")
	rc.a = e.connect("web", api.EndpointCreate{NetNS: "/run/netns/a", MAC: "52:54:00:00:00:0a",
		Publish: []string{"127.0.0.1::80", "127.0.0.1:" + strconv.Itoa(int(rc.fixed)) + ":81"}})
	rc.b = e.connect("web", api.EndpointCreate{NetNS: "/run/netns/b", Publish: []string{"127.0.0.1::80"}})
	rc.d = e.connect("web", api.EndpointCreate{NetNS: "/run/netns/d", DHCP: true, Expose: []string{"90"}, PublishAll: true})
	rc.vm = e.connect("web", api.EndpointCreate{TapOnly: "vm0"})
	for _, ns := range []string{"gone", "reused", "broken"} {
		e.connect("web", api.EndpointCreate{NetNS: "/run/netns/" + ns})
	}
	rc.portsA, rc.portsB, rc.portsD = e.hostPorts("web/a"), e.hostPorts("web/b"), e.hostPorts("web/d")
	if rc.portsA[81] != rc.fixed || rc.portsA[80] == 0 || rc.portsB[80] == 0 || rc.portsD[90] == 0 {
		t.Fatalf("published ports %v, %v and %v", rc.portsA, rc.portsB, rc.portsD)
	}
	return rc
}

// checkRestoredEndpoints checks that a, b, d and vm0 are back as they
// were, and the others are gone from the daemon and its state.
func (e *testEnv) checkRestoredEndpoints(rc restoreCase) {
	t := e.t
	eps, err := e.d.Endpoints("web")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]endpointKey{}
	for _, ep := range eps {
		got[ep.Name] = keyOf(ep)
	}
	want := map[string]endpointKey{}
	for _, ep := range []api.Endpoint{rc.a, rc.b, rc.c, rc.d, rc.vm} {
		want[ep.Name] = keyOf(ep)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("restored %v\nwant     %v", got, want)
	}
	if recs := e.storedEndpoints(); len(recs) != 5 {
		t.Errorf("%d endpoints stored, want the 5 restored", len(recs))
	}
}

// checkRestoredDevices checks that devices were re-attached, not made
// again, and the one that failed to re-attach was deleted.
func (e *testEnv) checkRestoredDevices(rc restoreCase) {
	t := e.t
	for _, dev := range e.att.Devices() {
		if dev.NetNS == "/run/netns/broken" {
			t.Errorf("the device of an endpoint that failed to restore is left: %+v", dev)
		}
		if dev.Opens != 2 || !dev.Config.Existing {
			t.Errorf("device %s %s opened %d times (last %+v), want re-attached", dev.NetNS, dev.Name, dev.Opens, dev.Config)
		}
	}
	for _, dev := range e.att.Devices() {
		switch dev.NetNS {
		case "/run/netns/a":
			if !dev.Config.Configure || dev.Config.Addrs[0] != rc.a.Address {
				t.Errorf("a re-attached with %+v", dev.Config)
			}
		case "/run/netns/d":
			if dev.Config.Configure || len(dev.Config.Addrs) != 0 {
				t.Errorf("the DHCP endpoint re-attached with %+v; want the device taken as it is", dev.Config)
			}
		}
	}
}

// checkRestoredPorts checks a's ports are on the same host ports, the
// ephemeral one too, d's -P port too, and b's, whose port was taken, on
// another.
func (e *testEnv) checkRestoredPorts(rc restoreCase) {
	t := e.t
	if now := e.hostPorts("web/a"); now[80] != rc.portsA[80] || now[81] != rc.fixed {
		t.Errorf("a's ports after restart %v, want %v", now, rc.portsA)
	}
	if now := e.hostPorts("web/c"); now[80] != rc.portsC[80] {
		t.Errorf("c's port after restart %v, want %v: another endpoint's fresh port took it", now, rc.portsC)
	}
	if now := e.hostPorts("web/d"); now[90] != rc.portsD[90] {
		t.Errorf("d's -P port after restart %v, want %v", now, rc.portsD)
	}
	if now := e.hostPorts("web/b"); now[80] == 0 || now[80] == rc.portsB[80] {
		t.Errorf("b's port after restart %v; want another than the taken %d", now, rc.portsB[80])
	}
	if bindable(rc.portsA[80]) || bindable(rc.fixed) {
		t.Error("a restored port is not bound")
	}
}

// waitEndpoints waits until network has n endpoints and none being
// connected or removed.
func (e *testEnv) waitEndpoints(network string, n int) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		eps, err := e.d.Endpoints(network)
		if err != nil {
			e.t.Fatal(err)
		}
		e.d.mu.Lock()
		pending := len(e.d.networks[network].pending)
		e.d.mu.Unlock()
		if len(eps) == n && pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%d endpoints in %s, want %d", len(eps), network, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// An endpoint whose namespace is deleted, or whose device disappears, is
// removed: its record, its address and its ports go.
func TestEndpointGone(t *testing.T) {
	e := newEnv(t)
	e.createNetwork(api.NetworkCreate{Name: "web", Subnet: "10.7.0.0/24"})
	e.att.AddNetNS("/run/netns/a")
	e.att.AddNetNS("/run/netns/b")
	port := freePorts(t, 1)[0]
	a := e.connect("web", api.EndpointCreate{NetNS: "/run/netns/a", Publish: []string{"127.0.0.1:" + strconv.Itoa(int(port)) + ":80"}})
	b := e.connect("web", api.EndpointCreate{NetNS: "/run/netns/b"})

	e.att.DeleteNetNS("/run/netns/a")
	e.waitEndpoints("web", 1)
	if !bindable(port) {
		t.Error("the gone endpoint's port is still bound")
	}
	if owner := e.addrOwner("web", a.Address.Addr()); owner != "" {
		t.Errorf("the gone endpoint's address is held by %q", owner)
	}

	e.att.Port("/run/netns/b", b.IfName).Gone()
	e.waitEndpoints("web", 0)
	if recs := e.storedEndpoints(); len(recs) != 0 {
		t.Errorf("stored endpoints %+v, want none", recs)
	}
	if e.att.OpenPorts() != 0 {
		t.Errorf("%d ports open, want none", e.att.OpenPorts())
	}
}
