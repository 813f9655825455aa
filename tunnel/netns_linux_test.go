//go:build linux

package tunnel_test

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"

	"go.uber.org/zap/zaptest"
	"golang.org/x/sys/unix"

	"github.com/switchyard-net/switchyard/internal/evloop"
	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/tap"
	"github.com/switchyard-net/switchyard/testing/netnstest"
	"github.com/switchyard-net/switchyard/tunnel"
)

// The topology of the namespace tests:
//
//	 container ns            host ns (one per "host")                wire ns
//	┌────────────┐  TAP   ┌─────────────────────────────────┐  veth  ┌────────┐
//	│ eth0       │◄──────►│ vswitch (in the test process)   │        │        │
//	│ 10.240.0.x │        │   └─ tunnel.Port: UDP socket ───┼─eth0──►│  br0   │
//	└────────────┘        │      made inside the host ns    │10.213. │        │
//	                      └─────────────────────────────────┘  0.h   └────────┘
//
// The switches and tunnel ports run in the test process; only their file
// descriptors belong to the namespaces. All addresses live inside
// namespaces the test creates.

// underlay is the wire namespace with its bridge.
type underlay struct {
	t        *testing.T
	wire     *netnstest.NS
	n        int
	stranger *net.UDPConn // for drain, made on first use
}

func newUnderlay(t *testing.T) *underlay {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping: creates network namespaces")
	}
	w := netnstest.New(t)
	w.MustRun("ip", "link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0")
	w.MustRun("ip", "link", "set", "br0", "up")
	return &underlay{t: t, wire: w}
}

// hostNS adds a host namespace joined to the bridge, with underlay
// address 10.213.0.h/24, and returns it with the address.
func (u *underlay) hostNS() (*netnstest.NS, netip.Addr) {
	u.t.Helper()
	u.n++
	h := netnstest.New(u.t)
	port := fmt.Sprintf("h%d", u.n)
	u.wire.MustRun("ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", h.Name)
	u.wire.MustRun("ip", "link", "set", port, "master", "br0", "up")
	addr := netip.AddrFrom4([4]byte{10, 213, 0, byte(u.n)})
	h.MustRun("ip", "addr", "add", addr.String()+"/24", "dev", "eth0")
	h.MustRun("ip", "link", "set", "eth0", "up")
	return h, addr
}

// syHost is a host running Switchyard: a switch and a tunnel port.
type syHost struct {
	ns   *netnstest.NS
	addr netip.Addr
	sw   *vswitch.Switch
	tun  *tunnel.Port
	link *vswitch.Link
	loop *evloop.Loop // reads the tunnel and the containers' TAPs, if set
}

type hostOpts struct {
	mode    tunnel.Mode
	router  *vswitch.Router
	disable tunnel.Features
	loop    *evloop.Loop
}

func (u *underlay) syHost(o hostOpts) *syHost {
	u.t.Helper()
	t := u.t
	ns, addr := u.hostNS()
	h := &syHost{ns: ns, addr: addr, loop: o.loop}
	var conn *net.UDPConn
	err := ns.Do(func() (err error) {
		conn, err = net.ListenUDP("udp4", &net.UDPAddr{Port: int(o.mode.DefaultPort())})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	h.sw = vswitch.New(vswitch.Config{Name: ns.Name, Logger: zaptest.NewLogger(t), Router: o.router})
	t.Cleanup(func() { h.sw.Close() })
	cfg := tunnel.Config{Name: "tunnel", Mode: o.mode, VNI: 42, Conn: conn, Logger: zaptest.NewLogger(t), Disable: o.disable, Loop: o.loop}
	if o.mode == tunnel.ModeSecure {
		cfg.Key, cfg.KeyID, cfg.SenderID = testKey(3), 1, uint32(addr.As4()[3])
	}
	h.tun, err = tunnel.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.link, err = h.sw.Attach(h.tun, vswitch.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// drain is drainWith for namespaced hosts. The stranger is a socket in a
// namespace of its own on the underlay, at an address no host has as a
// peer.
func (u *underlay) drain(tb testing.TB, hosts ...*syHost) {
	tb.Helper()
	if u.stranger == nil {
		ns, _ := u.hostNS()
		if err := ns.Do(func() (err error) {
			u.stranger, err = net.ListenUDP("udp4", &net.UDPAddr{})
			return err
		}); err != nil {
			tb.Fatal(err)
		}
		u.t.Cleanup(func() { u.stranger.Close() })
	}
	for _, h := range hosts {
		to := netip.AddrPortFrom(h.addr, h.tun.LocalAddr().Port())
		drainWith(tb, h.tun, func(b []byte) error {
			_, err := u.stranger.WriteToUDPAddrPort(b, to)
			return err
		})
	}
}

// peerWith makes every host a peer of every other.
func peerWith(t *testing.T, hosts ...*syHost) {
	t.Helper()
	for _, a := range hosts {
		for _, b := range hosts {
			if a != b {
				if err := a.tun.AddPeer(netip.AddrPortFrom(b.addr, 0)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

// container is a namespace with a TAP on a host's switch.
type container struct {
	ns   *netnstest.NS
	ip   netip.Prefix
	mac  vswitch.MAC
	port *tap.Port
	link *vswitch.Link
}

func containerMAC(ip netip.Addr) vswitch.MAC {
	a := ip.As4()
	return vswitch.MAC{0x02, 0x42, a[0], a[1], a[2], a[3]}
}

// container creates a container namespace with eth0 at ip (a /24 of
// 10.240.0.0) and MTU mtu, attached to h's switch.
func (h *syHost) container(t *testing.T, ip string, mtu int) *container {
	t.Helper()
	ns := netnstest.New(t)
	return h.attach(t, ns, netip.MustParsePrefix(ip+"/24"), mtu)
}

// attach puts a TAP into ns, configured with ip, on h's switch.
func (h *syHost) attach(t *testing.T, ns *netnstest.NS, ip netip.Prefix, mtu int) *container {
	t.Helper()
	c := &container{ns: ns, ip: ip, mac: containerMAC(ip.Addr())}
	var err error
	c.port, err = tap.Open(tap.Config{
		NetNS: ns.Path, Name: "eth0", PortName: ns.Name, MTU: mtu, MAC: c.mac,
		Addrs: []netip.Prefix{ip}, Offload: true, Configure: true, Logger: zaptest.NewLogger(t), Loop: h.loop,
	})
	if err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			t.Skipf("skipping: the kernel refused a TAP device: %v", err)
		}
		t.Fatal(err)
	}
	c.link, err = h.sw.Attach(c.port, vswitch.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.port.Remove() })
	return c
}

func (c *container) addr() string { return c.ip.Addr().String() }

// logTunnel reports a tunnel's counters in the test log.
func logTunnel(t *testing.T, name string, p *tunnel.Port) {
	s := p.Stats()
	drops := map[string]uint64{}
	for _, r := range tunnel.DropReasons() {
		if s.DropsBy[r] != 0 {
			drops[r.String()] = s.DropsBy[r]
		}
	}
	t.Logf("%s: features %v; tx %d frames/%d datagrams in %d syscalls (%d GSO), %d superframes cut; rx %d datagrams in %d batches (%d GRO), %d superframes built, %d received whole, %d checksums completed; drops %v",
		name, p.Features(), s.TXFrames, s.TXDatagrams, s.TXSyscalls, s.TXGSO, s.Segmented,
		s.RXDatagrams, s.RXBatches, s.RXGRO, s.Coalesced, s.ReceivedSuperframes, s.ChecksumsCompleted, drops)
}
