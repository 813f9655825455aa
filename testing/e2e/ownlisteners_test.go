package e2e_test

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/testing/netnstest"
)

// The daemon's own listeners are out of containers' reach: metrics (on
// every address of the host here) cannot be reached through
// --host-loopback nor at the host's address, while other host services
// still can; pprof is served only on a unix socket of mode 0600.
func TestContainersCannotReachTheDaemonsListeners(t *testing.T) {
	dbg := filepath.Join(t.TempDir(), "debug", "pprof.sock")
	w := newWorld(t, func(w *world) {
		w.d.Extra = []string{"--metrics", "0.0.0.0:9100", "--debug-socket", dbg}
	})
	whoServer(t, w.host, "127.0.0.1:7070")
	whoServer(t, w.host, hostAddr+":7071")
	w.d.MustRun("network", "create", "lo", "--subnet", "10.241.0.0/24", "--host-loopback")
	a := netnstest.New(t)
	w.d.MustRun("connect", "lo", "--netns", a.Path, "--name", "a")

	for _, ok := range []string{"169.254.1.2:7070", hostAddr + ":7071"} {
		if _, err := dialErr(a, ok, 10*time.Second); err != nil {
			t.Errorf("a host service at %s is out of reach too: %v", ok, err)
		}
	}
	for _, refused := range []string{"169.254.1.2:9100", hostAddr + ":9100"} {
		if _, err := dialErr(a, refused, 10*time.Second); err == nil {
			t.Errorf("a container reached the daemon's metrics at %s", refused)
		}
	}
	if _, err := dialErr(w.host, "127.0.0.1:9100", 10*time.Second); err != nil {
		t.Errorf("the host cannot reach the metrics: %v", err)
	}

	st, err := os.Stat(dbg)
	if err != nil || st.Mode().Perm() != 0o600 || st.Mode()&os.ModeSocket == 0 {
		t.Fatalf("debug socket %s: %v, %v; want a socket of mode 0600", dbg, st, err)
	}
	c := http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", dbg)
	}}}
	resp, err := c.Get("http://switchyard/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("pprof index over the debug socket: %s", resp.Status)
	}
}
