package tunnel

import (
	"net/netip"
	"time"

	vswitch "github.com/switchyard-net/switchyard/switch"
)

// The receive path, on the port's one reader goroutine, or on the
// network's loop (Config.Loop, loop_linux.go) when it reads the socket:
//
//	recvmmsg: up to rxBatchLen messages; with UDP GRO each may hold many
//	   │      datagrams of one sender, cut at the size the kernel reports
//	   ▼
//	sender lookup ── not a peer ──► DropUnknownPeer (before any parsing)
//	   ▼
//	Opener.Open (secure) ── sentinel error ──► its Drop counter
//	   ▼
//	DecodeVXLAN ── error ──► its Drop counter; VNI ≠ ours ──► DropVNIMismatch
//	   ▼          frame longer than the MTU: a TCP superframe (see superframe),
//	   ▼          or DropTooBig
//	learn inner source MAC → peer
//	   ▼
//	coalescer: checksums (plain mode), TCP segments merged per flow
//	   ▼
//	Ingress.Receive(frame): the switch forwards it before returning
//
// Frames are views of the receive buffers, which are reused only by the
// next recvmmsg, after the coalescer has flushed.

const (
	// rxBatchLen is how many messages one recvmmsg asks for.
	rxBatchLen = 16
	// rxBufLen holds one message: a datagram, or with UDP GRO a train of
	// them of up to 64 KiB.
	rxBufLen = 1 << 16
)

// rxBatch is the reader's state.
type rxBatch struct {
	bufs [rxBatchLen][]byte
	co   *coalescer
	sys  rxSys
}

func (p *Port) newRxBatch(in vswitch.Ingress) *rxBatch {
	r := &rxBatch{co: newCoalescer(&p.ctr, p.features&FeatureCoalesce != 0, p.mode == ModeVXLAN)}
	r.co.in = in
	for i := range r.bufs {
		r.bufs[i] = make([]byte, rxBufLen)
	}
	r.sys.init(r, p.features&FeatureBatch != 0)
	return r
}

// read is the port's reader goroutine.
func (p *Port) read(in vswitch.Ingress) {
	defer p.wg.Done()
	r := p.newRxBatch(in)
	if p.pconn != nil {
		p.readPacketConn(r)
		return
	}
	for {
		n, err := p.sock.recv(r)
		if err != nil {
			if p.closed.Load() {
				return
			}
			// Unexpected (an unconnected UDP socket reports no ICMP
			// errors): count it, and do not spin if it persists.
			p.ctr.readErrors.Add(1)
			time.Sleep(time.Millisecond)
			continue
		}
		p.receiveBatch(r, n)
	}
}

// receiveBatch handles the n messages the last recvmmsg put in r and
// flushes the coalescer: when it returns, r's buffers may be reused.
func (p *Port) receiveBatch(r *rxBatch, n int) {
	p.ctr.rxBatches.Add(1)
	for i := 0; i < n; i++ {
		src, data, segSize, trunc := r.sys.msg(r, i)
		if trunc {
			p.drop(DropTooBig, 1)
			continue
		}
		p.receiveMessage(r.co, src, data, segSize)
	}
	r.co.flush()
}

// receiveMessage handles one received message from src: one datagram, or
// with segSize > 0 a train of datagrams of segSize bytes (the last may be
// shorter) that UDP GRO merged.
func (p *Port) receiveMessage(co *coalescer, src netip.AddrPort, data []byte, segSize int) {
	if segSize <= 0 || segSize >= len(data) {
		segSize = len(data)
	} else {
		p.ctr.rxGRO.Add(1)
	}
	pr := p.peers.Load().lookup(src)
	if pr == nil {
		n := 1
		if segSize > 0 {
			n = max((len(data)+segSize-1)/segSize, 1)
		}
		p.drop(DropUnknownPeer, n)
		return
	}
	for off := 0; off < len(data); off += segSize {
		p.receiveDatagram(co, pr, data[off:min(off+segSize, len(data))])
	}
	if len(data) == 0 {
		p.receiveDatagram(co, pr, data)
	}
}

// receiveDatagram decapsulates one datagram from peer pr and hands its
// frame on.
func (p *Port) receiveDatagram(co *coalescer, pr *peer, b []byte) {
	p.ctr.rxDatagrams.Add(1)
	if p.opener != nil {
		inner, _, err := p.opener.Open(b)
		if err != nil {
			p.drop(dropFor(err), 1)
			return
		}
		b = inner
	}
	vni, frame, err := DecodeVXLAN(b)
	if err != nil {
		p.drop(dropFor(err), 1)
		return
	}
	if vni != p.vni {
		p.drop(DropVNIMismatch, 1)
		return
	}
	var super vswitch.Offload
	oversize := len(frame) > p.maxFrame
	if oversize {
		var ok bool
		if super, ok = superframe(frame, p.mtu); !ok {
			p.drop(DropTooBig, 1)
			return
		}
	}
	now := p.now.Load()
	if pr.lastSeen.Load() != now {
		pr.lastSeen.Store(now)
	}
	pr.rxFrames.Add(1)
	pr.rxBytes.Add(uint64(len(frame)))
	p.ctr.rxFrames.Add(1)
	p.ctr.rxBytes.Add(uint64(len(frame)))
	if src := vswitch.MAC(frame[6:12]); !src.IsMulticast() && !src.IsZero() {
		p.macs.learn(src, pr, now)
	}
	if oversize {
		co.addSuperframe(frame, super)
		return
	}
	co.add(frame)
}
