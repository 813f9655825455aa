package daemon

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/tap"
)

// A daemon whose state file was lost (here: emptied after it stopped)
// removes, at its next start, the TAPs it made that no endpoint names any
// more, in its own namespace and in the named ones; another daemon's TAP
// in the same namespace stays.
func TestOrphanedTAPsAreRemovedAfterLostState(t *testing.T) {
	e, cfg, ns := twoEndpoints(t)
	// Another daemon's TAP in the same namespace.
	if _, err := e.att.Open(context.Background(), tap.Config{NetNS: ns, Name: "eth9", Owner: "another-daemon"}); err != nil {
		t.Fatal(err)
	}
	if got := len(e.att.Devices()); got != 3 {
		t.Fatalf("%d devices before the restart, want 3", got)
	}
	e.d.Close()
	if err := os.Truncate(filepath.Join(cfg.StateDir, "state.db"), 0); err != nil {
		t.Fatal(err)
	}

	core, logs := observer.New(zapcore.WarnLevel)
	cfg.Logger = zap.New(core)
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.d = d
	devs := e.att.Devices()
	if len(devs) != 1 || devs[0].Name != "eth9" {
		t.Fatalf("devices after the restart %+v, want only the other daemon's eth9", devs)
	}
	if n := logs.FilterMessageSnippet("no longer in its state").Len(); n != 2 {
		t.Errorf("%d warnings about removed orphans, want 2: %v", n, logs.All())
	}
}

// The TAPs of restored endpoints are not orphans.
func TestRestoredTAPsAreNotOrphans(t *testing.T) {
	e, cfg, _ := twoEndpoints(t)
	e.d.Close()
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.d = d
	if got := len(e.att.Devices()); got != 2 {
		t.Fatalf("%d devices after a clean restart, want both endpoints' 2: %+v", got, e.att.Devices())
	}
	if eps, _ := e.d.Endpoints("web"); len(eps) != 2 {
		t.Fatalf("endpoints after the restart: %+v", eps)
	}
}

// twoEndpoints starts a daemon that searches a named-namespace directory
// of the test's, with an endpoint in namespace ns of it and a VM TAP.
func twoEndpoints(t *testing.T) (*testEnv, Config, string) {
	t.Helper()
	e := newEnv(t)
	netnsDir := t.TempDir()
	ns := filepath.Join(netnsDir, "c")
	if err := os.WriteFile(ns, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	e.att.AddNetNS(ns)
	e.d.Close()
	cfg := e.config()
	cfg.NetnsDir = netnsDir
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.d = d
	e.createNetwork(api.NetworkCreate{Name: "web", Subnet: "10.9.0.0/24"})
	e.connect("web", api.EndpointCreate{NetNS: ns, Name: "c"})
	e.connect("web", api.EndpointCreate{TapOnly: "vm0"})
	return e, cfg, ns
}
