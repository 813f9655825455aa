package cni

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/switchyard-net/switchyard/daemon/api"
)

// One ADD, CHECK, STATUS, DEL (and GC from 1.1.0) for each spec version,
// through libcni executing the plugin as a runtime does.
func TestLifecycleEachVersion(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for i, v := range []string{"0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		t.Run(v, func(t *testing.T) {
			e.t = t
			network := "net" + strconv.Itoa(i)
			subnet := fmt.Sprintf("10.99.%d.0/24", i)
			list := e.conflist(v, network, subnet)
			hostPort := freePort(t)
			rt := &libcni.RuntimeConf{
				ContainerID: "c0ffee" + strconv.Itoa(i),
				NetNS:       e.netns("web" + strconv.Itoa(i)),
				IfName:      "eth0",
				Args:        [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAME", "web" + strconv.Itoa(i)}, {"K8S_POD_NAMESPACE", "default"}},
				CapabilityArgs: map[string]any{"portMappings": []map[string]any{
					{"hostPort": hostPort, "containerPort": 80, "protocol": "tcp", "hostIP": "127.0.0.1"}}},
			}
			raw, err := e.cni.AddNetworkList(ctx, list, rt)
			if err != nil {
				t.Fatalf("ADD: %v", err)
			}
			if raw.Version() != v {
				t.Errorf("result version %s, want %s", raw.Version(), v)
			}
			res, err := types100.NewResultFromResult(raw)
			if err != nil {
				t.Fatal(err)
			}
			wantIP := fmt.Sprintf("10.99.%d.2/24", i)
			wantGW := fmt.Sprintf("10.99.%d.1", i)
			if len(res.IPs) != 1 || res.IPs[0].Address.String() != wantIP || res.IPs[0].Gateway.String() != wantGW {
				t.Errorf("ips %v, want %s via %s", res.IPs, wantIP, wantGW)
			}
			if len(res.Interfaces) != 1 || res.Interfaces[0].Name != "eth0" || res.Interfaces[0].Sandbox != rt.NetNS || res.Interfaces[0].Mac == "" {
				t.Errorf("interfaces %v, want eth0 in %s with a MAC", res.Interfaces, rt.NetNS)
			}
			if len(res.Routes) != 1 || res.Routes[0].Dst.String() != "0.0.0.0/0" || res.Routes[0].GW.String() != wantGW {
				t.Errorf("routes %v, want default via %s", res.Routes, wantGW)
			}
			if len(res.DNS.Nameservers) != 1 || res.DNS.Nameservers[0] != wantGW {
				t.Errorf("dns %v, want nameserver %s", res.DNS, wantGW)
			}

			eps := e.endpoints(network)
			if len(eps) != 1 {
				t.Fatalf("endpoints %+v, want one", eps)
			}
			ep := eps[0]
			if ep.Name != "web"+strconv.Itoa(i) || ep.ContainerID != rt.ContainerID || ep.Runtime != Runtime || ep.IfName != "eth0" || ep.NetNS != rt.NetNS {
				t.Errorf("endpoint %+v: want name web%d, container %s, runtime cni, eth0 in %s", ep, i, rt.ContainerID, rt.NetNS)
			}
			ps := e.ports()
			if len(ps) != 1 || int(ps[0].HostPort) != hostPort || ps[0].ContainerPort != 80 || ps[0].HostIP.String() != "127.0.0.1" {
				t.Errorf("ports %+v, want 127.0.0.1:%d -> 80", ps, hostPort)
			}
			// The host port is really bound.
			if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(hostPort)); err != nil {
				t.Errorf("published port: %v", err)
			} else {
				c.Close()
			}

			if v != "0.3.1" {
				e.linkFile(rt.NetNS, "eth0", nil)
				if err := e.cni.CheckNetworkList(ctx, list, rt); err != nil {
					t.Errorf("CHECK: %v", err)
				}
				// Someone removed the address in the container.
				e.linkFile(rt.NetNS, "eth0", func(l *Link) { l.Addrs = nil })
				if err := e.cni.CheckNetworkList(ctx, list, rt); err == nil || !strings.Contains(err.Error(), "lacks address "+wantIP) {
					t.Errorf("CHECK of an interface without its address: %v", err)
				}
				e.linkFile(rt.NetNS, "eth0", func(l *Link) { l.Routes = nil })
				if err := e.cni.CheckNetworkList(ctx, list, rt); err == nil || !strings.Contains(err.Error(), "lacks route 0.0.0.0/0") {
					t.Errorf("CHECK of a namespace without its default route: %v", err)
				}
				e.linkFile(rt.NetNS, "eth0", func(l *Link) { l.MAC = "02:00:00:00:00:99" })
				if err := e.cni.CheckNetworkList(ctx, list, rt); err == nil || !strings.Contains(err.Error(), "02:00:00:00:00:99") {
					t.Errorf("CHECK of an interface with another MAC: %v", err)
				}
			}
			if v == "1.1.0" {
				if err := e.cni.GetStatusNetworkList(ctx, list); err != nil {
					t.Errorf("STATUS: %v", err)
				}
				// The attachment is valid: GC keeps it.
				if err := e.cni.GCNetworkList(ctx, list, &libcni.GCArgs{ValidAttachments: []types.GCAttachment{{ContainerID: rt.ContainerID, IfName: "eth0"}}}); err != nil {
					t.Fatalf("GC: %v", err)
				}
				if n := len(e.endpoints(network)); n != 1 {
					t.Errorf("GC of a valid attachment left %d endpoints, want 1", n)
				}
			}
			if err := e.cni.DelNetworkList(ctx, list, rt); err != nil {
				t.Fatalf("DEL: %v", err)
			}
			e.nothingLeft()
			if owner := ownerOf(t, e, network, wantIP); owner != "" {
				t.Errorf("address %s still held by %s", wantIP, owner)
			}
			// DEL again: the container is unknown now, and that is success.
			if err := e.cni.DelNetworkList(ctx, list, rt); err != nil {
				t.Errorf("second DEL: %v", err)
			}
		})
	}
}

// ownerOf asks for the address by connecting a probe endpoint with it:
// a conflict means someone holds it.
func ownerOf(t *testing.T, e *env, network, prefix string) string {
	t.Helper()
	ip, _, _ := net.ParseCIDR(prefix)
	ns := e.netns("probe-" + network)
	ep, err := e.client.Connect(context.Background(), network, api.EndpointCreate{NetNS: ns, IP: ip.String(), Name: "probe"})
	if err != nil {
		return err.Error()
	}
	if err := e.client.Disconnect(context.Background(), network, ep.Name); err != nil {
		t.Fatal(err)
	}
	return ""
}

// GC removes the network's CNI endpoints that are not valid, and leaves
// the others and every endpoint another client made.
func TestGC(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	list := e.conflist("1.1.0", "gcnet", "10.99.50.0/24")
	// The ADDs' results are cached elsewhere (a runtime whose cache was
	// lost): libcni's GC then has no DEL to issue, and the plugin's GC
	// alone must find the stale endpoints.
	adder := libcni.NewCNIConfigWithCacheDir(e.cni.Path, t.TempDir(), nil)
	for i := range 3 {
		rt := &libcni.RuntimeConf{ContainerID: "gc" + strconv.Itoa(i), NetNS: e.netns("gc" + strconv.Itoa(i)), IfName: "eth0"}
		if _, err := adder.AddNetworkList(ctx, list, rt); err != nil {
			t.Fatalf("ADD %d: %v", i, err)
		}
	}
	// An endpoint of the CLI's on the same network is not the plugin's.
	if _, err := e.client.Connect(ctx, "gcnet", api.EndpointCreate{NetNS: e.netns("cli"), Name: "cli"}); err != nil {
		t.Fatal(err)
	}
	if err := e.cni.GCNetworkList(ctx, list, &libcni.GCArgs{ValidAttachments: []types.GCAttachment{{ContainerID: "gc1", IfName: "eth0"}}}); err != nil {
		t.Fatalf("GC: %v", err)
	}
	var names []string
	for _, ep := range e.endpoints("gcnet") {
		names = append(names, ep.Name+"/"+ep.ContainerID)
	}
	if fmt.Sprint(names) != "[cli/ cni-gc1-eth0/gc1]" {
		t.Errorf("after GC: %v, want [cli/ cni-gc1-eth0/gc1]", names)
	}
}

// A pod name that is not a DNS label, or is taken, gives way to a name
// derived from the container ID.
func TestEndpointNames(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	list := e.conflist("1.0.0", "names", "10.99.51.0/24")
	add := func(id, pod string) string {
		t.Helper()
		rt := &libcni.RuntimeConf{ContainerID: id, NetNS: e.netns(id), IfName: "eth0", Args: [][2]string{{"IgnoreUnknown", "true"}, {"K8S_POD_NAME", pod}}}
		if _, err := e.cni.AddNetworkList(ctx, list, rt); err != nil {
			t.Fatalf("ADD %s: %v", id, err)
		}
		for _, ep := range e.endpoints("names") {
			if ep.ContainerID == id {
				return ep.Name
			}
		}
		t.Fatalf("no endpoint of %s", id)
		return ""
	}
	if n := add("0123456789abcdef", "db"); n != "db" {
		t.Errorf("name %q, want db", n)
	}
	if n := add("fedcba9876543210", "db"); n != "cni-fedcba987654-eth0" {
		t.Errorf("taken pod name: %q, want cni-fedcba987654-eth0", n)
	}
	if n := add("abc", "not_a.label"); n != "cni-abc-eth0" {
		t.Errorf("pod name not a label: %q, want cni-abc-eth0", n)
	}
}
