//go:build linux

package tunnel_test

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/tunnel"
)

// TestLinuxVXLANInterop checks the VXLAN encoding against the kernel's own
// vxlan device, both ways, inside a network namespace of its own:
//
//	kernel vx0 (VNI 42) ──VXLAN──► veth v0, captured there ──► DecodeVXLAN
//	EncodeVXLAN ──UDP──► 127.0.0.1:4789 ──► kernel vx0 ──► UDP socket on 10.42.0.1
//
// It needs CAP_SYS_ADMIN and CAP_NET_ADMIN (root, or a user namespace) and
// iproute2, and skips without them.
func TestLinuxVXLANInterop(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: creates a network namespace")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skipf("skipping: iproute2's ip command is not installed (%v)", err)
	}
	// The namespace belongs to this thread, which is never unlocked: it
	// exits with the test goroutine and the namespace (and vx0) with it.
	// Sockets and commands created from this goroutine live inside it.
	runtime.LockOSThread()
	if err := syscall.Unshare(syscall.CLONE_NEWNET); err != nil {
		t.Skipf("skipping: cannot create a network namespace: %v", err)
	}
	vxMAC := net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	peerMAC := net.HardwareAddr{0x02, 0, 0, 0, 0, 2}
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		// The underlay: a veth whose far end has no address, so that the
		// kernel really sends (a remote on a local address would make
		// vxlan skip UDP altogether) and the datagrams can be captured.
		{"link", "add", "v0", "type", "veth", "peer", "name", "v1"},
		{"addr", "add", "10.99.0.1/24", "dev", "v0"},
		{"link", "set", "v0", "up"},
		{"link", "set", "v1", "up"},
		{"neigh", "add", "10.99.0.2", "lladdr", "02:00:00:00:99:02", "dev", "v0", "nud", "permanent"},
		{"link", "add", "vx0", "type", "vxlan", "id", "42", "dstport", "4789", "remote", "10.99.0.2", "local", "10.99.0.1", "dev", "v0"},
		{"link", "set", "vx0", "address", vxMAC.String()},
		{"addr", "add", "10.42.0.1/24", "dev", "vx0"},
		{"link", "set", "vx0", "up"},
		{"neigh", "add", "10.42.0.2", "lladdr", peerMAC.String(), "dev", "vx0", "nud", "permanent"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			if bytes.Contains(out, []byte("Operation not permitted")) || bytes.Contains(out, []byte("not supported")) {
				t.Skipf("skipping: the kernel refused: ip %v: %s", args, out)
			}
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}

	// No t.Run here: subtests run on other goroutines, outside the
	// namespace.
	kernelToDecode(t, vxMAC, peerMAC)
	encodeToKernel(t, vxMAC, peerMAC)
}

// kernelToDecode sends a UDP datagram through vx0 and decodes the VXLAN
// datagram the kernel puts on v0.
func kernelToDecode(t *testing.T, vxMAC, peerMAC net.HardwareAddr) {
	const ethPAll = 0x0003
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_DGRAM, int(htons(ethPAll)))
	if err != nil {
		if err == syscall.EPERM || err == syscall.EACCES {
			t.Skipf("skipping: the kernel refused an AF_PACKET socket: %v", err)
		}
		t.Fatalf("AF_PACKET socket: %v", err)
	}
	defer syscall.Close(fd)
	v0, err := net.InterfaceByName("v0")
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrLinklayer{Protocol: htons(ethPAll), Ifindex: v0.Index}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &syscall.Timeval{Usec: 200_000}); err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(10, 42, 0, 2), Port: 9999})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := []byte("from the kernel's vxlan device")
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}

	buf := make([]byte, 65536)
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); {
		n, _, err := syscall.Recvfrom(fd, buf, 0)
		if err != nil {
			continue // timeout: look at the clock again
		}
		ip := buf[:n] // SOCK_DGRAM: from the IP header on
		if len(ip) < 28 || ip[0]>>4 != 4 || ip[9] != 17 {
			continue
		}
		udp := ip[int(ip[0]&0x0f)*4:]
		if binary.BigEndian.Uint16(udp[2:4]) != tunnel.VXLANPort {
			continue
		}
		sport := binary.BigEndian.Uint16(udp[0:2])
		// Unless given "srcport", the vxlan device hashes each flow onto
		// the ephemeral port range, 32768–60999 by default.
		if sport < 32768 || sport > 60999 {
			t.Errorf("kernel used source port %d, outside the default ephemeral range 32768–60999", sport)
		}
		if !bytes.Equal(udp[8:16], []byte{0x08, 0, 0, 0, 0, 0, 42, 0}) {
			t.Errorf("kernel's VXLAN header % x differs from EncodeVXLAN's for VNI 42", udp[8:16])
		}
		vni, inner, err := tunnel.DecodeVXLAN(udp[8:])
		if err != nil {
			t.Fatalf("DecodeVXLAN of the kernel's datagram: %v", err)
		}
		if !bytes.HasSuffix(inner, msg) {
			continue // IPv6 neighbour discovery and the like
		}
		if vni != 42 || !bytes.Equal(inner[0:6], peerMAC) || !bytes.Equal(inner[6:12], vxMAC) {
			t.Fatalf("decoded vni %d, dst %v, src %v; want 42, %v, %v", vni, net.HardwareAddr(inner[0:6]), net.HardwareAddr(inner[6:12]), peerMAC, vxMAC)
		}
		return
	}
	t.Fatal("no VXLAN datagram carrying the message seen on v0 within 3s")
}

// encodeToKernel encapsulates a frame with EncodeVXLAN, sends it to the
// kernel's VXLAN port and expects the kernel to deliver its payload to a
// socket behind vx0; with a VNI the kernel has no device for, it must not.
func encodeToKernel(t *testing.T, vxMAC, peerMAC net.HardwareAddr) {
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(10, 42, 0, 1), Port: 9998})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	tx, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: tunnel.VXLANPort})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()

	fl := baseFlow()
	copy(fl.dst[:], vxMAC)
	copy(fl.src[:], peerMAC)
	fl.srcIP, fl.dstIP = netip.AddrFrom4([4]byte{10, 42, 0, 2}), netip.AddrFrom4([4]byte{10, 42, 0, 1})
	fl.proto, fl.sport, fl.dport, fl.payload = 17, 5555, 9998, 33
	frame := fl.frame()
	send := func(vni uint32) {
		buf := make([]byte, tunnel.VXLANHeaderLen+len(frame))
		copy(buf[tunnel.VXLANHeaderLen:], frame)
		if err := tunnel.EncodeVXLAN(buf, vni); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	recv := func(wait time.Duration) ([]byte, error) {
		_ = rx.SetReadDeadline(time.Now().Add(wait))
		b := make([]byte, 2048)
		n, _, err := rx.ReadFrom(b)
		return b[:n], err
	}

	send(43)
	if got, err := recv(300 * time.Millisecond); err == nil {
		t.Fatalf("kernel delivered a frame sent on VNI 43 to the VNI 42 device: %q", got)
	}
	send(42)
	got, err := recv(3 * time.Second)
	if err != nil {
		t.Fatalf("kernel did not deliver the frame EncodeVXLAN sent on VNI 42: %v", err)
	}
	if want := frame[len(frame)-33:]; !bytes.Equal(got, want) {
		t.Fatalf("kernel delivered % x, want % x", got, want)
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
