package daemon

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/switchyard-net/switchyard/daemon/api"
)

// A runtime's identity is stored with the endpoint, shown in its view and
// survives a restart: it is how a runtime plugin finds the endpoint again.
func TestRuntimeIdentity(t *testing.T) {
	e := newEnv(t)
	e.createNetwork(api.NetworkCreate{Name: "web", Subnet: "10.7.0.0/24"})
	e.att.AddNetNS("/run/netns/a")
	id := strings.Repeat("0123456789abcdef", 4)
	ep := e.connect("web", api.EndpointCreate{NetNS: "/run/netns/a", IfName: "eth0", ContainerID: id, Runtime: "cni"})
	if ep.ContainerID != id || ep.Runtime != "cni" || ep.Kind != "netns" {
		t.Fatalf("endpoint %+v: want container %s, runtime cni, kind netns", ep, id)
	}
	if recs := e.storedEndpoints(); len(recs) != 1 || recs[0].ContainerID != id || recs[0].Runtime != "cni" {
		t.Fatalf("stored %+v, want the runtime identity", recs)
	}
	if err := e.d.Close(); err != nil {
		t.Fatal(err)
	}
	e.start()
	eps, err := e.d.Endpoints("web")
	if err != nil {
		t.Fatal(err)
	}
	if len(eps) != 1 || eps[0].ContainerID != id || eps[0].Runtime != "cni" {
		t.Fatalf("after restart %+v, want the runtime identity back", eps)
	}
}

// Bad identities and handoff fields where they do not belong are refused,
// naming the field, and hold nothing.
func TestRuntimeIdentityRefused(t *testing.T) {
	e := newEnv(t)
	e.createNetwork(api.NetworkCreate{Name: "web", Subnet: "10.7.0.0/24"})
	e.att.AddNetNS("/run/netns/a")
	for _, tc := range []struct {
		req   api.EndpointCreate
		field string
	}{
		{api.EndpointCreate{NetNS: "/run/netns/a", ContainerID: "a/b"}, "container_id"},
		{api.EndpointCreate{NetNS: "/run/netns/a", ContainerID: strings.Repeat("a", 129)}, "container_id"},
		{api.EndpointCreate{NetNS: "/run/netns/a", Runtime: "Docker"}, "runtime"},
		{api.EndpointCreate{NetNS: "/run/netns/a", Handoff: true}, "handoff"},
		{api.EndpointCreate{NetNS: "/run/netns/a", Sandbox: "/run/netns/b"}, "sandbox"},
		{api.EndpointCreate{TapOnly: "vm0", Sandbox: "/run/netns/b"}, "sandbox"},
		{api.EndpointCreate{TapOnly: "sy0", Handoff: true, Sandbox: "relative"}, "sandbox"},
	} {
		_, err := e.d.Connect(context.Background(), "web", tc.req)
		var ve *api.ValidationError
		if !errors.As(err, &ve) || len(ve.Fields) != 1 || ve.Fields[0].Field != tc.field {
			t.Errorf("connect %+v: %v, want an error on field %q", tc.req, err, tc.field)
		}
	}
	if devs := e.att.Devices(); len(devs) != 0 {
		t.Errorf("devices left by refused connects: %+v", devs)
	}
	if owner := e.addrOwner("web", netip.MustParseAddr("10.7.0.2")); owner != "" {
		t.Errorf("10.7.0.2 held by %q after refused connects", owner)
	}
}

// A handoff TAP is made in the daemon's namespace with the endpoint's MAC
// and MTU only (the runtime moves and configures it), gets a static
// address, not DHCP, and is deleted on disconnect.
func TestHandoff(t *testing.T) {
	e := newEnv(t)
	e.createNetwork(api.NetworkCreate{Name: "web", Subnet: "10.7.0.0/24", MTU: 1400})
	ep := e.connect("web", api.EndpointCreate{TapOnly: "sy12ab", Handoff: true, Name: "c1", IP: "10.7.0.9",
		ContainerID: "12ab", Runtime: "docker", Sandbox: "/var/run/docker/netns/12ab"})
	if ep.Kind != "handoff" || ep.Name != "c1" || ep.IfName != "sy12ab" || ep.DHCP || ep.Address != netip.MustParsePrefix("10.7.0.9/24") || ep.Sandbox != "/var/run/docker/netns/12ab" {
		t.Fatalf("endpoint %+v: want a handoff endpoint c1 on sy12ab, 10.7.0.9/24, no DHCP, with its sandbox", ep)
	}
	devs := e.att.Devices()
	if len(devs) != 1 || devs[0].NetNS != "" || devs[0].Name != "sy12ab" {
		t.Fatalf("devices %+v, want sy12ab in the daemon's namespace", devs)
	}
	cfg := devs[0].Config
	if !cfg.Configure || !cfg.LinkOnly || cfg.MAC.String() != ep.MAC || cfg.MTU != 1400 || len(cfg.Addrs) != 0 || cfg.Gateway.IsValid() {
		t.Errorf("device config %+v: want MAC %s and MTU 1400 only", cfg, ep.MAC)
	}
	if err := e.d.Disconnect(context.Background(), "web", "c1"); err != nil {
		t.Fatal(err)
	}
	if devs := e.att.Devices(); len(devs) != 0 {
		t.Errorf("devices after disconnect: %+v", devs)
	}
	if owner := e.addrOwner("web", netip.MustParseAddr("10.7.0.9")); owner != "" {
		t.Errorf("10.7.0.9 still held by %q", owner)
	}
}

// After a restart, a handoff TAP still in the daemon's namespace is
// re-attached; one its runtime took away is dropped with its address,
// and no new device is made in its place.
func TestHandoffRestore(t *testing.T) {
	e := newEnv(t)
	e.createNetwork(api.NetworkCreate{Name: "web", Subnet: "10.7.0.0/24"})
	e.connect("web", api.EndpointCreate{TapOnly: "syhere", Handoff: true})
	e.connect("web", api.EndpointCreate{TapOnly: "sygone", Handoff: true})
	if err := e.d.Close(); err != nil {
		t.Fatal(err)
	}
	// The runtime moved sygone into its sandbox while the daemon was down.
	if err := e.att.Remove("", "sygone"); err != nil {
		t.Fatal(err)
	}
	e.start()
	eps, err := e.d.Endpoints("web")
	if err != nil {
		t.Fatal(err)
	}
	if len(eps) != 1 || eps[0].Name != "syhere" {
		t.Fatalf("restored %+v, want syhere only", eps)
	}
	for _, d := range e.att.Devices() {
		if d.Name == "sygone" {
			t.Errorf("restore made a new sygone in the daemon's namespace: %+v", d)
		}
	}
}
