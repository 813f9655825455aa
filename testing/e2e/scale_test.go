package e2e_test

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/switchyard-net/switchyard/testing/clitest"
	"github.com/switchyard-net/switchyard/testing/netnstest"
)

// rssKiB reads VmRSS of a process.
func rssKiB(t *testing.T, pid int) int {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no VmRSS in /proc/PID/status")
	return 0
}

// The daemon with 100 connected endpoints stays under 100 MB of RSS.
func TestHundredEndpointsMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping in -short mode: creates 100 namespaces")
	}
	const n = 100
	d := clitest.NewDaemon(t)
	d.Start()
	d.MustRun("network", "create", "big", "--subnet", "10.248.0.0/24")
	idle := rssKiB(t, d.PID())
	var first, last *netnstest.NS
	for i := 0; i < n; i++ {
		ns := netnstest.New(t)
		d.MustRun("connect", "big", "--netns", ns.Path, "--name", fmt.Sprintf("ep%03d", i))
		if i == 0 {
			first = ns
		}
		last = ns
	}
	if es := endpoints(t, d, "big"); len(es) != n {
		t.Fatalf("%d endpoints, want %d", len(es), n)
	}
	// Traffic across the network (ARP floods reach all 100 ports).
	if err := first.Ping("10.248.0.101", 3); err != nil {
		t.Fatal(err)
	}
	if err := last.Ping("10.248.0.1", 1); err != nil {
		t.Fatal(err)
	}
	rss := rssKiB(t, d.PID())
	t.Logf("daemon RSS: %d KiB idle with 2 networks, %d KiB with %d endpoints (%.0f KiB per endpoint)",
		idle, rss, n, float64(rss-idle)/n)
	if rss > 100*1024 {
		t.Fatalf("daemon RSS %d KiB with %d endpoints, want under 100 MiB", rss, n)
	}
}
