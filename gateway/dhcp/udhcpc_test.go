package dhcp_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/switchyard-net/switchyard/gateway/dhcp"
	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/tap"
	"github.com/switchyard-net/switchyard/testing/netnstest"
)

// responder stands in for the gateway on the switch: every frame the
// switch writes to it goes to the DHCP server first, as in the gateway's
// intercept; the server's frames go back into the switch from this port,
// as the gateway's port.Send does. It also answers ARP for the router
// address (udhcpc's RELEASE is unicast through the kernel, which resolves
// the server first) and drops everything else.
type responder struct {
	srv      *dhcp.Server
	offloads vswitch.Offloads
	in       atomic.Pointer[ingressBox]
	dropped  atomic.Uint64
	// partial counts DHCP frames that arrived with a partial UDP
	// checksum (checksum offload from the TAP).
	partial atomic.Uint64
}

type ingressBox struct{ vswitch.Ingress }

var _ vswitch.Port = (*responder)(nil)

func (r *responder) Info() vswitch.PortInfo {
	return vswitch.PortInfo{Name: "gateway", Kind: "gateway", Offloads: r.offloads}
}

func (r *responder) Start(in vswitch.Ingress) error {
	r.in.Store(&ingressBox{in})
	return nil
}

func (r *responder) Close() error {
	r.in.Store(nil)
	return nil
}

// send is the server's Config.Send.
func (r *responder) send(b []byte) bool {
	in := r.in.Load()
	if in == nil {
		return false
	}
	in.Receive(vswitch.Frame{Data: b})
	return true
}

func (r *responder) Write(f vswitch.Frame) error {
	if r.srv.HandleFrame(f) {
		if f.Offload.NeedsCsum() {
			r.partial.Add(1)
		}
		return nil
	}
	if reply := arpReply(f.Data); reply != nil {
		r.send(reply)
		return nil
	}
	r.dropped.Add(1)
	return nil
}

// arpReply answers an ARP request for the router address with the
// gateway's MAC, or returns nil.
func arpReply(b []byte) []byte {
	if len(b) < 14+header.ARPSize || b[12] != 0x08 || b[13] != 0x06 {
		return nil
	}
	req := header.ARP(b[14:])
	if !req.IsValid() || req.Op() != header.ARPRequest || netip.AddrFrom4([4]byte(req.ProtocolAddressTarget())) != router {
		return nil
	}
	out := make([]byte, 14+header.ARPSize)
	header.Ethernet(out).Encode(&header.EthernetFields{
		SrcAddr: tcpip.LinkAddress(serverMAC[:]), DstAddr: tcpip.LinkAddress(req.HardwareAddressSender()), Type: header.ARPProtocolNumber,
	})
	rep := header.ARP(out[14:])
	rep.SetIPv4OverEthernet()
	rep.SetOp(header.ARPReply)
	copy(rep.HardwareAddressSender(), serverMAC[:])
	copy(rep.ProtocolAddressSender(), router.AsSlice())
	copy(rep.HardwareAddressTarget(), req.HardwareAddressSender())
	copy(rep.ProtocolAddressTarget(), req.ProtocolAddressSender())
	return out
}

// udhcpcCommand finds busybox's DHCP client.
func udhcpcCommand() ([]string, error) {
	if p, err := exec.LookPath("udhcpc"); err == nil {
		return []string{p}, nil
	}
	for _, p := range []string{"/usr/sbin/udhcpc", "/sbin/udhcpc"} {
		if _, err := os.Stat(p); err == nil {
			return []string{p}, nil
		}
	}
	bb, err := exec.LookPath("busybox")
	if err != nil {
		return nil, errors.New("neither udhcpc nor busybox is installed")
	}
	list, err := exec.Command(bb, "--list").Output()
	if err != nil || !strings.Contains("\n"+string(list), "\nudhcpc\n") {
		return nil, fmt.Errorf("%s has no udhcpc applet", bb)
	}
	return []string{bb, "udhcpc"}, nil
}

// leaseScript is udhcpc's event script: it applies the lease to the
// interface the way a distribution's default script does, and records the
// options udhcpc passed for the test to read.
const leaseScript = `#!/bin/sh
echo "$1" >> %[1]s/events
case "$1" in
deconfig)
	ip addr flush dev "$interface"
	ip link set dev "$interface" up
	;;
bound|renew)
	ip addr replace "$ip/$mask" broadcast "$broadcast" dev "$interface"
	if [ -n "$mtu" ]; then ip link set dev "$interface" mtu "$mtu"; fi
	for r in $router; do ip route replace default via "$r" dev "$interface"; done
	env | sort > %[1]s/lease.env
	;;
esac
exit 0
`

// A real DHCP client, busybox's udhcpc, in a namespace of its own behind
// a TAP (as a VM's: not configured, no address), gets its address, router,
// DNS servers and MTU from the server across an in-process switch, and
// gives the address back on exit.
func TestUdhcpcGetsLease(t *testing.T) {
	for _, offload := range []bool{false, true} {
		t.Run(fmt.Sprintf("offload=%v", offload), func(t *testing.T) { testUdhcpc(t, offload) })
	}
}

func testUdhcpc(t *testing.T, offload bool) {
	client, err := udhcpcCommand()
	if err != nil {
		t.Fatalf("a DHCP client is needed (Debian package udhcpc, which .ci/run installs): %v", err)
	}
	ns := netnstest.New(t)
	vmMAC := vswitch.MAC{0x52, 0x54, 0x00, 0xab, 0xcd, 0x01}
	port, err := tap.Open(tap.Config{NetNS: ns.Path, Name: "eth0", PortName: "vm", Offload: offload,
		Configure: false, Logger: zaptest.NewLogger(t)})
	if err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) || errors.Is(err, unix.ENOENT) {
			t.Skipf("skipping: the kernel refused a TAP device: %v", err)
		}
		t.Fatal(err)
	}
	// Configure:false leaves the device as a VM's would be: down, no
	// address. Only its MAC is set, to match the static lease below.
	ns.MustRun("ip", "link", "set", "dev", "eth0", "address", vmMAC.String())

	alloc := newFakeAlloc("10.99.0.2", "10.99.0.254")
	static := netip.MustParseAddr("10.99.0.77")
	alloc.static[vmMAC] = static
	gw := &responder{}
	if offload {
		gw.offloads = vswitch.OffloadCsum | vswitch.OffloadTSO4 | vswitch.OffloadTSO6 // as the gateway's stackport
	}
	cfg := baseConfig()
	cfg.Allocator, cfg.Send, cfg.Logger = alloc, gw.send, zaptest.NewLogger(t)
	srv, err := dhcp.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	gw.srv = srv

	sw := vswitch.New(vswitch.Config{Name: "dhcptest", Logger: zaptest.NewLogger(t)})
	t.Cleanup(func() { sw.Close() }) // closes the TAP before the namespace goes
	if _, err := sw.Attach(gw, vswitch.AttachOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := sw.Attach(port, vswitch.AttachOptions{}); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	script := filepath.Join(dir, "lease.sh")
	if err := os.WriteFile(script, []byte(fmt.Sprintf(leaseScript, dir)), 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(extra ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		args := slices.Concat(client[1:], []string{"-i", "eth0", "-f", "-q", "-n", "-t", "5", "-T", "1",
			"-s", script, "-x", "hostname:vm-test", "-O", "mtu"}, extra)
		cmd := ns.Command(ctx, client[0], args...)
		out, err := cmd.CombinedOutput()
		t.Logf("udhcpc %s:\n%s", strings.Join(extra, " "), out)
		if err != nil {
			t.Fatalf("udhcpc: %v (server stats %+v)", err, srv.Stats())
		}
	}

	// First run: get a lease and keep it.
	run()
	env := readEnv(t, filepath.Join(dir, "lease.env"))
	want := map[string]string{
		"ip": static.String(), "router": router.String(), "dns": dns1.String() + " " + dns2.String(),
		"mtu": "1400", "subnet": "255.255.255.0", "mask": "24", "broadcast": "10.99.0.255",
		"domain": "sy.test", "serverid": router.String(), "lease": "3600",
	}
	for k, v := range want {
		if got := strings.TrimSpace(env[k]); got != v {
			t.Errorf("udhcpc passed %s=%q to its script, want %q", k, got, v)
		}
	}
	addrs, err := ns.Addrs("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if !contains(addrs, netip.PrefixFrom(static, 24)) {
		t.Errorf("eth0 has %v, want %s/24", addrs, static)
	}
	if link := ns.MustRun("ip", "link", "show", "eth0"); !strings.Contains(link, "mtu 1400") {
		t.Errorf("eth0 MTU not applied: %s", link)
	}
	if r := ns.MustRun("ip", "route", "show", "default"); !strings.Contains(r, "via "+router.String()+" dev eth0") {
		t.Errorf("default route %q, want via %s", r, router)
	}
	ls := srv.Leases()
	if len(ls) != 1 || ls[0].MAC != vmMAC || ls[0].Addr != static || ls[0].State != dhcp.StateBound || ls[0].Hostname != "vm-test" {
		t.Errorf("leases %+v, want %s bound to %s (vm-test)", ls, static, vmMAC)
	}

	// Second run, kept running: the same address again (asked for with
	// -r), then a RELEASE on SIGUSR2, unicast to the server through the
	// kernel.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := slices.Concat(client[1:], []string{"-i", "eth0", "-f", "-t", "5", "-T", "1", "-s", script, "-r", static.String()})
	cmd := ns.Command(ctx, client[0], args...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait(); t.Logf("udhcpc -r %s:\n%s", static, out.String()) }()
	waitFor(t, "a second lease", func() bool { return countLines(filepath.Join(dir, "events"), "bound") == 2 })
	// The RELEASE is unicast, and the client's deconfig flushes its
	// address right after sending it: were the server's MAC still being
	// resolved, the kernel would drop the queued RELEASE with the address
	// (it did, one run in five). Pin the neighbour, as a client that has
	// talked to its server has it.
	ns.MustRun("ip", "neigh", "replace", router.String(), "lladdr", serverMAC.String(), "dev", "eth0", "nud", "permanent")
	if err := cmd.Process.Signal(unix.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the RELEASE", func() bool { return len(srv.Leases()) == 0 })
	if _, held := alloc.holder(static); held {
		t.Errorf("%s still held by the allocator after RELEASE", static)
	}
	st := srv.Stats()
	t.Logf("server stats %+v; %d DHCP frames with a partial checksum; responder dropped %d other frames",
		st, gw.partial.Load(), gw.dropped.Load())
	if st.Discovers < 2 || st.Offers < 2 || st.Acks < 2 || st.Releases != 1 || st.Malformed != 0 || st.Naks != 0 {
		t.Errorf("stats %+v, want ≥2 DISCOVER/OFFER/ACK, 1 RELEASE, nothing malformed or NAKed", st)
	}
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// countLines counts the lines of the file at path that are exactly s.
func countLines(path, s string) int {
	b, _ := os.ReadFile(path)
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if l == s {
			n++
		}
	}
	return n
}

// readEnv reads a file of NAME=value lines.
func readEnv(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("udhcpc never ran its script for a lease: %v", err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			env[k] = v
		}
	}
	return env
}

func contains(ps []netip.Prefix, p netip.Prefix) bool {
	for _, x := range ps {
		if x == p {
			return true
		}
	}
	return false
}
