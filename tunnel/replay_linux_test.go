//go:build linux

package tunnel_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/tunnel"
)

// captureDatagram opens a packet socket on eth0 of host h's namespace and
// returns the UDP payload of the first datagram h sends to port, while
// trigger runs.
func captureDatagram(t *testing.T, h *syHost, port uint16, trigger func()) []byte {
	t.Helper()
	var fd int
	err := h.ns.Do(func() (err error) {
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index})
	})
	if err != nil {
		if errors.Is(err, unix.EPERM) {
			t.Skipf("skipping: the kernel refused a packet socket: %v", err)
		}
		t.Fatalf("packet socket: %v", err)
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 200_000}); err != nil {
		t.Fatal(err)
	}
	go trigger()
	buf := make([]byte, 65536)
	src := h.addr.As4()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			continue
		}
		ip := buf[:n]
		if len(ip) < 28 || ip[0]>>4 != 4 || ip[9] != 17 || !bytes.Equal(ip[12:16], src[:]) {
			continue
		}
		udp := ip[int(ip[0]&0x0f)*4:]
		if binary.BigEndian.Uint16(udp[2:4]) == port {
			return bytes.Clone(udp[8:binary.BigEndian.Uint16(udp[4:6])])
		}
	}
	t.Fatal("no datagram captured within 5 s")
	return nil
}

// A sealed datagram captured on host a's wire and sent again, and damaged
// copies of it, are dropped by host b, counted, and never reach its
// switch. The replays come from a's own address (another port), as an
// attacker on the path would spoof them.
func TestSecureReplayOnTheWire(t *testing.T) {
	u := newUnderlay(t)
	a, b := u.syHost(hostOpts{mode: tunnel.ModeSecure}), u.syHost(hostOpts{mode: tunnel.ModeSecure})
	peerWith(t, a, b)
	ca, cb := a.container(t, "10.240.0.2", 1418), b.container(t, "10.240.0.3", 1418)
	if err := ca.ns.Ping(cb.addr(), 1); err != nil {
		t.Fatal(err)
	}
	// Every frame b's switch receives from the tunnel, from before the
	// capture on, so that the captured frame's first delivery is known.
	var mu sync.Mutex
	var rx [][]byte
	b.link.SetCapture(func(dir vswitch.Direction, f vswitch.Frame) {
		mu.Lock()
		if dir == vswitch.DirRX && len(rx) < 10000 {
			rx = append(rx, bytes.Clone(f.Data))
		}
		mu.Unlock()
	})
	seen := func(frame []byte) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, f := range rx {
			if bytes.Equal(f, frame) {
				n++
			}
		}
		return n
	}
	// A first ping resolves the neighbours, so that the datagram captured
	// next carries the echo request, which is sent once, and not an ARP
	// request, which the kernel repeats when the answer is slow (a loaded
	// machine): a repeat would look like a replay that got through.
	if err := ca.ns.Ping(cb.addr(), 1); err != nil {
		t.Fatal(err)
	}
	d := captureDatagram(t, a, tunnel.SecurePort, func() { ca.ns.Ping(cb.addr(), 1) })

	// What the datagram carries, opened with the test's copy of the key,
	// and how often that frame reaches b's switch.
	o := tunnel.NewOpener(999)
	if err := o.SetKey(1, testKey(3)); err != nil {
		t.Fatal(err)
	}
	inner, _, err := o.Open(bytes.Clone(d))
	if err != nil {
		t.Fatalf("captured datagram does not open: %v", err)
	}
	_, want, _ := tunnel.DecodeVXLAN(inner)
	want = bytes.Clone(want)
	waitFor(t, "the captured frame's own delivery", func() bool { return seen(want) == 1 })

	var conn *net.UDPConn
	if err := a.ns.Do(func() (err error) {
		conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: a.addr.AsSlice()})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	to := &net.UDPAddr{IP: b.addr.AsSlice(), Port: tunnel.SecurePort}
	before := b.tun.Stats()
	flipped := bytes.Clone(d)
	flipped[len(flipped)-30] ^= 0x04 // ciphertext: replayed counter, refused before decryption
	fresh := bytes.Clone(d)
	fresh[len(fresh)-30] ^= 0x04
	fresh[8] ^= 0x01 // and a counter never seen: reaches authentication, fails
	for _, dg := range [][]byte{d, flipped, fresh} {
		if _, err := conn.WriteToUDP(dg, to); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the drops", func() bool { return b.tun.Stats().Drops-before.Drops == 3 })
	after := b.tun.Stats()
	if r := after.DropsBy[tunnel.DropReplay] - before.DropsBy[tunnel.DropReplay]; r != 2 {
		t.Errorf("replay drops +%d, want +2", r)
	}
	if r := after.DropsBy[tunnel.DropAuth] - before.DropsBy[tunnel.DropAuth]; r != 1 {
		t.Errorf("authentication drops +%d, want +1", r)
	}
	u.drain(t, b)
	if n := seen(want); n != 1 {
		t.Fatalf("the captured frame reached b's switch %d more times", n-1)
	}
	if err := ca.ns.Ping(cb.addr(), 1); err != nil {
		t.Fatalf("the tunnel stopped working after the replays: %v", err)
	}
}
