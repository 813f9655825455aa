package vswitch

import (
	"sync"
	"sync/atomic"
)

// Link is a port as attached to a switch: the port, its policies and its
// counters. It is the Ingress the port delivers received frames to.
type Link struct {
	sw       *Switch
	port     Port
	info     PortInfo
	opts     AttachOptions
	maxFrame int

	detached atomic.Bool
	capture  atomic.Pointer[CaptureFunc]

	// binding is the port's security binding, nil if it has none; bindMu
	// serialises SetBinding.
	binding atomic.Pointer[binding]
	bindMu  sync.Mutex
	// maxMACs caps the port's learned (not static) MACs; 0 is no cap.
	// learned counts them; it changes only under the fdb's mu.
	maxMACs int64
	learned atomic.Int64

	rx dirCounters // frames the port delivered to the switch
	tx dirCounters // frames the switch wrote to the port
}

var _ Ingress = (*Link)(nil)

// Direction tells a CaptureFunc which way a frame went.
type Direction uint8

const (
	// DirRX is a frame the switch received from the port.
	DirRX Direction = iota
	// DirTX is a frame the switch sent out of the port.
	DirTX
)

// CaptureFunc observes frames crossing a link. It runs on the forwarding
// path: it must be quick, must not block, and must not retain f.Data (copy
// what it keeps).
type CaptureFunc func(dir Direction, f Frame)

// SetCapture installs fn to observe every frame the link receives and
// sends; nil removes it. Only one capture runs per link at a time; the
// previous one, if any, is returned.
func (l *Link) SetCapture(fn CaptureFunc) CaptureFunc {
	var p *CaptureFunc
	if fn != nil {
		p = &fn
	}
	if old := l.capture.Swap(p); old != nil {
		return *old
	}
	return nil
}

// Detached reports whether the link has been detached from its switch.
func (l *Link) Detached() bool { return l.detached.Load() }

// Name returns the port's name.
func (l *Link) Name() string { return l.info.Name }

// Info returns the port's description as read at Attach.
func (l *Link) Info() PortInfo { return l.info }

// Port returns the attached port.
func (l *Link) Port() Port { return l.port }

// Stats returns a snapshot of the link's counters.
func (l *Link) Stats() PortStats {
	return PortStats{Name: l.info.Name, Kind: l.info.Kind, RX: l.rx.snapshot(), TX: l.tx.snapshot()}
}

// mayLearn reports whether l may have one more learned MAC. The fdb's mu
// must be held.
func (l *Link) mayLearn() bool { return l.maxMACs == 0 || l.learned.Load() < l.maxMACs }

// fits reports whether f is within the link's MTU. A superframe fits when
// each of its segments will: its headers (gsoHdrLen) and GSOSize bytes.
func (l *Link) fits(f Frame) bool {
	if f.Offload.IsGSO() {
		return gsoHdrLen(f)+int(f.Offload.GSOSize) <= l.maxFrame
	}
	return len(f.Data) <= l.maxFrame
}

// gsoHdrLen is the length of superframe f's headers, up to the transport
// payload, read from the frame where its offload says where the
// transport header starts. Offload.HdrLen cannot be trusted for it: a
// TAP reports there how much of the frame the kernel holds linear
// (virtio_net_hdr_from_skb puts skb_headlen, "a hint"), which for a
// packet the kernel forwarded after GRO (direct routing: the host kernel
// routes another host's packets into a host interface) includes payload,
// and such superframes would be dropped as oversize.
func gsoHdrLen(f Frame) int {
	o := f.Offload
	cs := int(o.CsumStart)
	if o.NeedsCsum() && cs >= EthHeaderLen {
		switch o.GSOType &^ GSOECN {
		case GSOTCPv4, GSOTCPv6:
			if cs+13 <= len(f.Data) {
				return cs + int(f.Data[cs+12]>>4)*4
			}
		case GSOUDPL4, GSOUDP:
			return cs + 8
		}
	}
	return int(o.HdrLen)
}

// Receive implements Ingress: it forwards one frame received on l. See the
// package comment for the flow.
func (l *Link) Receive(f Frame) {
	if l.detached.Load() {
		return
	}
	n := len(f.Data)
	l.rx.add(n)
	if c := l.capture.Load(); c != nil {
		(*c)(DirRX, f)
	}
	if n < EthHeaderLen {
		l.rx.drops[DropMalformed].Add(1)
		return
	}
	if !l.fits(f) {
		l.rx.drops[DropOversize].Add(1)
		return
	}
	src := f.Src()
	if src.IsMulticast() || src.IsZero() {
		l.rx.drops[DropMalformed].Add(1)
		return
	}
	sw := l.sw
	now := sw.now.Load()
	if !l.admit(f, src, now) {
		return
	}

	dst := f.Dst()
	if !dst.IsMulticast() {
		if out := sw.fdb.lookup(dst, now); out != nil {
			switch {
			case out == l:
				l.rx.drops[DropHairpin].Add(1)
			case l.opts.Isolated && out.opts.Isolated:
				l.rx.drops[DropIsolated].Add(1)
			case !out.fits(f):
				out.tx.drops[DropOversize].Add(1)
				sw.tooBig(l, f, out.info.MTU)
			default:
				out.send(f)
			}
			return
		}
	}
	sw.flood(l, f)
}

// admit applies the port's source policies to f (locked, denied and
// bound sources, the learning limit), learns src, and reports whether f
// may be forwarded. A refused frame is counted.
func (l *Link) admit(f Frame, src MAC, now int64) bool {
	if (!l.opts.LockMAC.IsZero() && src != l.opts.LockMAC) || (!l.opts.DenyMAC.IsZero() && src == l.opts.DenyMAC) {
		l.rx.drops[DropSpoofed].Add(1)
		return false
	}
	if b := l.binding.Load(); b != nil {
		if reason, ok := b.check(f.Data, src); !ok {
			l.rx.drops[reason].Add(1)
			return false
		}
	}
	switch l.sw.fdb.learn(src, l, now) {
	case learnLimit:
		l.rx.drops[DropLearnLimit].Add(1)
		return false
	case learnPinned:
		l.rx.drops[DropSpoofed].Add(1)
		return false
	}
	return true
}

// send writes f out of l, fixing up offloads the port cannot take.
func (l *Link) send(f Frame) {
	if !l.fits(f) {
		l.tx.drops[DropOversize].Add(1)
		return
	}
	if !l.info.Offloads.accepts(f.Offload) {
		if f.Offload.IsGSO() {
			l.sendSegmented(f)
			return
		}
		if !completeChecksum(&f) {
			l.tx.drops[DropOffload].Add(1)
			return
		}
	}
	l.write(f)
}

func (l *Link) write(f Frame) {
	if err := l.port.Write(f); err != nil {
		l.tx.drops[DropWrite].Add(1)
		return
	}
	l.tx.add(len(f.Data))
	if c := l.capture.Load(); c != nil {
		(*c)(DirTX, f)
	}
}

// sendSegmented cuts superframe f into segments l can take and writes them
// one by one from a pooled scratch buffer.
func (l *Link) sendSegmented(f Frame) {
	buf := segPool.Get().(*[]byte)
	defer segPool.Put(buf)
	ok := SegmentFrame(f, *buf, func(seg []byte) { l.write(Frame{Data: seg, Direct: f.Direct}) })
	if !ok {
		l.tx.drops[DropOffload].Add(1)
		return
	}
	l.sw.segmented.Add(1)
}
