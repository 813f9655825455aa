package gateway

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Ping sockets and the errors they report. An unprivileged ping socket
// sees no ICMP error unless asked: with IP_RECVERR (IPV6_RECVERR) set, the
// kernel queues each destination unreachable, time exceeded or packet too
// big about the socket's requests on its error queue and fails the next
// read with the error's errno. The flow's reader then drains the queue
// (recvmsg with MSG_ERRQUEUE) and passes each error on to the container,
// as a raw socket's reader does with the errors it reads.

// listenPing opens an unprivileged ping socket of network "udp4" or
// "udp6" with the error queue on, as a net.PacketConn whose addresses are
// *net.UDPAddr (golang.org/x/net/icmp opens them the same way, without
// the error queue).
func listenPing(network string) (net.PacketConn, error) {
	family, proto, level, opt := unix.AF_INET, unix.IPPROTO_ICMP, unix.SOL_IP, unix.IP_RECVERR
	if network == "udp6" {
		family, proto, level, opt = unix.AF_INET6, unix.IPPROTO_ICMPV6, unix.SOL_IPV6, unix.IPV6_RECVERR
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return nil, fmt.Errorf("ping socket %s: %w", network, os.NewSyscallError("socket", err))
	}
	if err := unix.SetsockoptInt(fd, level, opt, 1); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("ping socket %s: %w", network, os.NewSyscallError("setsockopt", err))
	}
	f := os.NewFile(uintptr(fd), "ping "+network)
	defer f.Close() // FilePacketConn dups it
	c, err := net.FilePacketConn(f)
	if err != nil {
		return nil, fmt.Errorf("ping socket %s: %w", network, err)
	}
	return c, nil
}

// queuedError is one ICMP error from a socket's error queue: the ICMP
// message header as a router sent it (type, code, the 32-bit field after
// the checksum), who sent it, and the start of the request it is about.
type queuedError struct {
	hdr      [8]byte
	reporter netip.Addr
	request  []byte
}

// drainErrors reads c's error queue (if c has one) until it is empty and
// returns the ICMP errors on it; other entries (local errors) are dropped.
func drainErrors(c net.PacketConn) []queuedError {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	var out []queuedError
	rc.Control(func(fd uintptr) {
		buf := make([]byte, 576)
		oob := make([]byte, 512)
		for range 64 { // bounded: the queue is bounded by the receive buffer anyway
			n, oobn, _, _, err := unix.Recvmsg(int(fd), buf, oob, unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
			if err != nil {
				return // EAGAIN: empty
			}
			if e, ok := parseErrQueue(oob[:oobn]); ok {
				e.request = append([]byte(nil), buf[:n]...)
				out = append(out, e)
			}
		}
	})
	return out
}

// sockExtendedErrLen is the size of struct sock_extended_err.
const sockExtendedErrLen = 16

// parseErrQueue finds, in the control messages oob of an error-queue
// read, an ICMP or ICMPv6 error (struct sock_extended_err of origin
// SO_EE_ORIGIN_ICMP or _ICMP6, followed by the offender's sockaddr).
func parseErrQueue(oob []byte) (queuedError, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return queuedError{}, false
	}
	for _, m := range msgs {
		v6 := m.Header.Level == unix.SOL_IPV6 && m.Header.Type == unix.IPV6_RECVERR
		v4 := m.Header.Level == unix.SOL_IP && m.Header.Type == unix.IP_RECVERR
		if !v4 && !v6 || len(m.Data) < sockExtendedErrLen {
			continue
		}
		d := m.Data
		origin, typ, code := d[4], d[5], d[6]
		if v6 && origin != unix.SO_EE_ORIGIN_ICMP6 || v4 && origin != unix.SO_EE_ORIGIN_ICMP {
			continue
		}
		var e queuedError
		e.hdr[0], e.hdr[1] = typ, code
		copy(e.hdr[4:8], binary.BigEndian.AppendUint32(nil, binary.NativeEndian.Uint32(d[8:12]))) // ee_info, host order
		sa := d[sockExtendedErrLen:]
		switch {
		case len(sa) >= 24 && binary.NativeEndian.Uint16(sa) == unix.AF_INET6:
			e.reporter = netip.AddrFrom16([16]byte(sa[8:24])).Unmap()
		case len(sa) >= 8 && binary.NativeEndian.Uint16(sa) == unix.AF_INET:
			e.reporter = netip.AddrFrom4([4]byte(sa[4:8]))
		}
		return e, true
	}
	return queuedError{}, false
}
