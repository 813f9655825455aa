package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// This file chooses host ports and binds the sockets of a mapping. All of
// it runs with Manager.mu held.

// socket is one bound host socket, not yet served.
type socket struct {
	addr netip.Addr
	tcp  *net.TCPListener
	udp  *net.UDPConn
}

func (s socket) close() {
	if s.tcp != nil {
		s.tcp.Close()
	} else {
		s.udp.Close()
	}
}

// hostAddrs returns the addresses a mapping with host address ip listens
// on: 0.0.0.0 and :: for the zero Addr (Docker's "all addresses", one
// socket per family, the IPv6 one IPv6-only), else ip alone.
func hostAddrs(ip netip.Addr) []netip.Addr {
	if !ip.IsValid() {
		return []netip.Addr{netip.IPv4Unspecified(), netip.IPv6Unspecified()}
	}
	return []netip.Addr{ip}
}

// overlaps reports whether listeners on a and b, with the same protocol and
// port, would conflict: the same address, or a wildcard of the same family.
// IPv6 wildcards are IPv6-only, so they do not conflict with IPv4 ones.
func overlaps(a, b netip.Addr) bool {
	return a.Is4() == b.Is4() && (a == b || a.IsUnspecified() || b.IsUnspecified())
}

// conflictLocked returns the first of addrs that this Manager already has
// bound, or overlapping, on proto and port.
func (m *Manager) conflictLocked(proto Proto, addrs []netip.Addr, port uint16) (netip.Addr, bool) {
	for _, have := range m.bound[portKey{proto, port}] {
		for _, a := range addrs {
			if overlaps(a, have) {
				return a, true
			}
		}
	}
	return netip.Addr{}, false
}

// allocateLocked chooses the host port of mp and binds its sockets.
//
// A single host port is taken or refused. A range is searched from its
// start; the ephemeral range from where the last ephemeral search of the
// protocol ended, as Docker's port allocator does, so that a port just
// released is not handed out again at once. Ports this Manager holds are
// skipped without a syscall; ports the kernel refuses as in use are
// skipped after trying them. Any other failure ends the search.
func (m *Manager) allocateLocked(mp Mapping) ([]socket, uint16, error) {
	addrs := hostAddrs(mp.HostIP)
	if mp.HostPort.Len() == 1 {
		p := mp.HostPort.Start
		if a, taken := m.conflictLocked(mp.Proto, addrs, p); taken {
			return nil, 0, allocatedError(a, p)
		}
		socks, err := m.listenAll(mp.Proto, addrs, p)
		return socks, p, err
	}

	r, ephemeral := mp.HostPort, false
	if r.IsZero() {
		r, ephemeral = m.ephemeral, true
	}
	n := r.Len()
	first := 0
	if ephemeral {
		first = int(m.cursor[mp.Proto]) % n
	}
	for i := range n {
		off := (first + i) % n
		p := r.Start + uint16(off)
		if _, taken := m.conflictLocked(mp.Proto, addrs, p); taken {
			continue
		}
		socks, err := m.listenAll(mp.Proto, addrs, p)
		if errors.Is(err, ErrAddrInUse) {
			continue
		}
		if err != nil {
			return nil, 0, err
		}
		if ephemeral {
			m.cursor[mp.Proto] = uint16((off + 1) % n)
		}
		return socks, p, nil
	}
	return nil, 0, exhaustedError(addrs[0], r, ephemeral)
}

// listenAll binds proto on every address of addrs at port, or none. The
// second address of a wildcard pair (::) is skipped if the kernel has no
// IPv6.
func (m *Manager) listenAll(proto Proto, addrs []netip.Addr, port uint16) ([]socket, error) {
	socks := make([]socket, 0, len(addrs))
	for i, a := range addrs {
		s, err := listen(proto, a, port)
		if err != nil {
			if i > 0 && a.IsUnspecified() && errors.Is(err, syscall.EAFNOSUPPORT) {
				m.log.Debug("no IPv6 on this host: listening on 0.0.0.0 only", zap.Uint16("port", port), zap.Error(err))
				continue
			}
			for _, s := range socks {
				s.close()
			}
			return nil, listenError(err, port, m.unprivStart)
		}
		socks = append(socks, s)
	}
	return socks, nil
}

// listen binds one host socket. An IPv6 wildcard socket is IPv6-only (Go
// sets IPV6_V6ONLY for the tcp6 and udp6 networks). A UDP socket on a
// wildcard address asks for the destination address of each datagram, so
// that replies can be sent from it.
func listen(proto Proto, ip netip.Addr, port uint16) (socket, error) {
	ap := netip.AddrPortFrom(ip, port)
	family := "4"
	if ip.Is6() {
		family = "6"
	}
	if proto == TCP {
		lc := net.ListenConfig{KeepAlive: -1, Control: keepAliveOnListener}
		l, err := lc.Listen(context.Background(), "tcp"+family, ap.String())
		if err != nil {
			return socket{}, err
		}
		return socket{addr: ip, tcp: l.(*net.TCPListener)}, nil
	}
	c, err := net.ListenUDP("udp"+family, net.UDPAddrFromAddrPort(ap))
	if err != nil {
		return socket{}, err
	}
	if ip.IsUnspecified() {
		if err := enablePktinfo(c, ip.Is4()); err != nil {
			c.Close()
			return socket{}, &net.OpError{Op: "listen", Net: "udp" + family, Addr: net.UDPAddrFromAddrPort(ap), Err: err}
		}
	}
	return socket{addr: ip, udp: c}, nil
}

// keepAliveOnListener turns TCP keep-alive on for a listening socket with
// Go's defaults for accepted connections (a probe after 15 s idle, then
// every 15 s, 9 unanswered end the connection), so that a client that
// vanished without a word frees its relay. Linux copies these settings
// to every connection the socket accepts; set here once, they spare each
// connection the four setsockopt calls Go's accept would make (listen
// asks Go not to: KeepAlive -1).
func keepAliveOnListener(_, _ string, c syscall.RawConn) error {
	opts := [...]struct{ level, opt, v int }{
		{unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
		{unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, 15},
		{unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, 15},
		{unix.IPPROTO_TCP, unix.TCP_KEEPCNT, 9},
	}
	var serr error
	err := c.Control(func(fd uintptr) {
		for _, o := range opts {
			if serr = unix.SetsockoptInt(int(fd), o.level, o.opt, o.v); serr != nil {
				serr = fmt.Errorf("keep-alive on the listening socket: setsockopt %d/%d: %w", o.level, o.opt, serr)
				return
			}
		}
	})
	if err != nil {
		return err
	}
	return serr
}
