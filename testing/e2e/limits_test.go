package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/proxy"
	"github.com/switchyard-net/switchyard/testing/netnstest"
)

// fdLimit is the open-file limit the flooded daemon runs with (soft and
// hard, so that neither the Go runtime nor the daemon can raise it).
const fdLimit = 256

// holdServer listens in ns on addr and keeps every connection open until
// the client closes it or the test ends.
func holdServer(t *testing.T, ns *netnstest.NS, addr string) {
	t.Helper()
	l, err := ns.Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				io.Copy(io.Discard, c)
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
}

// portStats returns the listener of endpoint published on 0.0.0.0:port.
func portStats(t *testing.T, w *world, endpoint string, port uint16) api.PortBinding {
	t.Helper()
	for _, b := range bindings(t, w, endpoint) {
		if b.HostPort == port && b.HostIP.Is4() {
			return b
		}
	}
	t.Fatalf("%s has no listener on 0.0.0.0:%d", endpoint, port)
	return api.PortBinding{}
}

func fdCount(pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return len(ents)
}

// A daemon allowed 256 open files, flooded with 400 connections to one
// published port (each held open), refuses those over the port's limit at
// once and keeps answering: the API, and a second published port.
// With --max-conns-per-port the port's limit is the flag's.
func TestFloodedPortLeavesAPIAndOtherPorts(t *testing.T) {
	for _, tc := range []struct {
		name, path string
		perPort    int // 0: the default
	}{
		{"netstack", "netstack", 0},
		{"splice", "splice", 0},
		{"flag", "netstack", 7},
	} {
		t.Run(tc.name, func(t *testing.T) { testFlood(t, tc.path, tc.perPort) })
	}
}

func testFlood(t *testing.T, path string, wantPerPort int) {
	w, perPort := startFlooded(t, path, wantPerPort)
	before := fdCount(w.d.PID())
	floodStart := time.Now()
	held := flood(t, w, "127.0.0.1:18080", floodConns)
	t.Cleanup(func() { closeAll(held) }) // closed twice on success: harmless
	var b api.PortBinding
	ok := waitUntil(20*time.Second, func() bool {
		b = portStats(t, w, "web/c", 18080)
		return b.Active+int64(b.OverLimit) >= floodConns
	})
	if !ok {
		t.Fatalf("after %d connections to 18080: %d open, %d over the limit; want every one counted", floodConns, b.Active, b.OverLimit)
	}
	refused := uint64(floodConns - perPort)
	if b.Active != int64(perPort) || b.OverLimit != refused {
		t.Errorf("18080: %d open, %d over the limit; want %d open (the port's limit), %d refused", b.Active, b.OverLimit, perPort, refused)
	}
	during := fdCount(w.d.PID())

	// The API answers (it just did, for port ls) and the other port serves.
	if got := askWho(t, w.host, "127.0.0.1:18081"); got == "" {
		t.Error("port 18081 gave no answer while 18080 was flooded")
	}
	st := daemonStats(t, w)
	if st.Proxy.OverLimit != refused || st.Proxy.AcceptErrors != 0 {
		t.Errorf("stats: %d over the limit, %d failed accepts; want %d and none", st.Proxy.OverLimit, st.Proxy.AcceptErrors, refused)
	}
	checkFloodLog(t, w.d.Log(), time.Since(floodStart))
	t.Logf("%s: limits %d/%d per port; daemon fds %d before the flood, %d during (of %d)", path,
		st.Proxy.MaxConns, perPort, before, during, fdLimit)

	// Once the flood's connections are gone, the port takes new ones.
	closeAll(held)
	if !waitUntil(20*time.Second, func() bool { return portStats(t, w, "web/c", 18080).Active == 0 }) {
		t.Fatal("the flood's connections are not released")
	}
	again := flood(t, w, "127.0.0.1:18080", 1)
	defer closeAll(again)
	if len(again) != 1 {
		t.Fatal("no connection to 18080 after the flood")
	}
	if !waitUntil(10*time.Second, func() bool { return portStats(t, w, "web/c", 18080).Active == 1 }) {
		t.Error("a new connection after the flood is not relayed")
	}
}

// floodConns is how many connections the flood opens: more than the
// flooded daemon's file descriptors.
const floodConns = 400

// startFlooded starts a daemon limited to fdLimit open files (with
// --max-conns-per-port perPort, if positive) and an endpoint whose port 80
// (a holdServer) is published on 18080 and port 81 (a whoServer) on 18081,
// both by path. It returns the world and the per-port limit in force,
// having checked that the limits leave a reserve.
func startFlooded(t *testing.T, path string, perPort int) (*world, int) {
	t.Helper()
	w := newWorld(t, func(w *world) {
		w.d.Wrap = append(w.d.Wrap, "prlimit", fmt.Sprintf("--nofile=%d:%d", fdLimit, fdLimit))
		if perPort > 0 {
			w.d.Extra = append(w.d.Extra, "--max-conns-per-port", fmt.Sprint(perPort))
		}
	})
	c := netnstest.New(t)
	holdServer(t, c, "0.0.0.0:80")
	whoServer(t, c, "0.0.0.0:81")
	w.d.MustRun("network", "create", "web", "--subnet", "10.240.0.0/24")
	w.d.MustRun("connect", "web", "--netns", c.Path, "--name", "c",
		"-p", "18080:80,path="+path, "-p", "18081:81,path="+path)
	p := daemonStats(t, w).Proxy
	if p.MaxConnsPerPort <= 0 || p.MaxConns <= p.MaxConnsPerPort || p.MaxConns*2 >= fdLimit {
		t.Fatalf("limits %d per port, %d in all: want defaults that leave most of the %d descriptors to connections but keep a reserve",
			p.MaxConnsPerPort, p.MaxConns, fdLimit)
	}
	if perPort > 0 && p.MaxConnsPerPort != perPort {
		t.Fatalf("with --max-conns-per-port %d the port's limit is %d", perPort, p.MaxConnsPerPort)
	}
	return w, p.MaxConnsPerPort
}

// flood opens n connections to addr from the daemon's namespace, within a
// minute, and returns those that connected (the daemon resets those over
// its limits at connect or a little later).
func flood(t *testing.T, w *world, addr string, n int) []net.Conn {
	t.Helper()
	var held []net.Conn
	deadline := time.Now().Add(time.Minute)
	for i := 0; i < n && time.Now().Before(deadline); i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := w.host.Dial(ctx, "tcp", addr)
		cancel()
		if err == nil {
			held = append(held, conn)
		}
	}
	return held
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		c.Close()
	}
}

func daemonStats(t *testing.T, w *world) api.Stats {
	t.Helper()
	var st api.Stats
	if err := json.Unmarshal([]byte(w.d.MustRun("stats", "--format", "json")), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// checkFloodLog checks that a flood that lasted took was warned about at
// most once per warning interval, and that the daemon never ran out of
// descriptors.
func checkFloodLog(t *testing.T, log string, took time.Duration) {
	t.Helper()
	most := 1 + int(took/proxy.DefaultWarnInterval)
	if n := strings.Count(log, "connection limit reached"); n < 1 || n > most {
		t.Errorf("%d log lines about the limit; want 1 to %d (one per warning interval)", n, most)
	}
	if strings.Contains(log, "too many open files") {
		t.Error("the daemon ran out of file descriptors")
	}
}

// waitUntil polls cond every 100 ms until it holds or timeout passes.
func waitUntil(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}
