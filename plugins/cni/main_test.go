package cni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	"go.uber.org/zap/zaptest"

	"github.com/switchyard-net/switchyard/daemon"
	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/testing/attachtest"
)

// The test binary is also the plugin: libcni runs it as
// $CNI_PATH/switchyard with CNI_COMMAND set, as a runtime would.
//
// The namespaces are files, not namespaces (the daemon's Attacher is in
// memory): CHECK reads the interface from the file, as JSON of a Link,
// which the test writes from the Attacher's device (linkFile).
func TestMain(m *testing.M) {
	if os.Getenv("CNI_COMMAND") != "" {
		p := &Plugin{DefaultSocket: "/nonexistent/switchyard.sock", Inspect: readLinkFile}
		os.Exit(p.Main())
	}
	os.Exit(m.Run())
}

// env is a daemon on an in-memory Attacher, serving its API on a socket
// of its own, and a libcni client whose plugin path holds this binary
// as "switchyard".
type env struct {
	t      *testing.T
	dir    string
	socket string
	att    *attachtest.Attacher
	cfg    daemon.Config
	d      *daemon.Daemon
	client *api.Client
	cni    *libcni.CNIConfig
	stop   context.CancelFunc
	served chan error
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, dir: dir, socket: filepath.Join(dir, "run", "switchyard.sock"), att: attachtest.New()}
	resolv := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 127.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.cfg = daemon.Config{
		StateDir: filepath.Join(dir, "state"), Socket: e.socket, Logger: zaptest.NewLogger(t), Attacher: e.att,
		HostPrefixes:     func() ([]netip.Prefix, error) { return nil, nil },
		HostAddrs:        func() ([]netip.Addr, error) { return []netip.Addr{netip.MustParseAddr("192.0.2.10")}, nil },
		NoDefaultNetwork: true, ResolvConf: resolv, WatchInterval: 10 * time.Millisecond,
	}
	e.client = api.NewClient(e.socket)
	e.start()
	t.Cleanup(func() {
		e.stopServing()
		e.d.Close()
	})

	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(self, filepath.Join(bin, PluginType)); err != nil {
		t.Fatal(err)
	}
	e.cni = libcni.NewCNIConfigWithCacheDir([]string{bin}, filepath.Join(dir, "cache"), nil)
	return e
}

// start starts a daemon on the environment's state and serves it.
func (e *env) start() {
	e.t.Helper()
	d, err := daemon.New(e.cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.d = d
	e.serve()
}

// restart stops the daemon and starts another on its state, as after a
// crash or an upgrade.
func (e *env) restart() {
	e.t.Helper()
	e.stopServing()
	if err := e.d.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.start()
}

// serve serves the API until stopServing.
func (e *env) serve() {
	ctx, cancel := context.WithCancel(context.Background())
	e.stop, e.served = cancel, make(chan error, 1)
	go func() { e.served <- e.d.Serve(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := e.client.Version(context.Background()); err == nil {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("daemon did not answer on %s", e.socket)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (e *env) stopServing() {
	if e.stop == nil {
		return
	}
	e.stop()
	if err := <-e.served; err != nil {
		e.t.Errorf("serve: %v", err)
	}
	e.stop = nil
}

// netns makes a namespace the Attacher knows.
func (e *env) netns(name string) string {
	p := filepath.Join(e.dir, "netns-"+name)
	e.att.AddNetNS(p)
	return p
}

// linkFile writes, into the namespace's file, the interface the Attacher
// configured there, for CHECK to read (readLinkFile); edit changes it
// first.
func (e *env) linkFile(netns, ifName string, edit func(*Link)) {
	e.t.Helper()
	for _, d := range e.att.Devices() {
		if d.NetNS != netns || d.Name != ifName {
			continue
		}
		l := Link{MAC: d.Config.MAC.String(), Addrs: d.Config.Addrs,
			Routes: []Route{{Dst: netip.MustParsePrefix("0.0.0.0/0"), GW: d.Config.Gateway}}}
		if edit != nil {
			edit(&l)
		}
		b, err := json.Marshal(l)
		if err != nil {
			e.t.Fatal(err)
		}
		if err := os.WriteFile(netns, b, 0o644); err != nil {
			e.t.Fatal(err)
		}
		return
	}
	e.t.Fatalf("no device %s in %s", ifName, netns)
}

func readLinkFile(netns, ifName string) (Link, error) {
	b, err := os.ReadFile(netns)
	if err != nil {
		return Link{}, fmt.Errorf("%s: %w: %w", netns, errNoNetNS, err)
	}
	var l Link
	if err := json.Unmarshal(b, &l); err != nil {
		return Link{}, fmt.Errorf("interface %s in %s: %w", ifName, netns, err)
	}
	return l, nil
}

// conflist is a one-plugin list for cniVersion with extra plugin keys.
func (e *env) conflist(cniVersion, network, subnet string) *libcni.NetworkConfigList {
	e.t.Helper()
	sub := ""
	if subnet != "" {
		sub = fmt.Sprintf(`"subnet": %q,`, subnet)
	}
	raw := fmt.Sprintf(`{"cniVersion": %q, "name": "cni-%s", "plugins": [{"type": "switchyard", "network": %q, %s "socket": %q,
		"capabilities": {"portMappings": true, "ips": true, "mac": true}}]}`, cniVersion, network, network, sub, e.socket)
	l, err := libcni.NetworkConfFromBytes([]byte(raw))
	if err != nil {
		e.t.Fatalf("conflist %s: %v", raw, err)
	}
	return l
}

func (e *env) endpoints(network string) []api.Endpoint {
	e.t.Helper()
	eps, err := e.client.Endpoints(context.Background(), network)
	if err != nil && !errors.Is(err, api.ErrNotFound) {
		e.t.Fatal(err)
	}
	return eps
}

func (e *env) ports() []api.PortBinding {
	e.t.Helper()
	ps, err := e.client.Ports(context.Background(), "")
	if err != nil {
		e.t.Fatal(err)
	}
	return ps
}

// nothingLeft fails unless the daemon has no endpoint and no port, and
// the Attacher holds no device.
func (e *env) nothingLeft() {
	e.t.Helper()
	if eps := e.endpoints(""); len(eps) != 0 {
		e.t.Errorf("endpoints left: %+v", eps)
	}
	if ps := e.ports(); len(ps) != 0 {
		e.t.Errorf("ports left: %+v", ps)
	}
	if devs := e.att.Devices(); len(devs) != 0 {
		e.t.Errorf("devices left: %+v", devs)
	}
}

// cniCode returns the code of a CNI error, failing the test if err is
// not one.
func cniCode(t *testing.T, err error) uint {
	t.Helper()
	var ce *types.Error
	if !errors.As(err, &ce) {
		t.Fatalf("want a CNI error, got %v", err)
	}
	return ce.Code
}

// freePort returns a TCP port of 127.0.0.1 nobody listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
