package soak_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/testing/clitest"
	"github.com/switchyard-net/switchyard/testing/netnstest"
)

// TestSoak attacks a network from one container while another keeps
// working, once per SWITCHYARD_SOAK_ICC mode, and fails on every goal
// missed (see the package comment). On demand only.
func TestSoak(t *testing.T) {
	if os.Getenv("SWITCHYARD_SOAK") != "1" {
		t.Skip("on-demand load test: run benchmarks/soak.sh, or SWITCHYARD_SOAK=1 go test -v -timeout 11m ./testing/soak/ as root")
	}
	if os.Geteuid() != 0 {
		t.Skip("skipping: the soak runs its daemon in a namespace with nsenter --net and needs root")
	}
	netnstest.RootOnly("the daemon under test runs in the soak's namespace with nsenter --net")
	cfg, err := loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	// The soak is this binary's only test: remove the switchyard binary
	// clitest builds when it ends (clitest.Main's job, without a TestMain).
	bin := clitest.Binary(t)
	t.Cleanup(func() { os.RemoveAll(filepath.Dir(bin)) })
	t.Logf("soak: %s of load per network, networks with icc=%v, attack %t, at most %s in all", cfg.load, cfg.iccModes, cfg.attack, cfg.total())
	for _, icc := range cfg.iccModes {
		t.Run(fmt.Sprintf("icc=%t", icc), func(t *testing.T) { soak(t, cfg, icc) })
	}
}

// figures are one soak's results.
type figures struct {
	icc                 bool
	ping                pingResult
	newcomer            pingResult // a container connected after the load
	http                *httpResult
	after               *httpResult // requests once the attack has stopped
	before, end         usage
	peakKB              int
	settled             time.Duration
	atk                 *attack
	drops               map[string]uint64
	fdbEntries, fdbMove uint64
	conntrack           int
	natDropped          uint64
	proxy               api.ProxyStats
}

// afterRequests requests, within afterWindow, check the published port
// once the attack has stopped.
const (
	afterRequests = 20
	afterWindow   = 30 * time.Second
)

func soak(t *testing.T, cfg config, icc bool) {
	w := newWorld(t, icc)
	p := newProbe(w.d.PID(), w.debug)
	// Warm up: one answer from the victim, and the daemon's baseline with
	// everything connected and served once.
	if body, err := ask(w.client()); err != nil || body != victimID {
		t.Fatalf("before the attack, the published port answered %q (%v), want %q", body, err, victimID)
	}
	if err := w.victim.Ping(w.gw.String(), 2); err != nil {
		t.Fatalf("before the attack the victim cannot ping the gateway: %v", err)
	}
	f := &figures{icc: icc}
	var err error
	if f.before, err = p.read(); err != nil {
		t.Fatal(err)
	}
	t.Logf("before the load: %s", f.before)

	f.atk = newAttack(t, w, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), cfg.load)
	defer cancel()
	var wg sync.WaitGroup
	run := func(fn func()) { wg.Add(1); go func() { defer wg.Done(); fn() }() }
	run(func() { f.ping = pingLoop(ctx, w, cfg.load) })
	run(func() { f.http = httpLoop(ctx, w, int(cfg.load/httpInterval)+1) })
	run(func() { f.atk.run(ctx, w, cfg) })
	peak := make(chan int, 1)
	go func() { peak <- p.peakRSS(ctx) }()
	wg.Wait()
	f.peakKB = <-peak
	f.atk.stop(t, w)

	// Once the attack has stopped: does the poison linger?
	actx, acancel := context.WithTimeout(context.Background(), afterWindow)
	f.after = httpLoop(actx, w, afterRequests)
	acancel()
	f.readStats(t, w)
	if f.end, f.settled, err = p.settle(f.before, cfg.settle); err != nil {
		t.Fatal(err)
	}
	f.newcomer = newcomer(t, w)
	f.report(t, cfg)
	f.check(t, cfg)
}

// readStats keeps the network's drop counters by reason and the proxy's.
func (f *figures) readStats(t *testing.T, w *world) {
	t.Helper()
	var st api.Stats
	if err := json.Unmarshal([]byte(w.d.MustRun("stats", "--format", "json")), &st); err != nil {
		t.Fatal(err)
	}
	f.drops = map[string]uint64{}
	for _, n := range st.Networks {
		if n.Network != "soak" {
			continue
		}
		f.fdbEntries, f.fdbMove = uint64(n.FDBEntries), n.FDBMoves
		f.conntrack, f.natDropped = n.Conntrack, n.NATDropped
		for _, port := range n.Ports {
			for why, c := range port.Stats.DropsBy {
				f.drops[why] += c
			}
		}
	}
	f.proxy = st.Proxy
}

// check fails the test for every goal missed.
func (f *figures) check(t *testing.T, cfg config) {
	t.Helper()
	if f.ping.err != nil {
		t.Error(f.ping.err)
	} else if loss := f.ping.lossPct(); loss > 1 {
		t.Errorf("the victim lost %.1f%% of its pings to the gateway (%d of %d): goal ≤ 1%%", loss, f.ping.sent-f.ping.received, f.ping.sent)
	}
	if f.newcomer.err != nil {
		t.Error(f.newcomer.err)
	} else if f.newcomer.received < f.newcomer.sent {
		t.Errorf("a container connected after the load had %d of %d pings to the gateway answered: want all", f.newcomer.received, f.newcomer.sent)
	}
	if p99 := f.http.percentile(99); p99 > 50*time.Millisecond {
		t.Errorf("HTTP p99 %s: goal ≤ 50ms", p99)
	}
	if f.http.failed > 0 {
		t.Errorf("%d of %d requests to the published port failed (first: %v)", f.http.failed, f.http.total(), f.http.firstErr)
	}
	if h := f.http.hijacked + f.http.other + f.after.hijacked + f.after.other; h > 0 {
		t.Errorf("%d answers did not come from the victim (%q): the attacker hijacked its published port", h, f.http.hijackedBody+f.after.hijackedBody)
	}
	if f.after.failed > 0 || f.after.ok == 0 {
		t.Errorf("after the attack %d of %d requests failed (first: %v): the poison outlives the attack", f.after.failed, f.after.total(), f.after.firstErr)
	}
	if f.peakKB > cfg.rssMB*1024 {
		t.Errorf("the daemon's RSS peaked at %.0f MiB: bound %d MiB", float64(f.peakKB)/1024, cfg.rssMB)
	}
	if f.end.fds > f.before.fds || f.end.goroutines > f.before.goroutines {
		t.Errorf("%s after the load did not come back to %s within %s", f.end, f.before, cfg.settle)
	}
}

func (r *httpResult) total() int { return r.ok + r.failed + r.hijacked + r.other }

// report logs the figures and appends them, as a markdown table's row, to
// cfg.report (with the table's header if the file is empty).
func (f *figures) report(t *testing.T, cfg config) {
	t.Helper()
	a := f.atk
	t.Logf("attack: %d flood frames (%d refused by the kernel), %d spoofed ARP/IP/ND, %d UDP from random ports, "+
		"%d bursts: %d connections opened (%d by the first, before the UDP spray), %d failed",
		a.flood.sent.Load(), a.flood.refused.Load(), a.spoof.sent.Load(), a.spray.sent.Load(),
		a.bursts.Load(), a.burstOK.Load(), a.firstOK, a.burstFail.Load())
	if err := a.burstErr.Load(); err != nil {
		t.Logf("attack: the first connection of a burst that failed: %s", err)
	}
	t.Logf("switch: %d FDB entries, %d moves; drops by reason %v; NAT: %d tracked, %d dropped; proxy: %d TCP total, %d over the limit, %d UDP flows, %d evicted",
		f.fdbEntries, f.fdbMove, f.drops, f.conntrack, f.natDropped, f.proxy.TCPTotal, f.proxy.OverLimit, f.proxy.UDPFlowsTotal, f.proxy.UDPEvicted)
	row := f.row(cfg)
	t.Logf("\n%s\n%s", tableHeader, row)
	if cfg.report == "" {
		return
	}
	fh, err := os.OpenFile(cfg.report, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("SWITCHYARD_SOAK_REPORT: %v", err)
	}
	defer fh.Close()
	if st, err := fh.Stat(); err == nil && st.Size() == 0 {
		fmt.Fprintln(fh, tableHeader)
	}
	fmt.Fprintln(fh, row)
}

const tableHeader = "| icc | attack | load | ping loss | HTTP ok/failed (after the load) | p50 | p99 | hijacks (during/after) | RSS before/peak/after MiB | fds before→after | goroutines before→after | settled in | newcomer pings | attack sent | switch drops |\n" +
	"|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"

func (f *figures) row(cfg config) string {
	mib := func(kb int) string { return fmt.Sprintf("%.1f", float64(kb)/1024) }
	a := f.atk
	var drops []string
	for why, c := range f.drops {
		drops = append(drops, fmt.Sprintf("%s %d", why, c))
	}
	slices.Sort(drops)
	if len(drops) == 0 {
		drops = []string{"none"}
	}
	ping := fmt.Sprintf("%.2f%% (%d/%d)", f.ping.lossPct(), f.ping.sent-f.ping.received, f.ping.sent)
	if f.ping.err != nil {
		ping = "no result"
	}
	newcomer := fmt.Sprintf("%d/%d", f.newcomer.received, f.newcomer.sent)
	if f.newcomer.err != nil {
		newcomer = "no result"
	}
	return fmt.Sprintf("| %t | %t | %s | %s | %d/%d (%d/%d) | %s | %s | %d/%d | %s/%s/%s (bound %d) | %d→%d | %d→%d | %s | %s | %d MAC flood, %d spoofed, %d UDP, %d conns in %d bursts (%d failed) | %s |",
		f.icc, cfg.attack, cfg.load, ping, f.http.ok, f.http.failed, f.after.ok, f.after.failed,
		f.http.latency(50), f.http.latency(99),
		f.http.hijacked+f.http.other, f.after.hijacked+f.after.other,
		mib(f.before.rssKB), mib(f.peakKB), mib(f.end.rssKB), cfg.rssMB,
		f.before.fds, f.end.fds, f.before.goroutines, f.end.goroutines, f.settled.Round(time.Second), newcomer,
		a.flood.sent.Load(), a.spoof.sent.Load(), a.spray.sent.Load(), a.burstOK.Load(), a.bursts.Load(), a.burstFail.Load(),
		strings.Join(drops, ", "))
}
