//go:build linux

package tunnel

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/switchyard-net/switchyard/internal/evloop"
)

// The socket layer: batch I/O with sendmmsg/recvmmsg and UDP GSO/GRO,
// through the socket's syscall.RawConn so that the goroutines park in Go's
// netpoller (or, for a port read by a loop, in the kernel: see unpoll).
// Each txBuf and the reader own their message headers, iovecs and control
// buffers, and bind their callbacks once, so that a send or a receive
// allocates nothing.

// sockBufLen is the socket buffer size asked for, in each direction. A
// burst of GRO-merged 64 KiB messages overflows the kernel's default
// (rmem_default, usually 208 KiB) at once. SO_RCVBUFFORCE, which needs
// CAP_NET_ADMIN, is tried first; otherwise the kernel caps the size at
// rmem_max / wmem_max.
const sockBufLen = 4 << 20

// sockaddr is a peer's address in the socket's family, ready for
// msg_name.
type sockaddr struct {
	raw unix.RawSockaddrInet6 // or a RawSockaddrInet4 in its first bytes
	len uint32
}

// sysConn is the port's socket.
type sysConn struct {
	conn   *net.UDPConn
	file   *os.File // the socket out of Go's netpoller (unpoll); conn is closed then
	raw    syscall.RawConn
	local  netip.AddrPort
	v6     bool // AF_INET6: IPv4 peers are sent to as v4-mapped addresses
	v6only bool
	feat   Features    // FeatureGSO, FeatureGRO and FeatureBatch in effect
	gsoOff atomic.Bool // the kernel refused UDP GSO at run time
	ctr    *counters   // set by the Port
}

// newSysConn adopts c and turns on what the kernel supports of the
// features not in disable. With unpolled (a port read by a loop) the
// socket leaves Go's netpoller (see unpoll).
func newSysConn(c *net.UDPConn, disable Features, ctr *counters, unpolled bool) (*sysConn, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("UDP socket: %w", err)
	}
	s := &sysConn{conn: c, raw: raw, ctr: ctr}
	var opErr error
	err = raw.Control(func(fd uintptr) {
		sa, err := unix.Getsockname(int(fd))
		if err != nil {
			opErr = fmt.Errorf("getsockname: %w", err)
			return
		}
		switch sa := sa.(type) {
		case *unix.SockaddrInet4:
			s.local = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
		case *unix.SockaddrInet6:
			s.v6 = true
			s.local = netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port))
			v, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_V6ONLY)
			s.v6only = err == nil && v == 1
		default:
			opErr = fmt.Errorf("socket is not an IPv4 or IPv6 UDP socket (%T)", sa)
			return
		}
		// Outer DF clear, as the Linux vxlan device sends by default: a
		// peer whose path is smaller than configured gets fragments, not
		// silence.
		if s.v6 {
			_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER, unix.IPV6_PMTUDISC_DONT)
		}
		_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DONT)
		setBuf(fd, unix.SO_RCVBUFFORCE, unix.SO_RCVBUF)
		setBuf(fd, unix.SO_SNDBUFFORCE, unix.SO_SNDBUF)
		// UDP_SEGMENT with size 0 is accepted exactly where UDP GSO exists
		// (Linux 4.18); the size is given per sendmsg.
		if disable&FeatureGSO == 0 && unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT, 0) == nil {
			s.feat |= FeatureGSO
		}
		if disable&FeatureGRO == 0 && unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO, 1) == nil {
			s.feat |= FeatureGRO
		}
	})
	if err == nil {
		err = opErr
	}
	if err != nil {
		return nil, err
	}
	if disable&FeatureBatch == 0 {
		s.feat |= FeatureBatch
	}
	if unpolled {
		if err := s.unpoll(); err != nil {
			return nil, fmt.Errorf("UDP socket: %w", err)
		}
	}
	return s, nil
}

// unpoll moves the socket out of Go's netpoller, for a port whose socket
// a loop (internal/evloop) reads. In the netpoller, every datagram that
// arrives wakes a runtime thread waiting there, for nothing, since the
// loop reads it; while the loop spins on a stream of round trips that is
// a thread wake-up per datagram, the cost the loop exists to save.
//
// The socket becomes blocking (a duplicate made blocking, then given to
// os.NewFile, which registers only non-blocking descriptors; the
// original is closed), so each call says whether it may wait: the loop's
// receives and the sends made on a switch port's reader pass
// MSG_DONTWAIT (they never wait, see txSys.noWait), and the sender
// goroutine, which waits for room in the socket buffer, now waits in the
// kernel rather than in the netpoller.
func (s *sysConn) unpoll() error {
	nfd, err := evloop.Dup(s.raw)
	if err != nil {
		return err
	}
	if err := unix.SetNonblock(nfd, false); err != nil {
		unix.Close(nfd)
		return fmt.Errorf("blocking: %w", err)
	}
	f := os.NewFile(uintptr(nfd), "tunnel")
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return err
	}
	s.conn.Close()
	s.file, s.raw = f, raw
	return nil
}

func setBuf(fd uintptr, force, normal int) {
	if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, force, sockBufLen) != nil {
		_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, normal, sockBufLen)
	}
}

func (s *sysConn) features() Features {
	f := s.feat
	if s.gsoOff.Load() {
		f &^= FeatureGSO
	}
	return f
}

func (s *sysConn) close() error {
	if s.file != nil {
		return s.file.Close()
	}
	return s.conn.Close()
}

// sockaddr converts a peer's address for the socket. A nil sysConn (a
// socket-less Port in tests) yields a zero address.
func (s *sysConn) sockaddr(ap netip.AddrPort) (sockaddr, error) {
	var sa sockaddr
	if s == nil {
		return sa, nil
	}
	a := ap.Addr()
	switch {
	case !s.v6 && a.Is6():
		return sa, fmt.Errorf("%w: an IPv6 peer on an IPv4 socket (%s): listen on an IPv6 address or on [::] (both families)", ErrPeerFamily, s.local)
	case s.v6 && a.Is4() && (s.v6only || !s.local.Addr().IsUnspecified()):
		return sa, fmt.Errorf("%w: an IPv4 peer on an IPv6-only socket (%s): listen on an IPv4 address or on [::] (both families)", ErrPeerFamily, s.local)
	}
	if s.v6 {
		sa.raw.Family = unix.AF_INET6
		sa.raw.Addr = a.As16()
		putPort(&sa.raw.Port, ap.Port())
		if z := a.Zone(); z != "" {
			if i, err := strconv.ParseUint(z, 10, 32); err == nil {
				sa.raw.Scope_id = uint32(i)
			} else if ifi, err := net.InterfaceByName(z); err == nil {
				sa.raw.Scope_id = uint32(ifi.Index)
			} else {
				return sa, fmt.Errorf("zone of %s: %w (want an interface of this host, by name or index)", a, err)
			}
		}
		sa.len = unix.SizeofSockaddrInet6
		return sa, nil
	}
	sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(&sa.raw))
	sa4.Family = unix.AF_INET
	sa4.Addr = a.As4()
	putPort(&sa4.Port, ap.Port())
	sa.len = unix.SizeofSockaddrInet4
	return sa, nil
}

// putPort stores port in network byte order.
func putPort(dst *uint16, port uint16) {
	b := (*[2]byte)(unsafe.Pointer(dst))
	b[0], b[1] = byte(port>>8), byte(port)
}

func getPort(src *uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(src))
	return uint16(b[0])<<8 | uint16(b[1])
}

// txSys is the system-call state of one txBuf.
type txSys struct {
	msgs [maxBatch]unix.Mmsghdr
	iovs [maxBatch]unix.Iovec
	cmsg [3]uint64 // one UDP_SEGMENT control message, 8-byte aligned

	// Arguments and results of the call in progress, read and written
	// by fn.
	gso   bool // sendmsg of msgs[0] (with a control message if set)
	start int  // sendmmsg: first message not yet sent
	count int  // sendmmsg: messages to send
	err   error
	fn    func(fd uintptr) bool
	// noWait makes a full socket buffer an error (EAGAIN) rather than
	// a wait: set for sends on the caller's goroutine, a switch port's
	// reader, which must never be held up (the switch's Port contract).
	noWait bool
}

func (t *txSys) setNoWait(v bool) { t.noWait = v }

// flags are the send flags: MSG_DONTWAIT with noWait, for a socket that
// is blocking (sysConn.unpoll).
func (t *txSys) flags() uintptr {
	if t.noWait {
		return unix.MSG_DONTWAIT
	}
	return 0
}

func (t *txSys) init() {
	t.fn = t.call
	h := (*unix.Cmsghdr)(unsafe.Pointer(&t.cmsg[0]))
	h.Level = unix.IPPROTO_UDP
	h.Type = unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
}

// call runs on the netpoller's behalf when the socket is writable. It
// returns false to wait for writability.
func (t *txSys) call(fd uintptr) bool {
	for {
		var r uintptr
		var errno syscall.Errno
		if t.gso {
			r, _, errno = unix.Syscall(unix.SYS_SENDMSG, fd, uintptr(unsafe.Pointer(&t.msgs[0].Hdr)), t.flags())
		} else {
			r, _, errno = unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&t.msgs[t.start])), uintptr(t.count-t.start), t.flags(), 0, 0)
		}
		switch errno {
		case 0:
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			if t.noWait {
				t.err = errno
				return true
			}
			return false
		default:
			t.err = errno
			return true
		}
		if t.gso {
			t.err = nil
			return true
		}
		t.start += int(r)
		if t.start >= t.count {
			t.err = nil
			return true
		}
	}
}

// send sends every datagram of t to pr and returns how many went out
// before an error.
func (s *sysConn) send(t *txBuf, pr *peer) (int, error) {
	if t.nd > 1 && s.feat&FeatureGSO != 0 && !s.gsoOff.Load() {
		return s.sendGSO(t, pr)
	}
	return s.sendMmsg(t, pr, 0, t.nd)
}

// sendGSO sends runs of equal-size datagrams (the last of a run may be
// shorter), which lie back to back in t.buf, one sendmsg with UDP_SEGMENT
// each.
func (s *sysConn) sendGSO(t *txBuf, pr *peer) (int, error) {
	sent := 0
	for i := 0; i < t.nd; {
		size := t.dg[i].n
		j, total := i+1, size
		for j < t.nd && t.dg[j].n <= size && total+t.dg[j].n <= maxGSOBytes {
			total += t.dg[j].n
			j++
			if t.dg[j-1].n < size {
				break
			}
		}
		off := t.dg[i].off
		err := s.sendmsg(t, pr, t.buf[off:off+total], size, j-i > 1)
		if err != nil {
			if j-i > 1 && gsoRefused(err) {
				if !s.gsoOff.Load() && (err == unix.EIO || err == unix.ENOPROTOOPT || err == unix.EOPNOTSUPP) {
					s.gsoOff.Store(true) // the path cannot do it at all
				}
				n, err := s.sendMmsg(t, pr, i, j)
				sent += n
				if err != nil {
					return sent, err
				}
				i = j
				continue
			}
			return sent, err
		}
		sent += j - i
		i = j
	}
	return sent, nil
}

// gsoRefused reports whether a UDP GSO sendmsg failed because of
// segmentation (worth retrying without it).
func gsoRefused(err error) bool {
	return err == unix.EIO || err == unix.EINVAL || err == unix.EMSGSIZE ||
		err == unix.ENOPROTOOPT || err == unix.EOPNOTSUPP
}

// sendmsg sends b to pr in one sendmsg, with UDP_SEGMENT of segSize if
// gso.
func (s *sysConn) sendmsg(t *txBuf, pr *peer, b []byte, segSize int, gso bool) error {
	ts := &t.sys
	h := &ts.msgs[0].Hdr
	h.Name = (*byte)(unsafe.Pointer(&pr.sa.raw))
	h.Namelen = pr.sa.len
	ts.iovs[0].Base = &b[0]
	ts.iovs[0].SetLen(len(b))
	h.Iov = &ts.iovs[0]
	h.SetIovlen(1)
	if gso {
		*(*uint16)(unsafe.Pointer(&ts.cmsg[2])) = uint16(segSize)
		h.Control = (*byte)(unsafe.Pointer(&ts.cmsg[0]))
		h.SetControllen(unix.CmsgSpace(2))
	}
	ts.gso = true
	err := s.raw.Write(ts.fn)
	if err == nil {
		err = ts.err
	}
	h.Name, h.Iov, h.Control = nil, nil, nil
	h.SetControllen(0)
	ts.iovs[0].Base, ts.err = nil, nil
	s.ctr.txSyscalls.Add(1)
	if gso && err == nil {
		s.ctr.txGSO.Add(1)
	}
	return err
}

// sendMmsg sends datagrams [i, j) of t to pr with sendmmsg, or one by one
// without FeatureBatch.
func (s *sysConn) sendMmsg(t *txBuf, pr *peer, i, j int) (int, error) {
	ts := &t.sys
	chunk := j - i
	if s.feat&FeatureBatch == 0 {
		chunk = 1
	}
	sent := 0
	for k := i; k < j; k += chunk {
		n := min(chunk, j-k)
		for m := range n {
			d := t.dg[k+m]
			h := &ts.msgs[m].Hdr
			h.Name = (*byte)(unsafe.Pointer(&pr.sa.raw))
			h.Namelen = pr.sa.len
			ts.iovs[m].Base = &t.buf[d.off]
			ts.iovs[m].SetLen(d.n)
			h.Iov = &ts.iovs[m]
			h.SetIovlen(1)
		}
		ts.gso, ts.start, ts.count = false, 0, n
		err := s.raw.Write(ts.fn)
		if err == nil {
			err = ts.err
		}
		sent += ts.start
		s.ctr.txSyscalls.Add(1)
		for m := range n {
			ts.msgs[m].Hdr.Name, ts.msgs[m].Hdr.Iov, ts.iovs[m].Base = nil, nil, nil
		}
		ts.err = nil
		if err != nil {
			return sent, err
		}
	}
	return sent, nil
}

// rxSys is the system-call state of the reader.
type rxSys struct {
	msgs  [rxBatchLen]unix.Mmsghdr
	iovs  [rxBatchLen]unix.Iovec
	names [rxBatchLen]unix.RawSockaddrInet6
	oob   [rxBatchLen][4]uint64 // room for a UDP_GRO control message

	vlen int
	n    int
	err  error
	fn   func(fd uintptr) bool
}

func (r *rxSys) init(b *rxBatch, batch bool) {
	r.fn = r.call
	r.vlen = rxBatchLen
	if !batch {
		r.vlen = 1
	}
	for i := range r.msgs {
		r.iovs[i].Base = &b.bufs[i][0]
		h := &r.msgs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&r.names[i]))
		h.Iov = &r.iovs[i]
		h.SetIovlen(1)
		h.Control = (*byte)(unsafe.Pointer(&r.oob[i][0]))
	}
}

func (r *rxSys) call(fd uintptr) bool {
	for {
		n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.msgs[0])), uintptr(r.vlen), unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case 0:
			r.n, r.err = int(n), nil
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		default:
			r.n, r.err = 0, errno
			return true
		}
	}
}

// recv receives up to rxBatchLen messages into r and returns how many,
// parked in Go's netpoller until there is one.
func (s *sysConn) recv(r *rxBatch) (int, error) {
	r.sys.prepare()
	if err := s.raw.Read(r.sys.fn); err != nil {
		return 0, err
	}
	return r.sys.n, r.sys.err
}

// recvNow is recv for the loop that reads fd, a duplicate of the socket's
// descriptor: it returns at once, 0 and no error when nothing is waiting.
func (s *sysConn) recvNow(fd int, r *rxBatch) (int, error) {
	r.sys.prepare()
	if !r.sys.call(uintptr(fd)) {
		return 0, nil // EAGAIN
	}
	return r.sys.n, r.sys.err
}

// prepare resets the message headers for the next recvmmsg.
func (rs *rxSys) prepare() {
	for i := range rs.vlen {
		h := &rs.msgs[i].Hdr
		h.Namelen = unix.SizeofSockaddrInet6
		h.SetControllen(len(rs.oob[i]) * 8)
		h.Flags = 0
		rs.iovs[i].SetLen(rxBufLen)
		rs.msgs[i].Len = 0
	}
}

// dupForLoop returns a duplicate of the socket's descriptor for a loop
// to poll and read (with MSG_DONTWAIT: the socket is blocking, see
// unpoll). The caller closes it.
func (s *sysConn) dupForLoop() (int, error) {
	nfd, err := evloop.Dup(s.raw)
	if err != nil {
		return -1, fmt.Errorf("the socket: %w", err)
	}
	return nfd, nil
}

// msg returns message i of the last recv: its sender, its data, the size
// of the datagrams UDP GRO merged into it (0 if one datagram), and
// whether it was truncated.
func (rs *rxSys) msg(r *rxBatch, i int) (src netip.AddrPort, data []byte, segSize int, trunc bool) {
	m := &rs.msgs[i]
	data = r.bufs[i][:m.Len]
	trunc = m.Hdr.Flags&unix.MSG_TRUNC != 0
	switch rs.names[i].Family {
	case unix.AF_INET:
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&rs.names[i]))
		src = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), getPort(&sa.Port))
	case unix.AF_INET6:
		sa := &rs.names[i]
		src = netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), getPort(&sa.Port))
	}
	oob := (*[32]byte)(unsafe.Pointer(&rs.oob[i][0]))[:min(int(m.Hdr.Controllen), 32)]
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < unix.SizeofCmsghdr || l > len(oob) {
			break
		}
		if h.Level == unix.IPPROTO_UDP && h.Type == unix.UDP_GRO && l >= unix.CmsgLen(4) {
			segSize = int(*(*int32)(unsafe.Pointer(&oob[unix.CmsgLen(0)])))
		}
		next := unix.CmsgSpace(l - unix.CmsgLen(0))
		if next > len(oob) {
			break
		}
		oob = oob[next:]
	}
	return src, data, segSize, trunc
}
