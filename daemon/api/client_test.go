package api_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/switchyard-net/switchyard/daemon"
	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/testing/attachtest"
)

// serve serves h on a unix socket of its own and returns a client of it.
func serve(t *testing.T, h http.Handler) *api.Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "api.sock")
	l, err := daemon.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return api.NewClient(sock)
}

// newDaemon starts a daemon on an in-memory Attacher with one namespace,
// /run/netns/a, and returns a client of its API.
func newDaemon(t *testing.T) *api.Client {
	t.Helper()
	dir := t.TempDir()
	resolv := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 127.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	att := attachtest.New()
	att.AddNetNS("/run/netns/a")
	d, err := daemon.New(daemon.Config{
		StateDir: dir, Logger: zaptest.NewLogger(t), Attacher: att, NoDefaultNetwork: true, ResolvConf: resolv,
		HostPrefixes: func() ([]netip.Prefix, error) { return nil, nil },
		HostAddrs:    func() ([]netip.Addr, error) { return nil, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return serve(t, d.Handler())
}

// checks returns the test's assertions on a call's error: must (none)
// and kind (one of the daemon's kinds).
func checks(t *testing.T) (must func(string, error), kind func(string, error, error)) {
	must = func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	kind = func(what string, err, want error) {
		t.Helper()
		if !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", what, err, want)
		}
	}
	return must, kind
}

// The client's network calls against a daemon: answers decoded, errors
// of the daemon's kind with its message.
func TestClientNetworks(t *testing.T) {
	c := newDaemon(t)
	ctx := context.Background()
	must, kind := checks(t)

	v, err := c.Version(ctx)
	must("version", err)
	if v.Version != daemon.Version || v.PID != os.Getpid() {
		t.Errorf("version %+v", v)
	}

	n, err := c.CreateNetwork(ctx, api.NetworkCreate{Name: "web", Subnet: "10.7.0.0/24"})
	must("create", err)
	if n.Gateway != netip.MustParseAddr("10.7.0.1") {
		t.Errorf("created %+v", n)
	}
	_, err = c.CreateNetwork(ctx, api.NetworkCreate{Name: "web"})
	kind("create twice", err, api.ErrConflict)
	_, err = c.CreateNetwork(ctx, api.NetworkCreate{Name: "x", Subnet: "nonsense"})
	kind("create with a bad subnet", err, api.ErrInvalid)
	ns, err := c.Networks(ctx)
	must("networks", err)
	if len(ns) != 1 || ns[0].Name != "web" {
		t.Errorf("networks %+v", ns)
	}
	_, err = c.Network(ctx, "nope")
	kind("unknown network", err, api.ErrNotFound)
	if err != nil && err.Error() != `network "nope" not found (list them with `+"`switchyard network ls`)" {
		t.Errorf("the client's error text %q is not the daemon's message", err)
	}

	_, err = c.Tunnel(ctx, "web")
	kind("tunnel of a network without one", err, api.ErrInvalid)
	_, err = c.AddTunnelPeer(ctx, "nope", "127.0.0.2")
	kind("peer of an unknown network", err, api.ErrNotFound)
	kind("remove a peer of an unknown network", c.RemoveTunnelPeer(ctx, "nope", "127.0.0.2"), api.ErrNotFound)
	must("remove network", c.RemoveNetwork(ctx, "web"))
	kind("remove it again", c.RemoveNetwork(ctx, "web"), api.ErrNotFound)
}

// The client's endpoint and port calls against a daemon.
func TestClientEndpoints(t *testing.T) {
	c := newDaemon(t)
	ctx := context.Background()
	must, kind := checks(t)
	_, err := c.CreateNetwork(ctx, api.NetworkCreate{Name: "web", Subnet: "10.7.0.0/24"})
	must("create", err)
	ep, err := c.Connect(ctx, "web", api.EndpointCreate{NetNS: "/run/netns/a", Publish: []string{"127.0.0.1::80"}})
	must("connect", err)
	if ep.Name != "a" || ep.Address != netip.MustParsePrefix("10.7.0.2/24") || len(ep.Ports) != 1 {
		t.Errorf("connected %+v", ep)
	}
	_, err = c.Connect(ctx, "nope", api.EndpointCreate{NetNS: "/run/netns/a"})
	kind("connect to an unknown network", err, api.ErrNotFound)
	eps, err := c.Endpoints(ctx, "web")
	must("endpoints", err)
	if len(eps) != 1 || eps[0].Name != "a" {
		t.Errorf("endpoints %+v", eps)
	}

	bs, err := c.AddPort(ctx, "web", "a", "127.0.0.1::81/udp")
	must("add port", err)
	if len(bs) != 1 || bs[0].Proto != "udp" || bs[0].ContainerPort != 81 || bs[0].HostPort == 0 {
		t.Errorf("added %+v", bs)
	}
	_, err = c.AddPort(ctx, "web", "a", "127.0.0.1::81/udp")
	kind("add a port twice", err, api.ErrConflict)
	ps, err := c.Ports(ctx, "web/a")
	must("ports", err)
	if len(ps) != 2 {
		t.Errorf("ports %+v, want 2", ps)
	}
	must("remove port", c.RemovePort(ctx, "web", "a", "127.0.0.1::81/udp"))
	kind("remove it again", c.RemovePort(ctx, "web", "a", "127.0.0.1::81/udp"), api.ErrNotFound)

	nat, err := c.NAT(ctx, "web")
	must("nat", err)
	if nat.Network != "web" || len(nat.Rules) == 0 {
		t.Errorf("nat %+v", nat)
	}
	_, err = c.Conntrack(ctx, "web")
	must("conntrack", err)
	st, err := c.Stats(ctx)
	must("stats", err)
	if len(st.Networks) != 1 || st.Proxy.Listeners != 1 {
		t.Errorf("stats %+v", st)
	}
	_, err = c.Capture(ctx, "web", "nope", 1)
	kind("capture of an unknown endpoint", err, api.ErrNotFound)

	kind("remove a network in use", c.RemoveNetwork(ctx, "web"), api.ErrConflict)
	must("disconnect", c.Disconnect(ctx, "web", "a"))
	kind("disconnect again", c.Disconnect(ctx, "web", "a"), api.ErrNotFound)
	must("remove network", c.RemoveNetwork(ctx, "web"))
}

// Errors that are not the daemon's: no daemon, and an answer that is not
// the API's.
func TestClientErrors(t *testing.T) {
	c := api.NewClient(filepath.Join(t.TempDir(), "none.sock"))
	if _, err := c.Version(context.Background()); !errors.Is(err, api.ErrUnreachable) {
		t.Errorf("no daemon: %v, want %v", err, api.ErrUnreachable)
	}
	c = serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		io.WriteString(w, "<html>proxy error</html>")
	}))
	_, err := c.Networks(context.Background())
	if err == nil || errors.Is(err, api.ErrNotFound) || errors.Is(err, api.ErrInvalid) || errors.Is(err, api.ErrConflict) {
		t.Fatalf("a non-API answer gave %v", err)
	}
	if want := "GET /v1/networks: daemon answered 502 Bad Gateway"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if _, err := c.Capture(context.Background(), "web", "a", 1); err == nil || err.Error() != "capture: daemon answered 502 Bad Gateway" {
		t.Errorf("capture: %v", err)
	}
}
