package e2e_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/testing/clitest"
	"github.com/switchyard-net/switchyard/testing/netnstest"
	"github.com/switchyard-net/switchyard/testing/runtimetest"
)

// BenchmarkCnitoolAddDel times cnitool ADD and DEL of the switchyard
// plugin and of the reference bridge plugin (with host-local IPAM), one
// after the other in each iteration of the same run, and reports each
// one's median and the ratios. cnitool runs in the daemon's namespace,
// where the bridge lands too. The same attachment made with `switchyard
// connect` and `disconnect` shows the daemon's share. Run it 50 times:
//
//	go test -run '^$' -bench CnitoolAddDel -benchtime 50x ./plugins/cni/e2e
func BenchmarkCnitoolAddDel(b *testing.B) {
	tool := runtimetest.Cnitool(b)
	if _, err := os.Stat(filepath.Join(runtimetest.ReferenceCNIDir, "bridge")); err != nil {
		b.Skipf("skipping: the reference CNI plugins are not installed (Debian package containernetworking-plugins): %v", err)
	}
	w := newWorld(b)
	w.conflist(b, "sybench", "1.0.0", `"subnet": "10.99.3.0/24",`)
	bridge := fmt.Sprintf(`{"cniVersion": "1.0.0", "name": "brbench", "plugins": [{"type": "bridge", "bridge": "sybr%d",
		"isGateway": false, "ipMasq": false, "ipam": {"type": "host-local", "dataDir": %q, "ranges": [[{"subnet": "10.99.4.0/24"}]]}}]}`,
		os.Getpid()%10000, filepath.Join(w.netconf, "ipam"))
	if err := os.WriteFile(filepath.Join(w.netconf, "brbench.conflist"), []byte(bridge), 0o644); err != nil {
		b.Fatal(err)
	}
	cSy, cBr := netnstest.New(b), netnstest.New(b)
	env := []string{"CNI_PATH=" + w.plugins + ":" + runtimetest.ReferenceCNIDir, "NETCONFPATH=" + w.netconf}
	timed := func(args ...string) time.Duration {
		start := time.Now()
		cmd := w.host.Command(b.Context(), "env", append(append([]string(nil), env...), append([]string{tool}, args...)...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("cnitool %v: %v\n%s", args, err, out)
		}
		return time.Since(start)
	}
	cli := func(args ...string) time.Duration {
		start := time.Now()
		w.d.MustRun(args...)
		return time.Since(start)
	}
	var syAdd, syDel, brAdd, brDel, cliConn, cliDisc []time.Duration
	b.ResetTimer()
	for range b.N {
		syAdd = append(syAdd, timed("add", "sybench", cSy.Path))
		syDel = append(syDel, timed("del", "sybench", cSy.Path))
		brAdd = append(brAdd, timed("add", "brbench", cBr.Path))
		brDel = append(brDel, timed("del", "brbench", cBr.Path))
		// The same attachment through the CLI: the daemon's share.
		cliConn = append(cliConn, cli("connect", "sybench", "--netns", cSy.Path, "--name", "cli", "--ifname", "eth0"))
		cliDisc = append(cliDisc, cli("disconnect", "sybench", "cli"))
	}
	b.StopTimer()
	p50 := func(d []time.Duration) float64 {
		s := slices.Clone(d)
		slices.Sort(s)
		return float64(s[len(s)/2].Microseconds()) / 1000
	}
	b.ReportMetric(p50(syAdd), "sy-add-p50-ms")
	b.ReportMetric(p50(syDel), "sy-del-p50-ms")
	b.ReportMetric(p50(brAdd), "bridge-add-p50-ms")
	b.ReportMetric(p50(brDel), "bridge-del-p50-ms")
	b.ReportMetric(p50(cliConn), "cli-connect-p50-ms")
	b.ReportMetric(p50(cliDisc), "cli-disconnect-p50-ms")
	b.ReportMetric(p50(syAdd)/p50(brAdd), "add-ratio")
	b.ReportMetric(p50(syDel)/p50(brDel), "del-ratio")
	w.nothingAttached(b, cSy)
}

// BenchmarkPodmanRunRm starts and removes podman containers on the
// switchyard network, each with a published port, and then counts what
// the daemon holds against what it held after the first one: endpoints,
// published ports, goroutines and open files must be back where they
// were. Run it 100 times:
//
//	go test -run '^$' -bench PodmanRunRm -benchtime 100x ./plugins/cni/e2e
func BenchmarkPodmanRunRm(b *testing.B) {
	debugSock := filepath.Join(b.TempDir(), "debug.sock")
	w := newWorld(b, func(d *clitest.Daemon) { d.Extra = append(d.Extra, "--debug-socket", debugSock) })
	p := runtimetest.Podman(b, runtimetest.Opts{CNIPluginDirs: []string{w.plugins}, NetNS: w.host.Path, CNIConfDir: w.netconf})
	noPortReservation(b, p)
	w.conflist(b, "synet", "1.0.0", `"subnet": "10.99.5.0/24",`)
	root := runtimetest.Rootfs(b)
	v, err := api.NewClient(w.d.Socket).Version(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	once := func() {
		p.MustRun("run", "--rm", "--network", "synet", "-p", "18095:80", "--rootfs", root, "/bin/true")
	}
	once() // the network exists, and the first-use allocations are made
	before := daemonHolds(b, w, v.PID, debugSock)
	b.ResetTimer()
	for range b.N {
		once()
	}
	b.StopTimer()
	after := before
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) { // goroutines of the last disconnect may still be ending
		if after = daemonHolds(b, w, v.PID, debugSock); after == before {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.ReportMetric(float64(after.goroutines-before.goroutines), "goroutines-left")
	b.ReportMetric(float64(after.fds-before.fds), "fds-left")
	b.ReportMetric(float64(after.endpoints+after.ports), "endpoints+ports-left")
	if after != before {
		b.Errorf("after %d containers the daemon holds %+v, after the first %+v", b.N, after, before)
	}
}

type holds struct{ endpoints, ports, goroutines, fds int }

func daemonHolds(b *testing.B, w *world, pid int, debugSock string) holds {
	b.Helper()
	h := holds{endpoints: len(w.endpoints(b)), ports: len(w.ports(b))}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		b.Fatal(err)
	}
	h.fds = len(fds)
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", debugSock)
	}}}
	resp, err := c.Get("http://debug/debug/pprof/goroutine?debug=1")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if _, err2 := fmt.Sscanf(line, "goroutine profile: total %d", &h.goroutines); err != nil || err2 != nil {
		b.Fatalf("goroutine profile: %q: %v %v", line, err, err2)
	}
	return h
}
