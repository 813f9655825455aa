package tap_test

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	"golang.org/x/sys/unix"

	"github.com/switchyard-net/switchyard/internal/nsenter"
	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/tap"
	"github.com/switchyard-net/switchyard/testing/netnstest"
)

func openIn(t *testing.T, ns *netnstest.NS, addr string, offload bool) *tap.Port {
	t.Helper()
	return openWith(t, ns, addr, offload, nil)
}

// openWith is openIn with more of the config set by more.
func openWith(t *testing.T, ns *netnstest.NS, addr string, offload bool, more func(*tap.Config)) *tap.Port {
	t.Helper()
	p := netip.MustParsePrefix(addr)
	cfg := tap.Config{
		NetNS: ns.Path, Name: "eth0", PortName: ns.Name, MTU: 1500,
		MAC:   vswitch.MAC{0x02, 0x42, 10, 77, 0, p.Addr().As4()[3]},
		Addrs: []netip.Prefix{p}, Offload: offload, Configure: true,
		Logger: zaptest.NewLogger(t),
	}
	if more != nil {
		more(&cfg)
	}
	port, err := tap.Open(cfg)
	if err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			t.Skipf("skipping: the kernel refused a TAP device: %v", err)
		}
		t.Fatal(err)
	}
	return port
}

func mustIfindex(t *testing.T, ns *netnstest.NS, ifname string) int {
	t.Helper()
	i, err := ns.Ifindex(ifname)
	if err != nil {
		t.Fatal(err)
	}
	return i
}

func TestOpenConfiguresDevice(t *testing.T) {
	ns := netnstest.New(t)
	port, err := tap.Open(tap.Config{
		NetNS: ns.Path, Name: "eth0", MTU: 1400, MAC: vswitch.MAC{0x02, 0x42, 10, 77, 0, 2},
		Addrs: []netip.Prefix{netip.MustParsePrefix("10.77.0.2/24")}, Gateway: netip.MustParseAddr("10.77.0.1"),
		Offload: true, Configure: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer port.Remove()
	link := ns.MustRun("ip", "-d", "link", "show", "eth0")
	for _, want := range []string{"mtu 1400", "02:42:0a:4d:00:02", "tap", "UP"} {
		if !strings.Contains(link, want) {
			t.Errorf("ip link show eth0 lacks %q:\n%s", want, link)
		}
	}
	addrs, err := ns.Addrs("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if len(addrs) == 0 || addrs[0] != netip.MustParsePrefix("10.77.0.2/24") {
		t.Errorf("eth0 addresses %v, want 10.77.0.2/24 first", addrs)
	}
	if r := ns.MustRun("ip", "route", "show", "default"); !strings.Contains(r, "via 10.77.0.1 dev eth0") {
		t.Errorf("default route %q, want via 10.77.0.1 dev eth0", r)
	}
	if info := port.Info(); info.Offloads&vswitch.OffloadTSO4 == 0 {
		t.Errorf("offload port advertises %v, want TSO4", info.Offloads)
	}
}

func TestNameTakenIsAnError(t *testing.T) {
	ns := netnstest.New(t)
	ns.MustRun("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth9")
	for _, offload := range []bool{false, true} {
		_, err := tap.Open(tap.Config{NetNS: ns.Path, Name: "eth0", Offload: offload, Configure: true})
		if !errors.Is(err, tap.ErrExists) {
			t.Errorf("offload=%v: open over an existing eth0: err %v, want ErrExists", offload, err)
		}
	}
}

// A new device's name is taken or free in one step (IFF_TUN_EXCL): a
// persistent TAP left by an earlier run is not silently re-attached
// without Existing, the failed open leaves it as it was, and of several
// opens racing for one free name exactly one wins.
func TestOpenIsExclusive(t *testing.T) {
	for _, offload := range []bool{false, true} {
		t.Run(fmt.Sprintf("offload=%v", offload), func(t *testing.T) {
			ns := netnstest.New(t)
			left := openIn(t, ns, "10.77.0.2/24", offload)
			left.Close() // persistent: eth0 stays, detached, as after a crash
			ifindex := mustIfindex(t, ns, "eth0")
			_, err := tap.Open(tap.Config{NetNS: ns.Path, Name: "eth0", Offload: offload, Configure: true,
				Addrs: []netip.Prefix{netip.MustParsePrefix("10.77.0.9/24")}})
			if !errors.Is(err, tap.ErrExists) {
				t.Fatalf("open over a detached persistent eth0: err %v, want ErrExists", err)
			}
			if got := mustIfindex(t, ns, "eth0"); got != ifindex {
				t.Errorf("eth0's ifindex went from %d to %d: the failed open replaced it", ifindex, got)
			}
			if addrs, err := ns.Addrs("eth0"); err != nil || len(addrs) == 0 || addrs[0] != netip.MustParsePrefix("10.77.0.2/24") ||
				slices.Contains(addrs, netip.MustParsePrefix("10.77.0.9/24")) {
				t.Errorf("eth0 has %v (%v) after the failed open, want 10.77.0.2/24 untouched", addrs, err)
			}

			const racers = 8
			errs := make(chan error, racers)
			ports := make(chan *tap.Port, racers)
			for range racers {
				go func() {
					p, err := tap.Open(tap.Config{NetNS: ns.Path, Name: "eth1", Offload: offload})
					if err == nil {
						ports <- p
					}
					errs <- err
				}()
			}
			var won int
			for range racers {
				switch err := <-errs; {
				case err == nil:
					won++
				case !errors.Is(err, tap.ErrExists):
					t.Errorf("a losing open: err %v, want ErrExists", err)
				}
			}
			close(ports)
			for p := range ports {
				p.Remove()
			}
			if won != 1 {
				t.Errorf("%d of %d racing opens of one new name succeeded, want exactly 1", won, racers)
			}
		})
	}
}

func TestMissingNamespace(t *testing.T) {
	_, err := tap.Open(tap.Config{NetNS: "/var/run/netns/does-not-exist-sy", Name: "eth0"})
	if err == nil || !strings.Contains(err.Error(), "/var/run/netns/does-not-exist-sy") {
		t.Fatalf("err %v, want an error naming the missing namespace", err)
	}
}

// Two namespaces, one TAP each, on one switch: ping and a TCP transfer
// through the kernel stacks, with and without offload.
func TestTwoNamespacesThroughSwitch(t *testing.T) {
	for _, offload := range []bool{false, true} {
		t.Run(fmt.Sprintf("offload=%v", offload), func(t *testing.T) {
			a, b := netnstest.New(t), netnstest.New(t)
			sw := vswitch.New(vswitch.Config{Logger: zaptest.NewLogger(t)})
			t.Cleanup(func() { sw.Close() })
			la, err := sw.Attach(openIn(t, a, "10.77.0.2/24", offload), vswitch.AttachOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := sw.Attach(openIn(t, b, "10.77.0.3/24", offload), vswitch.AttachOptions{}); err != nil {
				t.Fatal(err)
			}
			if err := a.Ping("10.77.0.3", 2); err != nil {
				t.Fatal(err)
			}
			sum, _ := netnstest.Transfer(t, a, b, "10.77.0.3:9000", 16<<20)
			t.Logf("16 MiB transferred, sha256 %x", sum[:6])
			st := sw.Stats()
			if offload && st.Segmented != 0 {
				t.Errorf("%d superframes segmented between two offload TAPs, want 0", st.Segmented)
			}
			if la.Stats().RX.Bytes < 16<<20 {
				t.Errorf("port a received %d bytes, want ≥ 16 MiB", la.Stats().RX.Bytes)
			}
		})
	}
}

// A persistent device survives its port: re-opening with Existing gets
// the same interface back, configured, and traffic resumes.
func TestReattachExisting(t *testing.T) {
	a, b := netnstest.New(t), netnstest.New(t)
	sw := vswitch.New(vswitch.Config{})
	t.Cleanup(func() { sw.Close() })
	pa := openIn(t, a, "10.77.0.2/24", true)
	la, _ := sw.Attach(pa, vswitch.AttachOptions{})
	sw.Attach(openIn(t, b, "10.77.0.3/24", true), vswitch.AttachOptions{})
	if err := a.Ping("10.77.0.3", 1); err != nil {
		t.Fatal(err)
	}
	ifindex := mustIfindex(t, a, "eth0")
	sw.Detach(la) // closes the fd, as a daemon crash would
	if !strings.Contains(a.MustRun("ip", "link", "show", "eth0"), "NO-CARRIER") {
		t.Error("eth0 still has carrier with no process attached")
	}
	pa2, err := tap.Open(tap.Config{NetNS: a.Path, Name: "eth0", MTU: 1500, Existing: true, Offload: true, Configure: true,
		MAC: vswitch.MAC{0x02, 0x42, 10, 77, 0, 2}, Addrs: []netip.Prefix{netip.MustParsePrefix("10.77.0.2/24")}})
	if err != nil {
		t.Fatal(err)
	}
	sw.Attach(pa2, vswitch.AttachOptions{})
	if got := mustIfindex(t, a, "eth0"); got != ifindex {
		t.Errorf("ifindex changed from %d to %d: the device was recreated, not re-attached", ifindex, got)
	}
	if err := a.Ping("10.77.0.3", 1); err != nil {
		t.Fatalf("after re-attach: %v", err)
	}
}

func TestUnpersistDeletesOnClose(t *testing.T) {
	ns := netnstest.New(t)
	p := openIn(t, ns, "10.77.0.2/24", false)
	if err := p.Unpersist(); err != nil {
		t.Fatal(err)
	}
	p.Close()
	if out, err := ns.Run("ip", "link", "show", "eth0"); err == nil {
		t.Fatalf("eth0 still exists after Unpersist and Close:\n%s", out)
	}
}

// Deleting the interface under a running port (ip link del inside the
// namespace) stops its reader and reports it through OnGone.
func TestDeviceDeletedCallsOnGone(t *testing.T) {
	ns := netnstest.New(t)
	gone := make(chan error, 1)
	p, err := tap.Open(tap.Config{NetNS: ns.Path, Name: "eth0", Configure: true, OnGone: func(err error) { gone <- err }})
	if err != nil {
		t.Fatal(err)
	}
	sw := vswitch.New(vswitch.Config{})
	defer sw.Close()
	sw.Attach(p, vswitch.AttachOptions{})
	ns.MustRun("ip", "link", "del", "eth0")
	select {
	case err := <-gone:
		t.Logf("OnGone: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("OnGone not called after the device was deleted")
	}
}

// An open TAP holds a reference on its namespace: deleting the
// namespace's name does not destroy it while the port is open. The daemon
// therefore watches namespace paths itself. This test pins that kernel
// behaviour down, so a change in it is noticed.
func TestOpenTAPKeepsNamespaceAlive(t *testing.T) {
	ns := netnstest.New(t)
	p := openIn(t, ns, "10.77.0.2/24", false)
	if _, err := nsenter.Stat(ns.Path); err != nil {
		t.Fatal(err)
	}
	if out, err := netnstest.Delete(ns); err != nil {
		t.Fatalf("delete namespace: %v %s", err, out)
	}
	if _, err := nsenter.Stat(ns.Path); err == nil {
		t.Fatal("namespace path still exists after ip netns del")
	}
	// The device is still usable: the namespace lives on, unnamed.
	if err := p.Write(vswitch.Frame{Data: make([]byte, 60)}); err != nil {
		t.Fatalf("write to a TAP whose namespace lost its name: %v", err)
	}
	p.Remove()
}

// Garbage frames written into the TAP from inside the namespace (a raw
// packet socket) are dropped and counted; forwarding goes on. (Frames
// shorter than an Ethernet header cannot come from a TAP: the kernel
// refuses to send them, EINVAL.)
func TestMalformedFramesFromTAP(t *testing.T) {
	a, b := netnstest.New(t), netnstest.New(t)
	sw := vswitch.New(vswitch.Config{})
	t.Cleanup(func() { sw.Close() })
	la, _ := sw.Attach(openIn(t, a, "10.77.0.2/24", false), vswitch.AttachOptions{})
	sw.Attach(openIn(t, b, "10.77.0.3/24", false), vswitch.AttachOptions{})

	err := func() error {
		sock, err := a.Socket(unix.AF_PACKET, unix.SOCK_RAW)
		if err != nil {
			return err
		}
		defer sock.Close()
		sa := &unix.SockaddrLinklayer{Ifindex: mustIfindex(t, a, "eth0")}
		frame := func(src []byte, n int) []byte {
			b := make([]byte, n)
			copy(b, vswitch.Broadcast[:])
			copy(b[6:], src)
			return b
		}
		junk := [][]byte{
			frame(nil, vswitch.EthHeaderLen),       // a bare header from 00:00:00:00:00:00
			frame([]byte{0x01, 0, 0, 0, 0, 1}, 60), // from a multicast address
			frame(nil, 60),                         // from 00:00:00:00:00:00
		}
		for _, f := range junk {
			if err := unix.Sendto(int(sock.Fd()), f, 0, sa); err != nil {
				return fmt.Errorf("send a %d-byte frame: %w", len(f), err)
			}
		}
		return nil
	}()
	if errors.Is(err, unix.EPERM) {
		t.Skipf("skipping: the kernel refused a raw packet socket: %v", err)
	} else if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for la.Stats().RX.DropsBy[vswitch.DropMalformed] < 3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if d := la.Stats().RX.DropsBy[vswitch.DropMalformed]; d < 3 {
		t.Fatalf("malformed drops = %d, want ≥ 3", d)
	}
	if err := a.Ping("10.77.0.3", 1); err != nil {
		t.Fatalf("forwarding broken after malformed frames: %v", err)
	}
}

// Writing a frame to a TAP allocates nothing, with and without the
// virtio-net header.
func TestWriteDoesNotAllocate(t *testing.T) {
	for _, offload := range []bool{false, true} {
		ns := netnstest.New(t)
		p := openIn(t, ns, "10.77.0.2/24", offload)
		defer p.Remove()
		fr := make([]byte, 1514)
		copy(fr, []byte{0x02, 0x42, 10, 77, 0, 9, 0x02, 0x42, 10, 77, 0, 8, 0x08, 0x00})
		f := vswitch.Frame{Data: fr}
		if a := testing.AllocsPerRun(200, func() { p.Write(f) }); a != 0 {
			t.Errorf("offload=%v: Write allocates %.1f per frame, want 0", offload, a)
		}
	}
}
