package e2e_test

import (
	"context"
	"encoding/json"
	"os/exec"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/testing/clitest"
	"github.com/switchyard-net/switchyard/testing/netnstest"
)

// iperf3 -6, the real client the dual-stack issue names: TCP and UDP over
// IPv6 between two containers of a dual-stack network (UDP also to a
// server on [::], once b has the gateway's advertisement), and TCP from the
// host's [::1] through a published port. Each run is one second; the
// test checks that iperf3 itself reports the bytes arriving (a run
// through a broken path reports an error or nothing received).
func TestDualStackIperf3(t *testing.T) {
	if _, err := exec.LookPath("iperf3"); err != nil {
		t.Skip("skipping: iperf3 is not installed (.ci/run installs it)")
	}
	nsA, nsB := netnstest.New(t), netnstest.New(t)
	d := clitest.NewDaemon(t)
	d.Start()
	d.MustRun("network", "create", "perf6", "--subnet", "10.244.0.0/24", "--subnet", "fd00:244::/64")
	d.MustRun("connect", "perf6", "--netns", nsA.Path, "--name", "a")
	d.MustRun("connect", "perf6", "--netns", nsB.Path, "--name", "b", "--ip6", "fd00:244::b", "-p", "18244:5201")

	ctx, cancel := context.WithCancel(context.Background())
	srv := nsB.Command(ctx, "iperf3", "-s", "-B", "fd00:244::b", "-p", "5201")
	if err := srv.Start(); err != nil {
		t.Fatalf("iperf3 -s in b: %v", err)
	}
	t.Cleanup(func() { cancel(); srv.Wait() })
	// A second server as iperf3 runs by default, on [::]: it answers
	// UDP from whatever source the kernel picks, which must be the
	// address the client sent to (b has no SLAAC address beside it).
	srvAny := nsB.Command(ctx, "iperf3", "-s", "-p", "5202")
	if err := srvAny.Start(); err != nil {
		t.Fatalf("iperf3 -s on [::] in b: %v", err)
	}
	t.Cleanup(func() { cancel(); srvAny.Wait() })
	waitRAApplied(t, nsB, "eth0")

	runs := []struct {
		name   string
		client func(ctx context.Context, args ...string) *exec.Cmd
		args   []string
	}{
		{"tcp a to b", func(ctx context.Context, a ...string) *exec.Cmd { return nsA.Command(ctx, "iperf3", a...) },
			[]string{"-6", "-c", "fd00:244::b", "-p", "5201"}},
		{"udp a to b", func(ctx context.Context, a ...string) *exec.Cmd { return nsA.Command(ctx, "iperf3", a...) },
			[]string{"-6", "-c", "fd00:244::b", "-p", "5201", "-u", "-b", "50M"}},
		{"udp a to b's server on [::]", func(ctx context.Context, a ...string) *exec.Cmd { return nsA.Command(ctx, "iperf3", a...) },
			[]string{"-6", "-c", "fd00:244::b", "-p", "5202", "-u", "-b", "50M"}},
		{"tcp [::1] through the published port", func(ctx context.Context, a ...string) *exec.Cmd { return exec.CommandContext(ctx, "iperf3", a...) },
			[]string{"-6", "-c", "::1", "-p", "18244"}},
	}
	for _, r := range runs {
		got := iperf3Bytes(t, r.name, func(ctx context.Context) *exec.Cmd {
			return r.client(ctx, append(r.args, "-t", "1", "-J", "--connect-timeout", "2000")...)
		})
		if got == 0 {
			t.Errorf("%s: iperf3 reports 0 bytes received", r.name)
		}
		t.Logf("%s: %d bytes in 1 s", r.name, got)
	}
}

// iperf3Bytes runs the iperf3 client cmd makes, retrying while the
// server is not listening yet (at most 20 tries), and returns the bytes
// its JSON report says the server received. Each try is killed after
// 10 s: a UDP test whose server's answers never arrive would wait
// forever for them.
func iperf3Bytes(t *testing.T, name string, cmd func(context.Context) *exec.Cmd) int64 {
	t.Helper()
	var rep struct {
		Error string `json:"error"`
		End   struct {
			SumReceived struct {
				Bytes int64 `json:"bytes"`
			} `json:"sum_received"`
			Sum struct { // UDP
				Bytes       int64   `json:"bytes"`
				LostPercent float64 `json:"lost_percent"`
			} `json:"sum"`
		} `json:"end"`
	}
	for try := 0; ; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := cmd(ctx).Output()
		expired := ctx.Err() != nil
		cancel()
		if expired {
			t.Fatalf("%s: iperf3 did not finish a 1 s test within 10 s (killed): %s", name, out)
		}
		rep.Error = ""
		if jerr := json.Unmarshal(out, &rep); jerr != nil {
			t.Fatalf("%s: iperf3 -J output (%v): %v\n%s", name, err, jerr, out)
		}
		if rep.Error == "" && err == nil {
			break
		}
		if try == 19 {
			t.Fatalf("%s: iperf3 (exit status: %v): %s", name, err, rep.Error)
		}
		time.Sleep(100 * time.Millisecond) // the server is starting: retry, bounded
	}
	if rep.End.SumReceived.Bytes > 0 {
		return rep.End.SumReceived.Bytes
	}
	if rep.End.Sum.LostPercent >= 100 {
		return 0
	}
	return rep.End.Sum.Bytes
}
