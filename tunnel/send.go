package tunnel

import (
	"time"

	vswitch "github.com/switchyard-net/switchyard/switch"
)

// The send path. Write runs on the goroutine of whichever port's reader
// forwards the frame:
//
//	Write(frame) ── learned unicast MAC ─► one peer
//	   │         └─ broadcast, multicast, unknown ─► every peer (head-end replication)
//	   ▼
//	txBatch (builder) and txBuf (datagrams) from pools: nothing allocated
//	   │  superframe: vswitch.SegmentFrameInto ──► each segment cut straight
//	   │              into its place in the txBuf
//	   │  frame with a partial checksum: completed in our copy
//	   ▼
//	reserve + commit: room behind headroom (a single frame is copied
//	     there), EncodeVXLAN or Sealer.Seal in place;
//	     datagrams laid back to back in the txBuf
//	   │
//	   ▼  txBuf full, or end of frame
//	flush ── a single frame, nothing queued ──► send now, on the caller's goroutine
//	      └─ segments of a superframe (FeaturePipeline) ──► txq ──► sender goroutine
//
//	send, per peer ── UDP GSO: equal-size runs in one sendmsg(UDP_SEGMENT)
//	               └─ otherwise: one sendmmsg for the batch
//
// The sender goroutine lets the caller (a TAP's reader) read and cut the
// next superframe while the kernel takes the last one: on a small machine
// the two halves then run on two cores. Single frames (request/response
// traffic, ACKs) skip the queue while it is empty, so they pay no goroutine
// hand-off; once anything is queued they queue behind it, so that no frame
// overtakes an earlier one. txq is bounded. The caller is a switch port's
// reader, which a port must never hold up: a Write that finds txq full
// waits at most txWait for a place, and not at all while the port is
// congested (see queueSlow), then drops the batch and counts it
// (DropQueueFull); a send on the caller's goroutine that finds the socket
// buffer full drops it too (DropSend). Only the sender goroutine, which
// holds up nobody, waits for the socket.
//
// A flooded frame is encapsulated (and sealed) once and the same bytes go to
// every peer: the counter of a sealed datagram is unique per datagram, not
// per receiver, and each receiver keeps its own replay window.

const (
	// maxBatch is the most datagrams flushed at once, and the most
	// segments in one UDP GSO send (the kernel's UDP_MAX_SEGMENTS was 64
	// before Linux 6.9).
	maxBatch = 64
	// txBufLen holds a batch of datagrams laid back to back: 64 of a
	// 1500-byte underlay, or one of the largest.
	txBufLen = 128 << 10
	// maxGSOBytes bounds one UDP GSO send: the payloads of all its
	// datagrams share one UDP length field.
	maxGSOBytes = maxDatagram
	// scratchLen holds the largest frame: a segment too big to send is cut
	// there to be dropped, and a coalesced frame is built in one.
	scratchLen = 65535 + vswitch.EthHeaderLen + 4
	// txQueueLen is how many full txBufs wait for the sender goroutine.
	txQueueLen = 4
	// txWait is the longest a Write waits for a place in a full txq: a
	// sender goroutine that has not freed one by then is stuck on the
	// underlay, not merely descheduled on a loaded machine.
	txWait = 50 * time.Millisecond
)

// dgram is one datagram of a batch: buf[off:off+n], carrying an inner frame
// of n-headroom-tailroom bytes.
type dgram struct{ off, n int }

// txBuf is a batch of encapsulated datagrams and the peers they go to,
// with what the system calls need to send them.
type txBuf struct {
	buf     []byte
	dg      [maxBatch]dgram
	nd      int
	used    int
	targets []*peer // the peer set's list (immutable), or one[:]
	one     [1]*peer
	sys     txSys
}

func newTxBuf() *txBuf {
	b := &txBuf{buf: make([]byte, txBufLen)}
	b.sys.init()
	return b
}

func (b *txBuf) setTargets(targets []*peer) {
	if len(targets) == 1 {
		b.setOne(targets[0])
		return
	}
	b.targets = targets
}

func (b *txBuf) setOne(pr *peer) {
	b.one[0] = pr
	b.targets = b.one[:]
}

func (b *txBuf) reset() {
	b.nd, b.used = 0, 0
	b.targets, b.one[0] = nil, nil
}

// txBatch builds the datagrams of one Write.
type txBatch struct {
	p       *Port
	scratch []byte
	cur     *txBuf
	targets []*peer // the peer set's list (immutable), or one[:]; copied into each txBuf
	one     [1]*peer
	async   bool  // flush to the sender goroutine
	err     error // first error of this Write (a sentinel)
	tooBig  bool  // the segment being built goes to scratch, to be dropped
	nextFn  func(int) []byte
	emitFn  func([]byte)
	timer   *time.Timer // queueSlow's, made on first use
}

func newTxBatch(p *Port) *txBatch {
	t := &txBatch{p: p, scratch: make([]byte, scratchLen)}
	t.nextFn, t.emitFn = t.nextSegment, t.emitSegment
	return t
}

// Write implements vswitch.Port. It sends f to the peer its destination
// MAC was learned behind, or to every peer; f.Data is neither retained nor
// modified. A superframe is cut into segments here; a partial checksum is
// completed in the copy. A single frame is sent before Write returns; the
// segments of a superframe may be sent by the port's sender goroutine
// after it returns (see FeaturePipeline), in order, and a failure to send
// them is counted (DropSend) but not returned.
func (p *Port) Write(f vswitch.Frame) error {
	if p.closed.Load() {
		return ErrClosed
	}
	if len(f.Data) < vswitch.EthHeaderLen {
		p.drop(DropMalformed, 1)
		return ErrFrame
	}
	t := p.txPool.Get().(*txBatch)
	dst := vswitch.MAC(f.Data[0:6])
	var one *peer
	if !dst.IsMulticast() {
		one = p.macs.lookup(dst, p.now.Load())
	}
	if one != nil {
		t.one[0] = one
		t.targets = t.one[:]
	} else {
		t.targets = p.peers.Load().list
	}
	var err error
	if len(t.targets) == 0 {
		p.drop(DropNoPeer, 1)
		err = ErrNoPeers
	} else {
		t.cur = p.txBufs.Get().(*txBuf)
		t.cur.setTargets(t.targets)
		t.async = p.txq != nil && (f.Offload.IsGSO() || p.txBusy.Load() > 0)
		err = t.frame(f)
		t.cur.reset()
		p.txBufs.Put(t.cur)
	}
	t.cur, t.targets, t.one[0], t.err = nil, nil, nil, nil
	p.txPool.Put(t)
	return err
}

// frame encapsulates f, segmenting it if it is a superframe, and sends
// it, or queues it for the sender goroutine.
func (t *txBatch) frame(f vswitch.Frame) error {
	p := t.p
	if f.Offload.IsGSO() {
		if !vswitch.SegmentFrameInto(f, t.nextFn, t.emitFn) {
			p.drop(DropMalformed, 1)
			t.fail(ErrFrame)
		} else {
			p.ctr.segmented.Add(1)
		}
	} else {
		t.add(f.Data, f.Offload)
	}
	t.flush()
	return t.err
}

func (t *txBatch) fail(err error) {
	if t.err == nil {
		t.err = err
	}
}

// nextSegment and emitSegment are SegmentFrameInto's callbacks, bound
// once in newTxBatch: each segment is built straight behind its header
// room in the txBuf, so a superframe is copied once on its way to the
// socket.
func (t *txBatch) nextSegment(n int) []byte {
	if room := t.reserve(n); room != nil {
		return room
	}
	t.tooBig = true
	return t.scratch[:n]
}

func (t *txBatch) emitSegment(seg []byte) {
	if t.tooBig {
		t.tooBig = false
		return // counted by reserve
	}
	t.commit(len(seg), vswitch.Offload{})
}

// add encapsulates one frame into the current txBuf.
func (t *txBatch) add(frame []byte, o vswitch.Offload) {
	if room := t.reserve(len(frame)); room != nil {
		copy(room, frame)
		t.commit(len(frame), o)
	}
}

// reserve returns the room for an inner frame of n bytes behind the header
// room of the next datagram in the current txBuf, flushing it first if it
// is full. It counts the drop and returns nil if the frame is too big.
func (t *txBatch) reserve(n int) []byte {
	p := t.p
	need := p.headroom + n + p.tailroom
	if n > p.maxFrame || need > maxDatagram {
		p.drop(DropTooBig, 1)
		t.fail(ErrFrame)
		return nil
	}
	b := t.cur
	if b.nd == maxBatch || b.used+need > len(b.buf) {
		t.flush()
		b = t.cur
	}
	off := b.used + p.headroom
	return b.buf[off : off+n]
}

// commit completes the datagram whose inner frame of n bytes reserve made
// room for: the checksum if o asks for it, then the VXLAN header or the
// seal.
func (t *txBatch) commit(n int, o vswitch.Offload) {
	p := t.p
	b := t.cur
	off := b.used
	pkt := b.buf[off : off+p.headroom+n]
	if o.NeedsCsum() && !completeChecksum(pkt[p.headroom:], o) {
		p.drop(DropMalformed, 1)
		t.fail(ErrFrame)
		return
	}
	if p.sealer != nil {
		if _, err := p.sealer.Seal(pkt, p.vni); err != nil {
			p.drop(DropSeal, 1)
			t.fail(ErrSend)
			return
		}
	} else {
		// Cannot fail: the buffer holds the header and the VNI was
		// checked by New.
		_ = EncodeVXLAN(pkt, p.vni)
	}
	need := p.headroom + n + p.tailroom
	b.dg[b.nd] = dgram{off: off, n: need}
	b.nd++
	b.used += need
}

// flush sends the current txBuf, or hands it to the sender goroutine and
// takes a fresh one.
func (t *txBatch) flush() {
	b := t.cur
	if b.nd == 0 {
		return
	}
	p := t.p
	if !t.async {
		// On the caller's goroutine: a full socket buffer drops the
		// batch (counted as DropSend) rather than holding up the switch.
		b.sys.setNoWait(true)
		if !p.sendBuf(b) {
			t.fail(ErrSend)
		}
		b.sys.setNoWait(false)
		b.nd, b.used = 0, 0
		return
	}
	p.txBusy.Add(1)
	select {
	case p.txq <- b:
	default:
		if err := t.queueSlow(b); err != nil {
			p.txBusy.Add(-1)
			if err == ErrClosed {
				p.drop(DropSend, b.nd)
			} else {
				p.drop(DropQueueFull, b.nd*len(b.targets))
			}
			t.fail(err)
			b.nd, b.used = 0, 0
			return
		}
	}
	t.cur = p.txBufs.Get().(*txBuf)
	t.cur.setTargets(t.targets)
}

// queueSlow queues b on a full txq. While the sender goroutine keeps up
// it frees a place within microseconds, and waiting for it (at most
// txWait) is what spares a bulk TCP transfer its drops. A sender that
// does not free one in that time is stuck on a slow underlay: the port
// is then marked congested and later Writes drop at once, never wait,
// until the sender gets a batch out; so a slow underlay costs the switch
// one txWait per batch the underlay takes, not one per frame.
func (t *txBatch) queueSlow(b *txBuf) error {
	p := t.p
	if p.congested.Load() {
		return ErrSend
	}
	if t.timer == nil {
		t.timer = time.NewTimer(txWait)
	} else {
		t.timer.Reset(txWait)
	}
	select {
	case p.txq <- b:
		t.timer.Stop()
		return nil
	case <-p.stop:
		t.timer.Stop()
		return ErrClosed
	case <-t.timer.C:
		p.congested.Store(true)
		return ErrSend
	}
}

// sender is the sender goroutine: it sends the txBufs Writes queued.
func (p *Port) sender() {
	defer p.wg.Done()
	for {
		select {
		case <-p.stop:
			for {
				select {
				case b := <-p.txq:
					p.drop(DropSend, b.nd*len(b.targets))
					b.reset()
					p.txBufs.Put(b)
					p.txBusy.Add(-1)
				default:
					return
				}
			}
		case b := <-p.txq:
			p.sendBuf(b)
			if p.congested.Load() {
				p.congested.Store(false) // a batch went out: Writes may wait again
			}
			b.reset()
			p.txBufs.Put(b)
			p.txBusy.Add(-1)
		}
	}
}

// sendBuf sends every datagram of b to each of its targets, counts what
// went and what did not, and reports whether everything went.
func (p *Port) sendBuf(b *txBuf) bool {
	overhead := p.headroom + p.tailroom
	ok := true
	for _, pr := range b.targets {
		var sent int
		var err error
		if p.pconn != nil {
			sent, err = p.pconn.send(b, pr)
		} else {
			sent, err = p.sock.send(b, pr)
		}
		if sent > 0 {
			inner := 0
			for _, d := range b.dg[:sent] {
				inner += d.n - overhead
			}
			pr.txFrames.Add(uint64(sent))
			pr.txBytes.Add(uint64(inner))
			p.ctr.txDatagrams.Add(uint64(sent))
			p.ctr.txFrames.Add(uint64(sent))
			p.ctr.txBytes.Add(uint64(inner))
		}
		if err != nil {
			p.drop(DropSend, b.nd-sent)
			ok = false
		}
	}
	return ok
}
