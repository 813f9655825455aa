package tunnel

import (
	"bytes"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	vswitch "github.com/switchyard-net/switchyard/switch"
)

// Receive coalescing: the userspace counterpart of the kernel's GRO for the
// frames that come out of the tunnel. A bulk TCP flow arrives as a train
// of MTU-sized segments; written to an offloading TAP one by one they cost
// a system call each. The coalescer merges consecutive segments of a flow
// within one receive batch into a superframe (virtio-net GSO metadata, a
// partial checksum) that the switch forwards whole and the TAP takes in
// one write; a TAP without offload gets it cut again by the switch.
//
// Segments merge only when cutting the superframe again with
// vswitch.SegmentFrame gives back exactly the same segments (FuzzPortReceive
// checks this): same Ethernet and IP headers but for the IPv4 ID, which
// must count up by one, and the lengths; same TCP header but for the
// sequence number, which must follow on, and PSH, allowed on the last
// segment only; flags ACK or ACK|PSH and nothing else; every segment but
// the last of the same size; no IPv4 options and a valid IPv4 header
// checksum; valid TCP checksums (checked first, in plain mode; in secure
// mode the AEAD vouches for the frame, which a Switchyard sender built
// with complete checksums). Anything else flushes the flow's superframe and goes on alone, so
// the order of each flow is kept. Frames of different flows may be
// reordered against each other, as GRO does.

// maxPending is how many flows the coalescer holds at once; a new flow
// beyond it flushes one.
const maxPending = 8

// coalescer is owned by the reader goroutine.
type coalescer struct {
	in      vswitch.Ingress
	enabled bool // FeatureCoalesce
	verify  bool // check (and complete) transport checksums: plain mode
	ctr     *counters
	pend    [maxPending]pending
	n       int
}

// pending is a superframe under construction.
type pending struct {
	// frame is the superframe so far: a view of the first segment in the
	// receive buffer until a second one arrives, then buf[:len].
	frame   []byte
	buf     []byte // owned, allocated once
	owned   bool
	segs    int
	in      l4Info
	hdrLen  int // Ethernet, IP and TCP headers
	mss     int // payload of every segment but the last
	nextSeq uint32
	nextID  uint16
}

func newCoalescer(ctr *counters, enabled, verify bool) *coalescer {
	c := &coalescer{enabled: enabled, verify: verify, ctr: ctr}
	if enabled {
		for i := range c.pend {
			c.pend[i].buf = make([]byte, scratchLen)
		}
	}
	return c
}

// tcpSeg is what the coalescer reads from a TCP header.
type tcpSeg struct {
	hdrLen  int // end of the TCP header, from the start of the frame
	payload int
	seq     uint32
	psh     bool
	ok      bool // a candidate: ACK or ACK|PSH, a payload, no padding, a plain IPv4 header
}

func parseTCP(b []byte, in l4Info) tcpSeg {
	tcp := header.TCP(b[in.l4:in.end])
	thl := int(tcp.DataOffset())
	if thl < header.TCPMinimumSize || thl > len(tcp) {
		return tcpSeg{}
	}
	s := tcpSeg{hdrLen: in.l4 + thl, payload: len(tcp) - thl, seq: tcp.SequenceNumber()}
	flags := tcp.Flags()
	s.psh = flags&header.TCPFlagPsh != 0
	s.ok = flags&^header.TCPFlagPsh == header.TCPFlagAck && s.payload > 0 && in.end == len(b) &&
		(in.v6 || in.l4-in.l3 == header.IPv4MinimumSize && header.IPv4(b[in.l3:]).IsChecksumValid())
	return s
}

// add takes one received frame, a view of the receive buffer valid until
// flush, and delivers it or holds it for merging.
func (c *coalescer) add(b []byte) {
	in, isL4 := parseL4(b)
	valid := true
	if isL4 && c.verify {
		var completed bool
		valid, completed = checkTransport(b, in)
		if completed {
			c.ctr.csumFixed.Add(1)
		}
	}
	if !c.enabled || !isL4 || in.proto != header.TCPProtocolNumber {
		c.deliver(b)
		return
	}
	seg := parseTCP(b, in)
	i := c.find(b, in)
	if !valid || !seg.ok {
		if i >= 0 {
			c.flushAt(i)
		}
		c.deliver(b)
		return
	}
	if i >= 0 {
		p := &c.pend[i]
		if p.canMerge(b, in, seg) {
			if p.merge(b, seg) {
				c.flushAt(i)
			}
			return
		}
		c.flushAt(i)
	}
	if seg.psh {
		c.deliver(b) // the end of a burst: nothing to wait for
		return
	}
	if c.n == maxPending {
		c.flushAt(0)
	}
	p := &c.pend[c.n]
	c.n++
	p.frame, p.owned, p.segs, p.in, p.hdrLen, p.mss = b, false, 1, in, seg.hdrLen, seg.payload
	p.nextSeq = seg.seq + uint32(seg.payload)
	if !in.v6 {
		p.nextID = header.IPv4(b[in.l3:]).ID() + 1
	}
}

// find returns the index of the pending superframe of b's flow, or -1.
func (c *coalescer) find(b []byte, in l4Info) int {
	for i := 0; i < c.n; i++ {
		p := &c.pend[i]
		f := p.frame
		if p.in.v6 != in.v6 || p.in.l4 != in.l4 || !bytes.Equal(f[:14], b[:14]) ||
			!bytes.Equal(f[p.in.l4:p.in.l4+4], b[in.l4:in.l4+4]) {
			continue
		}
		if in.v6 {
			if bytes.Equal(f[in.l3+8:in.l3+40], b[in.l3+8:in.l3+40]) {
				return i
			}
		} else if bytes.Equal(f[in.l3+12:in.l3+20], b[in.l3+12:in.l3+20]) {
			return i
		}
	}
	return -1
}

// canMerge reports whether segment b continues p exactly.
func (p *pending) canMerge(b []byte, in l4Info, s tcpSeg) bool {
	f := p.frame
	if s.hdrLen != p.hdrLen || s.seq != p.nextSeq || s.payload > p.mss ||
		len(f)+s.payload-in.l3 > 65535 {
		return false
	}
	ip, fip := b[in.l3:], f[in.l3:]
	if in.v6 {
		// Version, traffic class, flow label; hop limit.
		if !bytes.Equal(ip[0:4], fip[0:4]) || ip[7] != fip[7] {
			return false
		}
	} else if ip[1] != fip[1] || ip[6] != fip[6] || ip[8] != fip[8] ||
		header.IPv4(ip).ID() != p.nextID {
		return false // TOS, DF, TTL, ID
	}
	tcp, ftcp := b[in.l4:s.hdrLen], f[in.l4:p.hdrLen]
	// Acknowledgment number, data offset, window, urgent pointer, options;
	// flags but PSH.
	return bytes.Equal(tcp[8:13], ftcp[8:13]) && tcp[13]&^uint8(header.TCPFlagPsh) == ftcp[13] &&
		bytes.Equal(tcp[14:16], ftcp[14:16]) && bytes.Equal(tcp[18:], ftcp[18:])
}

// merge appends segment b to p and reports whether p is complete (the
// segment was short or pushed).
func (p *pending) merge(b []byte, s tcpSeg) bool {
	if !p.owned {
		n := copy(p.buf, p.frame)
		p.frame, p.owned = p.buf[:n], true
	}
	n := len(p.frame)
	copy(p.buf[n:], b[s.hdrLen:])
	p.frame = p.buf[:n+s.payload]
	p.segs++
	p.nextSeq += uint32(s.payload)
	p.nextID++
	if s.psh {
		tcp := header.TCP(p.frame[p.in.l4:])
		tcp.SetFlags(uint8(tcp.Flags() | header.TCPFlagPsh))
	}
	return s.psh || s.payload < p.mss
}

// flushAt delivers pending i and removes it.
func (c *coalescer) flushAt(i int) {
	c.deliverPending(&c.pend[i])
	c.n--
	// Swap, never copy over: each slot keeps its own buffer.
	c.pend[i], c.pend[c.n] = c.pend[c.n], c.pend[i]
	c.pend[c.n].frame = nil
}

// flush delivers everything pending, at the end of a receive batch.
func (c *coalescer) flush() {
	for c.n > 0 {
		c.flushAt(c.n - 1)
	}
}

func (c *coalescer) deliverPending(p *pending) {
	if p.segs == 1 {
		c.deliver(p.frame)
		return
	}
	b, in := p.frame, p.in
	o := vswitch.Offload{
		Flags:      vswitch.OffloadNeedsCsum,
		GSOType:    vswitch.GSOTCPv4,
		HdrLen:     uint16(p.hdrLen),
		GSOSize:    uint16(p.mss),
		CsumStart:  uint16(in.l4),
		CsumOffset: header.TCPChecksumOffset,
	}
	if in.v6 {
		o.GSOType = vswitch.GSOTCPv6
		header.IPv6(b[in.l3:]).SetPayloadLength(uint16(len(b) - in.l4))
	} else {
		ip := header.IPv4(b[in.l3:])
		ip.SetTotalLength(uint16(len(ip)))
		ip.SetChecksum(0)
		ip.SetChecksum(^ip.CalculateChecksum())
	}
	// A partial checksum holds the pseudo-header sum, as the kernel
	// leaves it for the device.
	header.TCP(b[in.l4:]).SetChecksum(in.pseudoSum(b, len(b)-in.l4))
	c.ctr.coalesced.Add(1)
	c.in.Receive(vswitch.Frame{Data: b, Offload: o, Direct: true})
}

// deliver hands b to the switch. The coalescer runs on the port's reader,
// which holds no lock, so its frames are Direct.
func (c *coalescer) deliver(b []byte) { c.in.Receive(vswitch.Frame{Data: b, Direct: true}) }

// superframe recognises an inner frame longer than the MTU that is a TCP
// superframe, as a Linux vxlan device on the same machine sends them: its
// TSO packets cross a veth underlay unsegmented, and the kernel hands the
// whole GSO packet to a UDP socket as one datagram (only UDP_L4 GSO
// packets are cut for sockets that did not ask for them). It returns the
// GSO metadata to forward it whole, with segments sized for mtu (the
// sender's real segment size is not in the datagram), and leaves the
// checksum partial, rewriting it to the pseudo-header sum if it was
// complete. It reports false, leaving b alone, for anything else, and for
// a checksum that is neither partial nor valid.
func superframe(b []byte, mtu int) (vswitch.Offload, bool) {
	in, ok := parseL4(b)
	if !ok || in.proto != header.TCPProtocolNumber || in.end != len(b) {
		return vswitch.Offload{}, false
	}
	tcp := header.TCP(b[in.l4:in.end])
	thl := int(tcp.DataOffset())
	hdrLen := in.l4 + thl
	mss := mtu - (in.l4 - in.l3) - thl
	if thl < header.TCPMinimumSize || hdrLen > len(b) || mss <= 0 || len(b)-hdrLen <= mss {
		return vswitch.Offload{}, false
	}
	pseudo := in.pseudoSum(b, len(tcp))
	if tcp.Checksum() != pseudo {
		if checksum.Checksum(tcp, pseudo) != 0xffff {
			return vswitch.Offload{}, false
		}
		tcp.SetChecksum(pseudo)
	}
	o := vswitch.Offload{
		Flags: vswitch.OffloadNeedsCsum, GSOType: vswitch.GSOTCPv4, HdrLen: uint16(hdrLen),
		GSOSize: uint16(mss), CsumStart: uint16(in.l4), CsumOffset: header.TCPChecksumOffset,
	}
	if in.v6 {
		o.GSOType = vswitch.GSOTCPv6
	}
	return o, true
}

// addSuperframe delivers a superframe received whole (see superframe),
// after the pending superframe of its flow, if any.
func (c *coalescer) addSuperframe(b []byte, o vswitch.Offload) {
	if c.enabled {
		if in, ok := parseL4(b); ok {
			if i := c.find(b, in); i >= 0 {
				c.flushAt(i)
			}
		}
	}
	c.ctr.rxSuper.Add(1)
	c.in.Receive(vswitch.Frame{Data: b, Offload: o, Direct: true})
}
