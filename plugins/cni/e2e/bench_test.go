package e2e_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

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
