package docker

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/switchyard-net/switchyard/daemon"
	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/testing/attachtest"
)

// env is a daemon in this process (on an in-memory Attacher: no TAP, no
// namespace, any user) serving its API on a socket, the plugin as a
// client of that socket, and an HTTP client speaking to the plugin's
// own socket as dockerd does.
type env struct {
	t      *testing.T
	att    *attachtest.Attacher
	client *api.Client
	plugin *Plugin
	hc     *http.Client
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	resolv := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 127.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, att: attachtest.New()}
	sock := filepath.Join(dir, "run", "api.sock")
	d, err := daemon.New(daemon.Config{
		StateDir: filepath.Join(dir, "state"), Socket: sock, Logger: zaptest.NewLogger(t), Attacher: e.att,
		HostPrefixes:     func() ([]netip.Prefix, error) { return nil, nil },
		HostAddrs:        func() ([]netip.Addr, error) { return []netip.Addr{netip.MustParseAddr("192.0.2.10")}, nil },
		NoDefaultNetwork: true, ResolvConf: resolv, WatchInterval: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() { defer close(served); d.Serve(ctx) }()
	e.client = api.NewClient(sock)
	waitFor(t, "the daemon's API socket", func() bool { _, err := e.client.Version(ctx); return err == nil })

	e.plugin = New(e.client, zaptest.NewLogger(t))
	psock := filepath.Join(dir, "plugins", Name+".sock")
	l, err := Listen(psock)
	if err != nil {
		t.Fatal(err)
	}
	pserved := make(chan struct{})
	go func() { defer close(pserved); e.plugin.Serve(ctx, l) }()
	e.hc = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "unix", psock)
	}}}
	t.Cleanup(func() {
		cancel()
		<-pserved
		<-served
		d.Close()
	})
	return e
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// call POSTs body to the plugin's path as dockerd does and returns the
// status and the decoded answer.
func (e *env) call(path, body string) (int, map[string]any) {
	e.t.Helper()
	resp, err := e.hc.Post("http://plugin"+path, "application/json", strings.NewReader(body))
	if err != nil {
		e.t.Fatalf("%s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	var out map[string]any
	if len(b) > 0 && json.Unmarshal(b, &out) != nil {
		e.t.Fatalf("%s: answer is not a JSON object: %q", path, b)
	}
	return resp.StatusCode, out
}

// ok calls path and fails the test unless it succeeded.
func (e *env) ok(path, body string) map[string]any {
	e.t.Helper()
	status, out := e.call(path, body)
	if status != http.StatusOK || out["Err"] != nil || out["Error"] != nil {
		e.t.Fatalf("%s %s: status %d, answer %v", path, body, status, out)
	}
	return out
}

// fails calls path and returns the error message the plugin gave,
// failing the test if there was none.
func (e *env) fails(path, body string) string {
	e.t.Helper()
	status, out := e.call(path, body)
	msg, _ := out["Err"].(string)
	if strings.HasPrefix(path, "/IpamDriver.") {
		msg, _ = out["Error"].(string)
	}
	if msg == "" {
		e.t.Fatalf("%s %s: no error (status %d, answer %v)", path, body, status, out)
	}
	return msg
}

// state is what the daemon holds: networks, endpoints and ports.
func (e *env) state() ([]api.Network, []api.Endpoint, []api.PortBinding) {
	e.t.Helper()
	ctx := context.Background()
	nets, err := e.client.Networks(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	eps, err := e.client.Endpoints(ctx, "")
	if err != nil {
		e.t.Fatal(err)
	}
	ports, err := e.client.Ports(ctx, "")
	if err != nil {
		e.t.Fatal(err)
	}
	return nets, eps, ports
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
