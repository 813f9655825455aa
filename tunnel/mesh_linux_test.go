//go:build linux

package tunnel_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/testing/netnstest"
	"github.com/switchyard-net/switchyard/tunnel"
)

// probeType is the EtherType of the test's own frames (IEEE local
// experimental), so that counts ignore the containers' own chatter
// (IPv6 router solicitations and the like).
const probeType = 0x88b5

// probeCounter counts the probe frames carrying tag that cross a link in
// each direction.
type probeCounter struct{ rx, tx atomic.Int64 }

func countProbes(l *vswitch.Link, tag []byte) *probeCounter {
	c := &probeCounter{}
	l.SetCapture(func(dir vswitch.Direction, f vswitch.Frame) {
		if len(f.Data) >= 14+len(tag) && binary.BigEndian.Uint16(f.Data[12:14]) == probeType && bytes.Equal(f.Data[14:14+len(tag)], tag) {
			if dir == vswitch.DirRX {
				c.rx.Add(1)
			} else {
				c.tx.Add(1)
			}
		}
	})
	return c
}

// sendRaw sends frame out of eth0 of namespace ns with a packet socket.
func sendRaw(t *testing.T, ns *netnstest.NS, frame []byte) {
	t.Helper()
	err := ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		return unix.Sendto(fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: ifi.Index})
	})
	if err != nil {
		if errors.Is(err, unix.EPERM) {
			t.Skipf("skipping: the kernel refused a raw frame: %v", err)
		}
		t.Fatalf("send a raw frame: %v", err)
	}
}

// Three hosts in a full mesh: a broadcast from one container reaches the
// other two exactly once and comes back to nobody; a MAC that moves from
// host b to host c is relearned behind c and traffic follows it.
func TestThreeHosts(t *testing.T) {
	u := newUnderlay(t)
	a, b, c := u.syHost(hostOpts{}), u.syHost(hostOpts{}), u.syHost(hostOpts{})
	peerWith(t, a, b, c)
	ca, cb, cc := a.container(t, "10.240.0.2", 1450), b.container(t, "10.240.0.3", 1450), c.container(t, "10.240.0.4", 1450)
	if err := ca.ns.Ping(cb.addr(), 1); err != nil {
		t.Fatal(err)
	}
	if err := ca.ns.Ping(cc.addr(), 1); err != nil {
		t.Fatal(err)
	}

	t.Run("broadcast", func(t *testing.T) {
		tag := []byte("switchyard broadcast probe")
		counts := map[string]*probeCounter{
			"a tunnel": countProbes(a.link, tag), "b tunnel": countProbes(b.link, tag), "c tunnel": countProbes(c.link, tag),
			"a container": countProbes(ca.link, tag), "b container": countProbes(cb.link, tag), "c container": countProbes(cc.link, tag),
		}
		frame := make([]byte, 14, 100)
		copy(frame[0:6], vswitch.Broadcast[:])
		copy(frame[6:12], ca.mac[:])
		binary.BigEndian.PutUint16(frame[12:14], probeType)
		frame = append(frame, tag...)
		frame = append(frame, make([]byte, 60)...)
		sendRaw(t, ca.ns, frame)
		waitFor(t, "the broadcast at b and c", func() bool {
			return counts["b container"].tx.Load() == 1 && counts["c container"].tx.Load() == 1
		})
		// Each host's forwarding of it is done and counted.
		u.drain(t, a, b, c)
		want := map[string][2]int64{ // rx, tx as the switch sees the link
			"a container": {1, 0}, "a tunnel": {0, 1},
			"b tunnel": {1, 0}, "b container": {0, 1},
			"c tunnel": {1, 0}, "c container": {0, 1},
		}
		for name, w := range want {
			if got := [2]int64{counts[name].rx.Load(), counts[name].tx.Load()}; got != w {
				t.Errorf("%s: probe rx/tx %v, want %v", name, got, w)
			}
		}
	})

	t.Run("mac moves", func(t *testing.T) {
		// Container x lives on b, then its namespace is re-attached to c
		// with the same MAC and address, as a migrated container would be.
		xns := netnstest.New(t)
		xip := netip.MustParsePrefix("10.240.0.50/24")
		x := b.attach(t, xns, xip, 1450)
		if err := ca.ns.Ping(x.addr(), 1); err != nil {
			t.Fatal(err)
		}
		if p := peerOf(a.tun, x.mac); p != netip.AddrPortFrom(b.addr, tunnel.VXLANPort) {
			t.Fatalf("a learned x behind %v, want b", p)
		}
		moves := a.tun.Stats().MACMoves
		b.sw.Detach(x.link)
		if err := x.port.Remove(); err != nil {
			t.Fatal(err)
		}
		x2 := c.attach(t, xns, xip, 1450)
		// x speaks first (its ARP cache went with its old interface), so a
		// relearns it; then a's traffic must follow.
		if err := x2.ns.Ping(ca.addr(), 2); err != nil {
			t.Fatal(err)
		}
		if p := peerOf(a.tun, x.mac); p != netip.AddrPortFrom(c.addr, tunnel.VXLANPort) {
			t.Fatalf("after the move a has x behind %v, want c", p)
		}
		if a.tun.Stats().MACMoves <= moves {
			t.Error("MACMoves did not count the move")
		}
		if err := ca.ns.Ping(x2.addr(), 2); err != nil {
			t.Fatal(err)
		}
	})
	logTunnel(t, "a", a.tun)
}

// peerOf returns the peer p has mac behind, or the zero AddrPort.
func peerOf(p *tunnel.Port, mac vswitch.MAC) netip.AddrPort {
	for _, e := range p.MACs() {
		if e.MAC == mac {
			return e.Peer
		}
	}
	return netip.AddrPort{}
}
