package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// NetnsDialer is the fast path to a container: it makes an ordinary kernel
// socket inside the container's network namespace and connects it to the
// target, as rootlesskit's builtin port driver does. Only the socket(2)
// call runs in the namespace (a socket belongs to the namespace it was
// made in for the rest of its life), for several sockets at a time that
// later dials take; the connect and all traffic run on any thread. Its TCP connections are *net.TCPConn, so a relay between a
// host client and the container splices, kernel to kernel, and never
// copies through user space.
//
// NetnsDialer ignores src: the container sees a connection from its own
// network namespace, with a source address that namespace chose (for a
// target on the container's own address, that address; for 127.0.0.1,
// 127.0.0.1), not the client's. Use the gateway's dialer to show the
// container the real client address.
//
// IPv6 targets with a zone (fe80::1%eth0) are not supported. The zero
// value has no namespace and fails every dial. Manager.NetnsDialer(path)
// gives one that takes its sockets from the Manager's pools; a
// NetnsDialer{NetNS: path} made by hand works too, but enters the
// namespace for every dial. Either is safe for concurrent use.
type NetnsDialer struct {
	// NetNS is the path of the container's network namespace, such as
	// /var/run/netns/NAME or /proc/PID/ns/net.
	NetNS string

	pools *netnsPools // nil: one namespace entry per dial
}

var _ Dialer = NetnsDialer{}

// DialTCP connects to dst from inside the namespace. ctx bounds the
// connect. The conn returned is a *net.TCPConn.
func (d NetnsDialer) DialTCP(ctx context.Context, _ netip.AddrPort, dst netip.AddrPort) (net.Conn, error) {
	c, err := d.dial(ctx, unix.SOCK_STREAM, dst)
	if err != nil {
		return nil, d.opError("tcp", dst, err)
	}
	return c, nil
}

// DialUDP returns a UDP socket inside the namespace, connected to dst. The
// conn returned is a *net.UDPConn.
func (d NetnsDialer) DialUDP(ctx context.Context, _ netip.AddrPort, dst netip.AddrPort) (net.Conn, error) {
	c, err := d.dial(ctx, unix.SOCK_DGRAM, dst)
	if err != nil {
		return nil, d.opError("udp", dst, err)
	}
	return c, nil
}

// opError wraps err in the net package's usual form, with the namespace in
// front: "netns /var/run/netns/x: dial tcp 10.0.0.2:80: connect: connection refused".
func (d NetnsDialer) opError(network string, dst netip.AddrPort, err error) error {
	return fmt.Errorf("netns %s: %w", d.NetNS, &net.OpError{Op: "dial", Net: network, Addr: addrOf(network, dst), Err: err})
}

func addrOf(network string, ap netip.AddrPort) net.Addr {
	if network == "udp" {
		return net.UDPAddrFromAddrPort(ap)
	}
	return net.TCPAddrFromAddrPort(ap)
}

func (d NetnsDialer) dial(ctx context.Context, typ int, dst netip.AddrPort) (net.Conn, error) {
	if d.NetNS == "" {
		return nil, errors.New("no network namespace (NetnsDialer.NetNS is empty)")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	a := dst.Addr()
	if !dst.IsValid() || a.Zone() != "" {
		return nil, fmt.Errorf("invalid target address %s: want an IPv4 or IPv6 address without a zone, and a port", dst)
	}
	family := unix.AF_INET6
	var sa unix.Sockaddr = &unix.SockaddrInet6{Port: int(dst.Port()), Addr: a.As16()}
	if a.Unmap().Is4() {
		family = unix.AF_INET
		sa = &unix.SockaddrInet4{Port: int(dst.Port()), Addr: a.Unmap().As4()}
	}

	fd, err := d.pools.take(d.NetNS, family, typ)
	if err != nil {
		return nil, err
	}

	// A non-blocking descriptor makes a pollable os.File, whose deadlines
	// bound the connect. FileConn dups it into a net.Conn; f is closed.
	f := os.NewFile(uintptr(fd), "netns-socket")
	defer f.Close()
	if err := connect(ctx, f, sa); err != nil {
		return nil, err
	}
	return net.FileConn(f)
}

// connect connects the socket of f to sa, waiting for a TCP handshake
// until ctx is done.
func connect(ctx context.Context, f *os.File, sa unix.Sockaddr) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var cerr error
	if err := rc.Control(func(fd uintptr) { cerr = unix.Connect(int(fd), sa) }); err != nil {
		return err
	}
	switch cerr {
	case nil:
		return nil
	case unix.EINPROGRESS, unix.EALREADY, unix.EINTR:
	default:
		return os.NewSyscallError("connect", cerr)
	}

	// When ctx is done (its deadline included), a deadline in the past
	// wakes the wait below; ctx.Err() is set by then.
	stop := context.AfterFunc(ctx, func() { f.SetWriteDeadline(time.Unix(1, 0)) })
	defer stop()

	var serr error
	err = rc.Write(func(fd uintptr) bool {
		v, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			serr = os.NewSyscallError("getsockopt", err)
			return true
		}
		switch e := syscall.Errno(v); e {
		case 0:
			// Writable with no error: connected, unless this is a
			// wake-up before the handshake finished.
			_, err := unix.Getpeername(int(fd))
			return err == nil
		case unix.EINPROGRESS, unix.EALREADY, unix.EINTR:
			return false
		default:
			serr = os.NewSyscallError("connect", e)
			return true
		}
	})
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		return err
	}
	return serr
}
