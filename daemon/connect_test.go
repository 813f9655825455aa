package daemon

import (
	"context"
	"errors"
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
	if ep.Network != want.Network || ep.Name != want.Name || ep.NetNS != want.NetNS || ep.IfName != want.IfName ||
		ep.MAC != want.MAC || ep.Address != want.Address || ep.Gateway != want.Gateway || ep.Kind != want.Kind {
		t.Errorf("connect answered %+v, want %+v", ep, want)
	}
	devs := e.att.Devices()
	if len(devs) != 1 || devs[0].NetNS != "/run/netns/a" || devs[0].Name != "eth1" {
		t.Fatalf("devices %+v, want eth1 in /run/netns/a", devs)
	}
	cfg := devs[0].Config
	if cfg.MTU != 1400 || cfg.MAC.String() != want.MAC || len(cfg.Addrs) != 1 || cfg.Addrs[0] != want.Address ||
		cfg.Gateway != want.Gateway || !cfg.Configure || cfg.Existing {
		t.Errorf("device opened with %+v", cfg)
	}
	if got := e.addrOwner("web", want.Address.Addr()); got != "a" {
		t.Errorf("address owner %q, want a", got)
	}
	if recs := e.storedEndpoints(); len(recs) != 1 || recs[0].Key() != "web/a" {
		t.Errorf("stored endpoints %+v, want web/a", recs)
	}
	if eps, err := e.d.Endpoints("web"); err != nil || len(eps) != 1 || eps[0].Name != "a" || eps[0].Aliases[0] != "db" {
		t.Errorf("endpoints %+v, %v", eps, err)
	}
	if n, _ := e.d.Network("web"); n.Endpoints != 1 || n.DNS == nil || n.DNS.Names != 2 {
		t.Errorf("network after connect: %d endpoints, DNS %+v; want 1 and 2 names (a, db)", n.Endpoints, n.DNS)
	}
	if got := e.switchPorts("web"); got != 2 {
		t.Errorf("%d ports on the switch, want the gateway and the endpoint", got)
	}

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
