//go:build !linux

package tunnel

import (
	"fmt"
	"net"
	"net/netip"
)

// The portable socket layer: one datagram per system call, no GSO, GRO
// or batches. Switchyard runs on Linux; this keeps the package building
// elsewhere for the wire format's users.

type sockaddr struct{ ap netip.AddrPort }

type sysConn struct {
	conn  *net.UDPConn
	local netip.AddrPort
	ctr   *counters
}

func newSysConn(c *net.UDPConn, _ Features, ctr *counters, _ bool) (*sysConn, error) {
	ua, ok := c.LocalAddr().(*net.UDPAddr)
	if !ok {
		return nil, fmt.Errorf("socket is not a UDP socket")
	}
	return &sysConn{conn: c, local: ua.AddrPort(), ctr: ctr}, nil
}

func (s *sysConn) features() Features { return 0 }

func (s *sysConn) close() error { return s.conn.Close() }

func (s *sysConn) sockaddr(ap netip.AddrPort) (sockaddr, error) { return sockaddr{ap}, nil }

type txSys struct{}

func (t *txSys) init() {}

// setNoWait is a no-op: without batching the send waits in the runtime's
// poller, as net.UDPConn's WriteTo does.
func (t *txSys) setNoWait(bool) {}

func (s *sysConn) send(t *txBuf, pr *peer) (int, error) {
	for i, d := range t.dg[:t.nd] {
		s.ctr.txSyscalls.Add(1)
		if _, err := s.conn.WriteToUDPAddrPort(t.buf[d.off:d.off+d.n], pr.sa.ap); err != nil {
			return i, err
		}
	}
	return t.nd, nil
}

type rxSys struct {
	n   int
	src netip.AddrPort
}

func (r *rxSys) init(*rxBatch, bool) {}

func (s *sysConn) recv(r *rxBatch) (int, error) {
	n, src, err := s.conn.ReadFromUDPAddrPort(r.bufs[0])
	if err != nil {
		return 0, err
	}
	r.sys.n, r.sys.src = n, netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	return 1, nil
}

func (rs *rxSys) msg(r *rxBatch, _ int) (netip.AddrPort, []byte, int, bool) {
	return rs.src, r.bufs[0][:rs.n], 0, false
}
