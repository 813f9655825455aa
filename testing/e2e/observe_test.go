package e2e_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/switchyard-net/switchyard/testing/clitest"
	"github.com/switchyard-net/switchyard/testing/netnstest"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// A capture of an endpoint, taken while traffic flows, is read back by
// tshark; metrics and stats count the traffic.
func TestCaptureMetricsStats(t *testing.T) {
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		t.Fatalf("tshark is needed to read the capture back (Debian package tshark, which .ci/run installs): %v", err)
	}
	a, b := netnstest.New(t), netnstest.New(t)
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	d := clitest.NewDaemon(t)
	d.Extra = []string{"--metrics", metricsAddr}
	d.Start()
	d.MustRun("network", "create", "web", "--subnet", "10.252.0.0/24")
	d.MustRun("connect", "web", "--netns", a.Path, "--name", "a")
	d.MustRun("connect", "web", "--netns", b.Path, "--name", "b")

	pcap := filepath.Join(t.TempDir(), "a.pcap")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	capture := exec.CommandContext(ctx, d.Bin, "--socket", d.Socket, "capture", "web/a", "-w", pcap, "--count", "8")
	if err := capture.Start(); err != nil {
		t.Fatal(err)
	}
	waitCapturing(t, pcap)
	if err := a.Ping("10.252.0.3", 4); err != nil {
		t.Fatal(err)
	}
	if err := capture.Wait(); err != nil {
		t.Fatalf("capture: %v", err)
	}
	out, err := exec.Command(tshark, "-r", pcap, "-T", "fields", "-e", "frame.protocols").CombinedOutput()
	if err != nil {
		t.Fatalf("tshark -r: %v\n%s", err, out)
	}
	var frames, icmp int
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.HasPrefix(l, "eth:") {
			frames++
		}
		if strings.Contains(l, ":icmp") {
			icmp++
		}
	}
	if frames != 8 || icmp == 0 {
		t.Fatalf("tshark read %d Ethernet frames (%d ICMP), want 8 with ICMP:\n%s", frames, icmp, out)
	}

	if r := query(t, a, "udp", "10.252.0.1", "b", dns.TypeA); len(aRecords(r)) != 1 {
		t.Errorf("DNS for b from a: %v", r)
	}

	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	re := regexp.MustCompile(`switchyard_port_frames_total\{direction="rx",kind="tap",network="web",port="a"\} (\d+)`)
	m := re.FindSubmatch(body)
	if m == nil {
		t.Fatalf("no frames counter for port a in the metrics:\n%s", body)
	}
	if n, _ := strconv.Atoi(string(m[1])); n < 4 {
		t.Errorf("port a received %d frames by the metrics, want ≥ 4", n)
	}
	if m := regexp.MustCompile(`switchyard_dns_queries_total\{network="web"\} (\d+)`).FindSubmatch(body); m == nil || string(m[1]) == "0" {
		t.Errorf("DNS queries metric for web: %q, want ≥ 1", m)
	}
	if !strings.Contains(string(body), `switchyard_fdb_entries{network="web"}`) {
		t.Error("no fdb_entries metric")
	}
	stats := d.MustRun("stats")
	if !strings.Contains(stats, "web") || !strings.Contains(stats, "published ports") {
		t.Errorf("switchyard stats:\n%s", stats)
	}
	// A second capture of the same endpoint while one runs is refused.
	longPcap := filepath.Join(t.TempDir(), "b.pcap")
	long := exec.CommandContext(ctx, d.Bin, "--socket", d.Socket, "capture", "web/b", "-w", longPcap)
	if err := long.Start(); err != nil {
		t.Fatal(err)
	}
	waitCapturing(t, longPcap)
	if r := d.Run("capture", "web/b", "-w", filepath.Join(t.TempDir(), "c.pcap")); r.Code == 0 || !strings.Contains(r.Stderr, "already running") {
		t.Errorf("second capture of web/b: %s", r)
	}
	long.Process.Kill()
	long.Wait()
}

// waitCapturing waits until the capture writing path is attached: the
// daemon writes the pcap file header once it is.
func waitCapturing(t *testing.T, path string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if st, err := os.Stat(path); err == nil && st.Size() >= 24 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("capture to %s not attached after 10 s (no pcap header)", path)
		}
	}
}
