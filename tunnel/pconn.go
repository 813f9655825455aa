package tunnel

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"go.uber.org/zap"
)

// packetConn is the socket of a Port made with Config.PacketConn: any
// net.PacketConn, one datagram per call.
type packetConn struct {
	pc    net.PacketConn
	local netip.AddrPort
}

// adoptPacketConn completes newPort for a Config.PacketConn.
func (p *Port) adoptPacketConn(cfg Config) (*Port, error) {
	if cfg.Conn != nil {
		return nil, fmt.Errorf("tunnel %s: both Conn and PacketConn are set: want one socket", p.name)
	}
	local, err := addrPortOf(cfg.PacketConn.LocalAddr())
	if err != nil {
		return nil, fmt.Errorf("tunnel %s: PacketConn's local address: %w", p.name, err)
	}
	p.pconn = &packetConn{pc: cfg.PacketConn, local: local}
	p.features &^= FeatureGSO | FeatureGRO | FeatureBatch
	for _, ap := range cfg.Peers {
		if err := p.AddPeer(ap); err != nil {
			return nil, err
		}
	}
	p.log = p.log.With(zap.Stringer("local", local))
	if p.features&FeaturePipeline != 0 {
		p.txq = make(chan *txBuf, txQueueLen)
		p.wg.Add(1)
		go p.sender()
	}
	return p, nil
}

// addrPortOf reads a UDP address of a net.PacketConn.
func addrPortOf(a net.Addr) (netip.AddrPort, error) {
	if ua, ok := a.(*net.UDPAddr); ok {
		ap := ua.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
	}
	if a == nil {
		return netip.AddrPort{}, fmt.Errorf("no address: want a UDP address IP:port")
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%s address %q: want IP:port", a.Network(), a.String())
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// send sends every datagram of b to pr and returns how many went.
func (c *packetConn) send(b *txBuf, pr *peer) (int, error) {
	for i, d := range b.dg[:b.nd] {
		if _, err := c.pc.WriteTo(b.buf[d.off:d.off+d.n], pr.na); err != nil {
			return i, err
		}
	}
	return b.nd, nil
}

// readPacketConn is the reader goroutine's loop on a Config.PacketConn.
func (p *Port) readPacketConn(r *rxBatch) {
	buf := r.bufs[0]
	for {
		n, from, err := p.pconn.pc.ReadFrom(buf)
		if err != nil {
			if p.closed.Load() {
				return
			}
			p.ctr.readErrors.Add(1)
			time.Sleep(time.Millisecond)
			continue
		}
		p.ctr.rxBatches.Add(1)
		src, err := addrPortOf(from)
		if err != nil {
			p.drop(DropUnknownPeer, 1)
			continue
		}
		p.receiveMessage(r.co, src, buf[:n], 0)
		r.co.flush()
	}
}
