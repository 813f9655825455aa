package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/testing/attachtest"
)

// Connect makes a device in the namespace, configured with the endpoint's
// address, MAC, MTU and gateway, records the endpoint and holds its
// address; Disconnect undoes each of these.
func TestConnectDisconnect(t *testing.T) {
	e := newEnv(t)
	e.createNetwork(api.NetworkCreate{Name: "web", Subnet: "10.7.0.0/24", MTU: 1400})
	e.att.AddNetNS("/run/netns/a")
	e.att.AddLink("/run/netns/a", "eth0") // taken: the endpoint gets eth1

	ep := e.connect("web", api.EndpointCreate{NetNS: "/run/netns/a", Aliases: []string{"db"}})
	want := api.Endpoint{Network: "web", Name: "a", NetNS: "/run/netns/a", IfName: "eth1", MAC: "02:42:0a:07:00:02",
		Address: netip.MustParsePrefix("10.7.0.2/24"), Gateway: netip.MustParseAddr("10.7.0.1"), Kind: "netns"}
	e.checkConnected(ep, want, 1400)

	// A second namespace gets the next address and eth0.
	e.att.AddNetNS("/run/netns/b")
	if ep := e.connect("web", api.EndpointCreate{NetNS: "/run/netns/b", Name: "bee"}); ep.Address.Addr() != netip.MustParseAddr("10.7.0.3") || ep.IfName != "eth0" {
		t.Errorf("second endpoint %s on %s, want 10.7.0.3 on eth0", ep.Address, ep.IfName)
	}

	if err := e.d.Disconnect(context.Background(), "web", "a"); err != nil {
		t.Fatal(err)
	}
	if devs := e.att.Devices(); len(devs) != 1 || devs[0].NetNS != "/run/netns/b" {
		t.Errorf("devices after disconnect %+v, want only b's", devs)
	}
	if got := e.addrOwner("web", want.Address.Addr()); got != "" {
		t.Errorf("address still held by %q", got)
	}
	if recs := e.storedEndpoints(); len(recs) != 1 || recs[0].Name != "bee" {
		t.Errorf("stored endpoints after disconnect %+v", recs)
	}
	if got := e.switchPorts("web"); got != 2 {
		t.Errorf("%d ports on the switch after disconnect, want 2", got)
	}
	if err := e.d.Disconnect(context.Background(), "web", "a"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("second disconnect: %v, want not found", err)
	}
	// The freed address is the lowest free one again.
	if ep := e.connect("web", api.EndpointCreate{NetNS: "/run/netns/a"}); ep.Address != want.Address {
		t.Errorf("reconnect got %s, want %s back", ep.Address, want.Address)
	}
}

// endpointKey is the part of an api.Endpoint connect decides.
type endpointKey struct {
	Network, Name, NetNS, IfName, MAC, Kind string
	Address                                 netip.Prefix
	Gateway                                 netip.Addr
}

func keyOf(ep api.Endpoint) endpointKey {
	return endpointKey{ep.Network, ep.Name, ep.NetNS, ep.IfName, ep.MAC, ep.Kind, ep.Address, ep.Gateway}
}

// deviceKey is the part of a device's configuration connect decides.
type deviceKey struct {
	NetNS, Name, MAC    string
	MTU                 int
	Addrs               string
	Gateway             netip.Addr
	Configure, Existing bool
}

func deviceOf(d attachtest.Device) deviceKey {
	c := d.Config
	return deviceKey{d.NetNS, d.Name, c.MAC.String(), c.MTU, fmt.Sprint(c.Addrs), c.Gateway, c.Configure, c.Existing}
}

// checkConnected checks what connecting ep, expected as want, made: its
// device, its address, its record, its names and its switch port.
func (e *testEnv) checkConnected(ep, want api.Endpoint, mtu int) {
	t := e.t
	t.Helper()
	if keyOf(ep) != keyOf(want) {
		t.Errorf("connect answered %+v, want %+v", keyOf(ep), keyOf(want))
	}
	wantDev := deviceKey{want.NetNS, want.IfName, want.MAC, mtu, fmt.Sprint([]netip.Prefix{want.Address}), want.Gateway, true, false}
	if devs := e.att.Devices(); len(devs) != 1 || deviceOf(devs[0]) != wantDev {
		t.Errorf("devices %+v, want one %+v", devs, wantDev)
	}
	if got := e.addrOwner(want.Network, want.Address.Addr()); got != want.Name {
		t.Errorf("address owner %q, want %s", got, want.Name)
	}
	if recs := e.storedEndpoints(); len(recs) != 1 || recs[0].Key() != want.Network+"/"+want.Name {
		t.Errorf("stored endpoints %+v, want %s/%s", recs, want.Network, want.Name)
	}
	if eps, err := e.d.Endpoints(want.Network); err != nil || len(eps) != 1 || fmt.Sprint(eps[0].Aliases) != "[db]" {
		t.Errorf("endpoints %+v, %v; want one with the alias db", eps, err)
	}
	if n, _ := e.d.Network(want.Network); n.Endpoints != 1 || n.DNS == nil || n.DNS.Names != 2 {
		t.Errorf("network after connect: %d endpoints, DNS %+v; want 1 and 2 names (a, db)", n.Endpoints, n.DNS)
	}
	if got := e.switchPorts(want.Network); got != 2 {
		t.Errorf("%d ports on the switch, want the gateway and the endpoint", got)
	}
}

// A failed Disconnect (the state file refuses) leaves the endpoint as it
// was.
func TestDisconnectStoreFailure(t *testing.T) {
	e := newEnv(t)
	e.createNetwork(api.NetworkCreate{Name: "web", Subnet: "10.7.0.0/24"})
	e.att.AddNetNS("/run/netns/a")
	e.connect("web", api.EndpointCreate{NetNS: "/run/netns/a"})
	e.store.failDelete()
	if err := e.d.Disconnect(context.Background(), "web", "a"); !errors.Is(err, errInjected) {
		t.Fatalf("disconnect: %v, want the store's error", err)
	}
	if eps, _ := e.d.Endpoints("web"); len(eps) != 1 {
		t.Errorf("%d endpoints after a failed disconnect, want 1", len(eps))
	}
	if len(e.att.Devices()) != 1 || e.att.OpenPorts() != 1 {
		t.Errorf("device gone after a failed disconnect: %+v", e.att.Devices())
	}
	if err := e.d.Disconnect(context.Background(), "web", "a"); err != nil {
		t.Fatalf("disconnect after the store recovered: %v", err)
	}
}

// connectState is what a connect may leave behind, for the rollback test.
type connectState struct {
	devices, openPorts, files, stored, endpoints, switchPorts int
	owner                                                     string
	hostPortsFree                                             bool
}

func (e *testEnv) connectState(addr netip.Addr, hostPorts []uint16) connectState {
	eps, _ := e.d.Endpoints("web")
	e.d.mu.Lock()
	pending := len(e.d.networks["web"].pending)
	e.d.mu.Unlock()
	if pending != 0 {
		e.t.Errorf("%d endpoints still pending", pending)
	}
	return connectState{
		devices: len(e.att.Devices()), openPorts: e.att.OpenPorts(), files: e.att.Files(), stored: len(e.storedEndpoints()),
		endpoints: len(eps), switchPorts: e.switchPorts("web"), owner: e.addrOwner("web", addr),
		hostPortsFree: bindable(hostPorts[0]) && bindable(hostPorts[1]),
	}
}

// armed is a failure set up: the error Connect must return (wrapped), if
// known, and how to take the set-up down.
type armed struct {
	err  error
	undo func()
}

// Every failure point of Connect leaves nothing behind: no address held,
// no device, no port on the switch, no host port bound, no record, no
// resolv.conf; and the same request succeeds afterwards.
func TestConnectRollback(t *testing.T) {
	addr := netip.MustParseAddr("10.7.0.9")
	cases := []struct {
		name string
		// arm sets the failure up.
		arm  func(e *testEnv, hostPorts []uint16) armed
		kind error // the API kind of the error, if any
	}{
		{name: "address in use", kind: api.ErrConflict, arm: func(e *testEnv, _ []uint16) armed {
			e.att.AddNetNS("/run/netns/other")
			e.connect("web", api.EndpointCreate{NetNS: "/run/netns/other", IP: addr.String()})
			return armed{undo: func() { e.d.Disconnect(context.Background(), "web", "other") }}
		}},
		{name: "write ahead", arm: func(e *testEnv, _ []uint16) armed {
			e.store.failPut(0)
			return armed{err: errInjected}
		}},
		{name: "open", arm: func(e *testEnv, _ []uint16) armed {
			e.att.Fail(attachtest.StepOpen, errInjected)
			return armed{err: errInjected}
		}},
		{name: "switch attach", arm: func(e *testEnv, _ []uint16) armed {
			e.att.Fail(attachtest.StepStart, errInjected)
			return armed{err: errInjected}
		}},
		{name: "write resolv.conf", arm: func(e *testEnv, _ []uint16) armed {
			e.att.Fail(attachtest.StepWriteResolvConf, errInjected)
			return armed{err: errInjected}
		}},
		{name: "record resolv.conf", arm: func(e *testEnv, _ []uint16) armed {
			e.store.failPut(1)
			return armed{err: errInjected}
		}},
		{name: "publish", kind: api.ErrConflict, arm: func(e *testEnv, hostPorts []uint16) armed {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(int(hostPorts[1])))
			if err != nil {
				e.t.Fatal(err)
			}
			return armed{undo: func() { l.Close() }}
		}},
		{name: "record ports", arm: func(e *testEnv, _ []uint16) armed {
			e.store.failPut(2)
			return armed{err: errInjected}
		}},
		{name: "cancelled", arm: func(e *testEnv, _ []uint16) armed {
			return armed{err: context.Canceled} // see below
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.createNetwork(api.NetworkCreate{Name: "web", Subnet: "10.7.0.0/24"})
			e.att.AddNetNS("/run/netns/a")
			hostPorts := freePorts(t, 2)
			before := e.connectState(addr, hostPorts)
			a := tc.arm(e, hostPorts)
			wantErr, undo := a.err, a.undo
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.name == "cancelled" {
				gate := e.att.Block(attachtest.StepOpen)
				go func() { <-gate.Entered; cancel() }()
			}
			req := api.EndpointCreate{NetNS: "/run/netns/a", IP: addr.String(), WriteResolvConf: true,
				Publish: []string{"127.0.0.1:" + strconv.Itoa(int(hostPorts[0])) + ":80", "127.0.0.1:" + strconv.Itoa(int(hostPorts[1])) + ":81"}}
			_, err := e.d.Connect(ctx, "web", req)
			if err == nil {
				t.Fatal("connect succeeded")
			}
			if wantErr != nil && !errors.Is(err, wantErr) {
				t.Errorf("connect: %v, want %v", err, wantErr)
			}
			if tc.kind != nil && !errors.Is(err, tc.kind) {
				t.Errorf("connect: %v, want kind %v", err, tc.kind)
			}
			if undo != nil {
				undo()
			}
			after := e.connectState(addr, hostPorts)
			if after != before {
				t.Errorf("after the failure %+v, before %+v", after, before)
			}
			ep, err := e.d.Connect(context.Background(), "web", req)
			if err != nil {
				t.Fatalf("the same connect afterwards: %v", err)
			}
			if ep.Address.Addr() != addr || len(ep.Ports) != 2 || ep.ResolvConf != "/etc/netns/a/resolv.conf" {
				t.Errorf("connect afterwards: %+v", ep)
			}
			if b, ok := e.att.File("/etc/netns/a/resolv.conf"); !ok || !strings.Contains(string(b), "nameserver 10.7.0.1\nsearch web\n") {
				t.Errorf("resolv.conf %q", b)
			}
		})
	}
}
