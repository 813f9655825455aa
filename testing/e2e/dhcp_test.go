package e2e_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/songgao/water"
	"golang.org/x/sys/unix"

	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/testing/clitest"
	"github.com/switchyard-net/switchyard/testing/netnstest"
)

// udhcpcScript is the DHCP client's event script: it applies the lease
// as a distribution's default script does and records what udhcpc was
// given.
const udhcpcScript = `#!/bin/sh
case "$1" in
deconfig)
	ip addr flush dev "$interface"
	ip link set dev "$interface" up
	;;
bound|renew)
	ip addr replace "$ip/$mask" dev "$interface"
	if [ -n "$mtu" ]; then ip link set dev "$interface" mtu "$mtu"; fi
	for r in $router; do ip route replace default via "$r" dev "$interface"; done
	env | sort > %[1]s.tmp && mv %[1]s.tmp %[1]s
	;;
esac
exit 0
`

// udhcpc runs busybox's DHCP client on ifname in ns until it has a lease
// and returns the options it was given. With release, the client stays
// until the lease is applied and then gets SIGTERM, on which (-R) it
// releases the lease, as a VM shutting down does.
func udhcpc(t *testing.T, ns *netnstest.NS, ifname string, release bool) map[string]string {
	t.Helper()
	bin, err := exec.LookPath("udhcpc")
	if err != nil {
		t.Fatalf("udhcpc (Debian package udhcpc) is needed: %v", err)
	}
	dir := t.TempDir()
	envFile := filepath.Join(dir, "lease.env")
	script := filepath.Join(dir, "script.sh")
	if err := os.WriteFile(script, []byte(fmt.Sprintf(udhcpcScript, envFile)), 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{"-i", ifname, "-f", "-n", "-t", "5", "-T", "1", "-s", script, "-x", "hostname:" + ns.Name, "-O", "mtu", "-O", "domain"}
	if release {
		args = append(args, "-R")
	} else {
		args = append(args, "-q")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out strings.Builder
	cmd := ns.Command(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if release {
		for ctx.Err() == nil {
			if _, err := os.Stat(envFile); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		// The RELEASE is unicast, and the deconfig that follows flushes
		// the address: were the server's MAC still being resolved then,
		// the kernel would drop the queued RELEASE with the address. A
		// ping to the router resolves it first, as a client that has
		// talked to its server has it resolved.
		if b, err := os.ReadFile(envFile); err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				if r, ok := strings.CutPrefix(line, "router="); ok && r != "" {
					ns.Ping(strings.Fields(r)[0], 1)
				}
			}
		}
		cmd.Process.Signal(unix.SIGTERM)
	}
	if err := cmd.Wait(); err != nil && !release {
		t.Fatalf("udhcpc in %s: %v\n%s", ns.Name, err, out.String())
	}
	if release && !strings.Contains(out.String(), "sending release") {
		t.Fatalf("udhcpc in %s did not release its lease:\n%s", ns.Name, out.String())
	}
	f, err := os.Open(envFile)
	if err != nil {
		t.Fatalf("udhcpc in %s got no lease: %v\n%s", ns.Name, err, out.String())
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

func leases(t *testing.T, d *clitest.Daemon, network string) map[string]api.DHCPLease {
	t.Helper()
	var n api.Network
	if err := json.Unmarshal([]byte(d.MustRun("network", "inspect", network, "--format", "json")), &n); err != nil {
		t.Fatal(err)
	}
	m := map[string]api.DHCPLease{}
	for _, l := range n.DHCPLeases {
		m[l.MAC] = l
	}
	return m
}

// A real DHCP client in a namespace connected with --dhcp gets the address
// IPAM reserved for the endpoint (a static lease by its MAC), with the
// gateway as router and resolver, the network's MTU and its name as the
// domain; a client with a MAC of its own gets the lowest free address,
// which goes back to the pool when it releases it.
func TestDHCP(t *testing.T) {
	d := clitest.NewDaemon(t)
	d.Start()
	d.MustRun("network", "create", "vms", "--subnet", "10.250.20.0/24", "--mtu", "1400")
	a, b, c := netnstest.New(t), netnstest.New(t), netnstest.New(t)

	var ep api.Endpoint
	if err := json.Unmarshal([]byte(d.MustRun("connect", "vms", "--netns", a.Path, "--name", "a", "--dhcp", "--format", "json")), &ep); err != nil {
		t.Fatal(err)
	}
	if out := a.MustRun("ip", "-4", "-brief", "addr", "show", "eth0"); strings.Contains(out, "10.250.20.") {
		t.Fatalf("--dhcp left an address on eth0: %q", out)
	}
	env := udhcpc(t, a, "eth0", false)
	for k, want := range map[string]string{"ip": ep.Address.Addr().String(), "router": "10.250.20.1", "dns": "10.250.20.1",
		"mtu": "1400", "mask": "24", "domain": "vms"} {
		if env[k] != want {
			t.Errorf("udhcpc got %s=%q, want %q", k, env[k], want)
		}
	}
	if err := a.Ping("10.250.20.1", 1); err != nil {
		t.Errorf("after DHCP, ping the gateway: %v", err)
	}
	if l, ok := leases(t, d, "vms")[ep.MAC]; !ok || l.State != "bound" || l.Addr != ep.Address.Addr() {
		t.Errorf("lease table has %+v for %s, want bound to %s", l, ep.MAC, ep.Address.Addr())
	}

	// b is an endpoint too (10.250.20.3), but its interface now has a MAC
	// of its own, as a VM behind it would: a dynamic lease, the lowest
	// free address. Port security lets it send from that MAC only with
	// --mac-spoofing, and from the leased address once it is leased.
	d.MustRun("connect", "vms", "--netns", b.Path, "--name", "b", "--dhcp", "--mac-spoofing")
	const vmMAC = "52:54:00:00:00:99"
	b.MustRun("ip", "link", "set", "eth0", "address", vmMAC)
	env = udhcpc(t, b, "eth0", true)
	if env["ip"] != "10.250.20.4" {
		t.Errorf("dynamic lease for %s: %q, want 10.250.20.4, the lowest free address", vmMAC, env["ip"])
	}
	// udhcpc -R released it on exit: the address is free again. (The
	// RELEASE is unicast, so it may still be on its way.)
	deadline := time.Now().Add(5 * time.Second)
	for {
		l, ok := leases(t, d, "vms")[vmMAC]
		if !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the released lease is still in the table: %+v", l)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var ec api.Endpoint
	if err := json.Unmarshal([]byte(d.MustRun("connect", "vms", "--netns", c.Path, "--name", "c", "--format", "json")), &ec); err != nil {
		t.Fatal(err)
	}
	if ec.Address.Addr().String() != "10.250.20.4" {
		t.Errorf("after the release, the next endpoint got %s, want 10.250.20.4 back", ec.Address)
	}
	if s := d.MustRun("stats"); !strings.Contains(s, "vms") {
		t.Errorf("stats do not list the network: %s", s)
	}
}

// connect --tap-only makes a TAP in the daemon's namespace for a VM; the
// VM (here: the test holds the TAP's file descriptor as QEMU would and
// relays it to a veth whose far end is the VM's NIC, in a namespace with a
// real DHCP client) gets the address reserved for its --mac.
func TestDHCPForVMTap(t *testing.T) {
	host, vm := netnstest.New(t), netnstest.New(t)
	d := clitest.NewDaemon(t)
	d.Wrap = []string{"nsenter", "--net=" + host.Path}
	d.Start()
	d.MustRun("network", "create", "vms", "--subnet", "10.250.21.0/24")
	const mac = "52:54:00:12:34:56"
	var ep api.Endpoint
	if err := json.Unmarshal([]byte(d.MustRun("connect", "vms", "--tap-only", "vmtap0", "--mac", mac, "--format", "json")), &ep); err != nil {
		t.Fatal(err)
	}
	if ep.Kind != "vm" || ep.MAC != mac {
		t.Fatalf("connect --tap-only: %+v", ep)
	}
	if _, err := host.Run("ip", "link", "show", "vmtap0"); err != nil {
		t.Fatalf("no vmtap0 in the daemon's namespace: %v", err)
	}

	// The VM's NIC: eth0 in vm, with the VM's MAC; its other end, vmnic,
	// stays in host, where the relay joins it to the TAP.
	host.MustRun("ip", "link", "add", "vmnic", "type", "veth", "peer", "name", "eth0", "netns", vm.Name)
	host.MustRun("ip", "link", "set", "vmnic", "up")
	vm.MustRun("ip", "link", "set", "eth0", "address", mac)
	relayVM(t, host, "vmtap0", "vmnic")

	env := udhcpc(t, vm, "eth0", false)
	if env["ip"] != ep.Address.Addr().String() || env["router"] != "10.250.21.1" {
		t.Errorf("the VM got ip=%q router=%q, want %s and 10.250.21.1", env["ip"], env["router"], ep.Address.Addr())
	}
	if err := vm.Ping("10.250.21.1", 1); err != nil {
		t.Errorf("the VM cannot ping its gateway: %v", err)
	}
	d.MustRun("disconnect", "vms", "vmtap0")
	if _, err := host.Run("ip", "link", "show", "vmtap0"); err == nil {
		t.Error("disconnect left vmtap0")
	}
}

// relayVM opens the TAP in ns as QEMU's -netdev tap does and copies frames
// between it and the interface nic (an AF_PACKET socket), until the test
// ends.
func relayVM(t *testing.T, ns *netnstest.NS, tapName, nic string) {
	t.Helper()
	var tapDev *water.Interface
	var fd int
	err := ns.Do(func() error {
		var err error
		tapDev, err = water.New(water.Config{DeviceType: water.TAP, PlatformSpecificParams: water.PlatformSpecificParams{Name: tapName}})
		if err != nil {
			return err
		}
		ifi, err := net.InterfaceByName(nic)
		if err != nil {
			return err
		}
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		// Wake up now and then to notice the end of the test.
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 200000}); err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index})
	})
	if err != nil {
		t.Fatalf("play the VM's QEMU: %v", err)
	}
	done := make(chan struct{}, 2)
	var stop atomic.Bool
	t.Cleanup(func() {
		stop.Store(true)
		tapDev.Close()
		for range 2 {
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Error("the VM relay did not stop")
				return
			}
		}
		unix.Close(fd)
	})
	go func() { // TAP → NIC: what the switch sends the VM
		defer func() { done <- struct{}{} }()
		buf := make([]byte, 65536)
		for {
			n, err := tapDev.Read(buf)
			if err != nil {
				return
			}
			unix.Write(fd, buf[:n])
		}
	}()
	go func() { // NIC → TAP: what the VM sends
		defer func() { done <- struct{}{} }()
		buf := make([]byte, 65536)
		for {
			n, from, err := unix.Recvfrom(fd, buf, 0)
			if stop.Load() {
				return
			}
			if err == unix.EAGAIN || err == unix.EINTR {
				continue
			}
			if err != nil {
				return
			}
			if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
				continue // our own writes
			}
			if _, err := tapDev.Write(buf[:n]); err != nil {
				return
			}
		}
	}()
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
