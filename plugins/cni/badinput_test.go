package cni

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/switchyard-net/switchyard/daemon/api"
)

// Each bad input gets one CNI error with the spec's code and a message
// naming the input, and leaves nothing attached: no endpoint, no port,
// no device, no network the ADD created.
func TestBadInput(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.client.CreateNetwork(ctx, api.NetworkCreate{Name: "have", Subnet: "10.99.60.0/24"}); err != nil {
		t.Fatal(err)
	}
	// 10.99.60.2 is taken by an endpoint of the CLI's.
	if _, err := e.client.Connect(ctx, "have", api.EndpointCreate{NetNS: e.netns("taken"), Name: "taken"}); err != nil {
		t.Fatal(err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port

	ns := e.netns("c")
	cases := []struct {
		name            string
		network, subnet string
		args            [][2]string
		caps            map[string]any
		netns           string
		code            uint
		msg             string
	}{
		{name: "bad subnet", network: "new1", subnet: "10.99.61.0/33", code: types.ErrInvalidNetworkConfig, msg: `subnet "10.99.61.0/33"`},
		{name: "subnet with host bits", network: "new1", subnet: "10.99.61.5/24", code: types.ErrInvalidNetworkConfig, msg: "10.99.61.0/24"},
		{name: "unknown network, no subnet", network: "nosuch", code: types.ErrInvalidNetworkConfig, msg: `network "nosuch" does not exist`},
		{name: "subnet disagrees", network: "have", subnet: "10.99.62.0/24", code: types.ErrInvalidNetworkConfig, msg: "exists with subnet 10.99.60.0/24"},
		{name: "IP outside subnet", network: "have", args: [][2]string{{"IP", "10.98.0.7"}}, code: types.ErrInvalidNetworkConfig, msg: "10.98.0.7"},
		{name: "IP outside a new network", network: "new2", subnet: "10.99.63.0/24", args: [][2]string{{"IP", "10.98.0.7"}}, code: types.ErrInvalidNetworkConfig, msg: "10.98.0.7"},
		{name: "IP in use", network: "have", args: [][2]string{{"IP", "10.99.60.2"}}, code: CodeInUse, msg: "10.99.60.2"},
		{name: "IP not an address", network: "have", args: [][2]string{{"IP", "ten"}}, code: types.ErrInvalidNetworkConfig, msg: "IP=ten"},
		{name: "IP and ips disagree", network: "have", args: [][2]string{{"IP", "10.99.60.9"}}, caps: map[string]any{"ips": []string{"10.99.60.8/24"}}, code: types.ErrInvalidNetworkConfig, msg: "disagrees"},
		{name: "unknown CNI_ARGS", network: "have", args: [][2]string{{"FOO", "1"}}, code: types.ErrInvalidEnvironmentVariables, msg: "FOO=1"},
		{name: "host port in use", network: "have", caps: map[string]any{"portMappings": []map[string]any{{"hostPort": busyPort, "containerPort": 80, "hostIP": "127.0.0.1"}}}, code: CodeInUse, msg: strconv.Itoa(busyPort)},
		{name: "bad protocol", network: "have", caps: map[string]any{"portMappings": []map[string]any{{"hostPort": 18099, "containerPort": 80, "protocol": "sctp"}}}, code: types.ErrInvalidNetworkConfig, msg: `protocol "sctp"`},
		{name: "netns missing", network: "have", netns: "/run/netns/switchyard-cni-test-none", code: types.ErrInvalidNetNS, msg: "/run/netns/switchyard-cni-test-none"},
		{name: "netns missing, new network", network: "new3", subnet: "10.99.64.0/24", netns: "/run/netns/switchyard-cni-test-none", code: types.ErrInvalidNetNS, msg: "/run/netns/switchyard-cni-test-none"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			list := e.conflist("1.1.0", tc.network, tc.subnet)
			rt := &libcni.RuntimeConf{ContainerID: "bad", NetNS: ns, IfName: "eth0", Args: tc.args, CapabilityArgs: tc.caps}
			if tc.netns != "" {
				rt.NetNS = tc.netns
			}
			_, err := e.cni.AddNetworkList(ctx, list, rt)
			if err == nil {
				t.Fatal("ADD succeeded")
			}
			if code := cniCode(t, err); code != tc.code {
				t.Errorf("code %d, want %d: %v", code, tc.code, err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not name %q", err, tc.msg)
			}
			eps := e.endpoints("")
			if len(eps) != 1 || eps[0].Name != "taken" {
				t.Errorf("endpoints after a failed ADD: %+v, want only taken", eps)
			}
			if ps := e.ports(); len(ps) != 0 {
				t.Errorf("ports after a failed ADD: %+v", ps)
			}
			if devs := e.att.Devices(); len(devs) != 1 {
				t.Errorf("devices after a failed ADD: %+v, want taken's", devs)
			}
			nets, err := e.client.Networks(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(nets) != 1 || nets[0].Name != "have" {
				t.Errorf("networks after a failed ADD: %d, want only have", len(nets))
			}
		})
	}
}

// With the daemon down, ADD, DEL and GC say "try again later" (11) and
// STATUS "not available" (50); back up, DEL of what the daemon no longer
// knows succeeds.
func TestDaemonDown(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	list := e.conflist("1.1.0", "down", "10.99.70.0/24")
	rt := &libcni.RuntimeConf{ContainerID: "down1", NetNS: e.netns("down1"), IfName: "eth0"}
	if _, err := e.cni.AddNetworkList(ctx, list, rt); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	e.stopServing()
	rt2 := &libcni.RuntimeConf{ContainerID: "down2", NetNS: e.netns("down2"), IfName: "eth0"}
	for _, c := range []struct {
		cmd  string
		err  error
		code uint
	}{
		{"ADD", func() error { _, err := e.cni.AddNetworkList(ctx, list, rt2); return err }(), types.ErrTryAgainLater},
		{"DEL", e.cni.DelNetworkList(ctx, list, rt), types.ErrTryAgainLater},
		{"GC", e.cni.GCNetworkList(ctx, list, &libcni.GCArgs{}), types.ErrTryAgainLater},
		{"STATUS", e.cni.GetStatusNetworkList(ctx, list), types.ErrPluginNotAvailable},
	} {
		if c.err == nil {
			t.Errorf("%s with the daemon down succeeded", c.cmd)
			continue
		}
		if code := cniCode(t, c.err); code != c.code {
			t.Errorf("%s: code %d, want %d: %v", c.cmd, code, c.code, c.err)
		}
		if !strings.Contains(c.err.Error(), e.socket) {
			t.Errorf("%s: %q does not name the socket %s", c.cmd, c.err, e.socket)
		}
	}
	e.serve()
	if n := len(e.endpoints("")); n != 1 {
		t.Errorf("%d endpoints after the failed commands, want 1", n)
	}
	// The daemon dropped the endpoint meanwhile (its namespace went):
	// DEL still succeeds.
	if err := e.client.Disconnect(ctx, "down", e.endpoints("")[0].Name); err != nil {
		t.Fatal(err)
	}
	if err := e.cni.DelNetworkList(ctx, list, rt); err != nil {
		t.Errorf("DEL of an endpoint the daemon no longer has: %v", err)
	}
	// A network that is gone: DEL succeeds too.
	if err := e.client.RemoveNetwork(ctx, "down"); err != nil {
		t.Fatal(err)
	}
	if err := e.cni.DelNetworkList(ctx, list, rt); err != nil {
		t.Errorf("DEL on a removed network: %v", err)
	}
}

// STATUS fails (50) for an absent network the config cannot create.
func TestStatusNoNetwork(t *testing.T) {
	e := newEnv(t)
	err := e.cni.GetStatusNetworkList(context.Background(), e.conflist("1.1.0", "absent", ""))
	if err == nil {
		t.Fatal("STATUS succeeded")
	}
	if code := cniCode(t, err); code != types.ErrPluginNotAvailable {
		t.Errorf("code %d, want 50: %v", code, err)
	}
	if err := e.cni.GetStatusNetworkList(context.Background(), e.conflist("1.1.0", "absent", "10.99.71.0/24")); err != nil {
		t.Errorf("STATUS with a subnet to create the network: %v", err)
	}
}

// A daemon restarted between ADD and DEL restores the endpoint with its
// runtime identity: DEL finds it and frees its address and port.
func TestDelAfterDaemonRestart(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	list := e.conflist("1.1.0", "restart", "10.99.72.0/24")
	hostPort := freePort(t)
	rt := &libcni.RuntimeConf{ContainerID: "r1", NetNS: e.netns("r1"), IfName: "eth0",
		CapabilityArgs: map[string]any{"portMappings": []map[string]any{{"hostPort": hostPort, "containerPort": 80, "hostIP": "127.0.0.1"}}}}
	if _, err := e.cni.AddNetworkList(ctx, list, rt); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	e.restart()
	eps := e.endpoints("restart")
	if len(eps) != 1 || eps[0].ContainerID != "r1" || eps[0].Runtime != Runtime {
		t.Fatalf("after the restart: %+v, want r1's endpoint with its identity", eps)
	}
	if err := e.cni.DelNetworkList(ctx, list, rt); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	e.nothingLeft()
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("stdout closed") }

// An ADD whose result cannot be written takes its endpoint back: the
// runtime never learns of it, so nothing else would.
func TestAddUnwrittenResult(t *testing.T) {
	e := newEnv(t)
	if _, err := e.client.CreateNetwork(context.Background(), api.NetworkCreate{Name: "w", Subnet: "10.99.73.0/24"}); err != nil {
		t.Fatal(err)
	}
	p := &Plugin{Dial: func(string) Daemon { return e.client }, Stdout: failingWriter{}}
	err := p.Add(&skel.CmdArgs{ContainerID: "w1", Netns: e.netns("w1"), IfName: "eth0",
		StdinData: []byte(`{"cniVersion": "1.0.0", "name": "w", "type": "switchyard"}`)})
	if err == nil {
		t.Fatal("ADD succeeded")
	}
	if code := cniCode(t, err); code != types.ErrIOFailure || !strings.Contains(err.Error(), "stdout closed") {
		t.Errorf("code %d, %v; want 5 naming the write error", code, err)
	}
	e.nothingLeft()
}
