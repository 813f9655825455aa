package proxy

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"

	"golang.org/x/sys/unix"
)

// A UDP socket bound to 0.0.0.0 or :: receives datagrams sent to any of the
// host's addresses, but a plain send lets the kernel choose the source, so
// a client that wrote to 127.0.0.3 (or to one of several public addresses)
// would get the reply from another address and, usually, drop it. With
// IP_PKTINFO / IPV6_RECVPKTINFO each datagram carries the address it was
// sent to; the reply passes that address back in the same control message
// and leaves from it.

// pktinfoSpace is the size of a control-message buffer that holds one
// IP_PKTINFO or IPV6_PKTINFO message.
var pktinfoSpace = max(unix.CmsgSpace(unix.SizeofInet4Pktinfo), unix.CmsgSpace(unix.SizeofInet6Pktinfo))

// enablePktinfo asks the kernel to attach each datagram's destination
// address to what c reads.
func enablePktinfo(c *net.UDPConn, v4 bool) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		if v4 {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
		} else {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
		}
	})
	if err != nil {
		return err
	}
	return os.NewSyscallError("setsockopt", serr)
}

// replyControl returns the control message that makes a reply leave from
// the local address that a datagram, received with control messages oob,
// was sent to; nil if oob has none that says.
//
// For IPv4 it uses ipi_spec_dst, the kernel's choice of local address for
// the reply: the destination itself for unicast, a unicast address of the
// host for a datagram sent to a broadcast address. For IPv6 it uses the
// destination unless it is multicast, and keeps the interface only for a
// link-local destination (which needs it); other replies are routed as
// usual.
func replyControl(oob []byte) []byte {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	for _, m := range msgs {
		switch {
		case m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_PKTINFO &&
			len(m.Data) >= unix.SizeofInet4Pktinfo:
			// struct in_pktinfo { int ipi_ifindex; struct in_addr ipi_spec_dst, ipi_addr; }
			var info unix.Inet4Pktinfo
			copy(info.Spec_dst[:], m.Data[4:8])
			return unix.PktInfo4(&info)

		case m.Header.Level == unix.IPPROTO_IPV6 && m.Header.Type == unix.IPV6_PKTINFO &&
			len(m.Data) >= unix.SizeofInet6Pktinfo:
			// struct in6_pktinfo { struct in6_addr ipi6_addr; unsigned int ipi6_ifindex; }
			dst := netip.AddrFrom16([16]byte(m.Data[:16]))
			if dst.IsMulticast() {
				return nil
			}
			info := unix.Inet6Pktinfo{Addr: dst.As16()}
			if dst.IsLinkLocalUnicast() {
				info.Ifindex = binary.NativeEndian.Uint32(m.Data[16:20])
			}
			return unix.PktInfo6(&info)
		}
	}
	return nil
}
