package vswitch

import (
	"encoding/binary"
	"sync"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// This file finishes, in software, the work a TAP with offloads leaves to
// the receiver, for ports that cannot take offloaded frames: it completes
// partial checksums and cuts TCP and UDP superframes into segments, as the
// kernel's skb_checksum_help and skb_segment do.

const (
	etherTypeIPv4 = 0x0800
	etherTypeIPv6 = 0x86dd
	etherTypeVLAN = 0x8100

	protoTCP = 6
	protoUDP = 17

	// maxSuperframe bounds a superframe: a 64 KiB IP packet behind an
	// Ethernet header with one VLAN tag.
	maxSuperframe = 65535 + EthHeaderLen + vlanTagLen
)

// segPool holds scratch buffers for segments. A segment is never longer
// than the superframe it is cut from.
var segPool = sync.Pool{New: func() any {
	b := make([]byte, maxSuperframe)
	return &b
}}

// completeChecksum finishes a partial transport checksum in place (the
// checksum field holds the pseudo-header sum; the rest is summed from
// CsumStart to the end of the frame) and clears the offload metadata. It
// reports false if the offsets point outside the frame.
func completeChecksum(f *Frame) bool {
	o := f.Offload
	start, field := int(o.CsumStart), int(o.CsumStart)+int(o.CsumOffset)
	if start < EthHeaderLen || field+2 > len(f.Data) {
		return false
	}
	sum := ^checksum.Checksum(f.Data[start:], 0)
	if sum == 0 {
		sum = 0xffff // a zero UDP checksum means "none"; 0xffff is the same sum
	}
	binary.BigEndian.PutUint16(f.Data[field:], sum)
	f.Offload = Offload{}
	return true
}

// l3Offset returns the offset of the IP header and its EtherType, skipping
// one VLAN tag.
func l3Offset(b []byte) (int, uint16, bool) {
	if len(b) < EthHeaderLen {
		return 0, 0, false
	}
	et := binary.BigEndian.Uint16(b[12:14])
	if et == etherTypeVLAN {
		if len(b) < EthHeaderLen+vlanTagLen {
			return 0, 0, false
		}
		return EthHeaderLen + vlanTagLen, binary.BigEndian.Uint16(b[16:18]), true
	}
	return EthHeaderLen, et, true
}

// SegmentFrame cuts superframe f into frames of at most f.Offload.GSOSize
// bytes of payload each, with complete headers and checksums, and calls
// emit with each one, in order. The segments are built in scratch, which
// must be at least as long as f.Data; emit must not retain the slice. It
// reports false, and emits nothing, if f's headers do not describe a TCP
// or UDP superframe that can be cut. Ports that take superframes and must
// cut them themselves (a tunnel batching segments into one UDP GSO send)
// use it; the switch uses it for ports that take no superframes.
func SegmentFrame(f Frame, scratch []byte, emit func([]byte)) bool {
	if len(scratch) < len(f.Data) {
		return false
	}
	return segmentFrame(f, scratch, nil, emit)
}

// SegmentFrameInto is SegmentFrame for a caller that wants every segment
// built in a buffer of its own, such as the room behind a tunnel header in
// a batch of datagrams, which saves copying it there from a scratch
// buffer. For each segment, next(n) returns where to build its n bytes (a
// slice of at least n bytes that does not overlap f.Data); emit is then
// called with those n bytes, complete. It reports false, and calls neither,
// if f cannot be cut.
func SegmentFrameInto(f Frame, next func(n int) []byte, emit func([]byte)) bool {
	return segmentFrame(f, nil, next, emit)
}

// segmentFrame builds each segment in next's buffer or, if next is nil, in
// scratch.
func segmentFrame(f Frame, scratch []byte, next func(int) []byte, emit func([]byte)) bool {
	b := f.Data
	l3, et, ok := l3Offset(b)
	if !ok {
		return false
	}
	var l4, ipHdrLen int
	var proto uint8
	switch et {
	case etherTypeIPv4:
		if len(b) < l3+header.IPv4MinimumSize {
			return false
		}
		ip := header.IPv4(b[l3:])
		ipHdrLen = int(ip.HeaderLength())
		if ip[0]>>4 != 4 || ipHdrLen < header.IPv4MinimumSize {
			return false
		}
		proto = ip.Protocol()
	case etherTypeIPv6:
		if len(b) < l3+header.IPv6MinimumSize {
			return false
		}
		ip := header.IPv6(b[l3:])
		ipHdrLen = header.IPv6MinimumSize
		if ip[0]>>4 != 6 {
			return false
		}
		proto = ip.NextHeader() // extension headers are not supported
	default:
		return false
	}
	l4 = l3 + ipHdrLen

	var hdrLen int
	switch f.Offload.GSOType &^ GSOECN {
	case GSOTCPv4, GSOTCPv6:
		if proto != protoTCP || len(b) < l4+header.TCPMinimumSize {
			return false
		}
		hdrLen = l4 + int(header.TCP(b[l4:]).DataOffset())
		if hdrLen < l4+header.TCPMinimumSize {
			return false
		}
	case GSOUDPL4:
		if proto != protoUDP {
			return false
		}
		hdrLen = l4 + header.UDPMinimumSize
	default:
		return false
	}
	mss := int(f.Offload.GSOSize)
	if mss == 0 || hdrLen > len(b) {
		return false
	}
	payload := b[hdrLen:]
	if len(payload) == 0 {
		return false
	}

	var seq uint32
	var tcpFlags uint8
	isTCP := proto == protoTCP
	if isTCP {
		tcp := header.TCP(b[l4:])
		seq = tcp.SequenceNumber()
		tcpFlags = uint8(tcp.Flags())
	}
	var id uint16
	if et == etherTypeIPv4 {
		id = header.IPv4(b[l3:]).ID()
	}

	for i, off := 0, 0; off < len(payload); i, off = i+1, off+mss {
		end := min(off+mss, len(payload))
		n := hdrLen + end - off
		var seg []byte
		if next != nil {
			seg = next(n)[:n]
		} else {
			seg = scratch[:n]
		}
		copy(seg, b[:hdrLen])
		copy(seg[hdrLen:], payload[off:end])
		last := end == len(payload)

		l4Len := n - l4
		if et == etherTypeIPv4 {
			ip := header.IPv4(seg[l3:])
			ip.SetTotalLength(uint16(n - l3))
			ip.SetID(id + uint16(i))
			ip.SetChecksum(0)
			ip.SetChecksum(^ip.CalculateChecksum())
		} else {
			header.IPv6(seg[l3:]).SetPayloadLength(uint16(l4Len))
		}
		var csumField int
		if isTCP {
			tcp := header.TCP(seg[l4:])
			tcp.SetSequenceNumber(seq + uint32(off))
			fl := tcpFlags
			if !last {
				fl &^= uint8(header.TCPFlagFin | header.TCPFlagPsh)
			}
			if i > 0 {
				fl &^= uint8(header.TCPFlagCwr)
			}
			tcp.SetFlags(fl)
			csumField = l4 + 16
		} else {
			binary.BigEndian.PutUint16(seg[l4+4:], uint16(l4Len))
			csumField = l4 + 6
		}
		seg[csumField], seg[csumField+1] = 0, 0
		sum := checksum.Checksum(seg[l4:], pseudoHeaderSum(seg[l3:], et, proto, l4Len))
		sum = ^sum
		if sum == 0 && !isTCP {
			sum = 0xffff
		}
		binary.BigEndian.PutUint16(seg[csumField:], sum)
		emit(seg)
	}
	return true
}

// pseudoHeaderSum is the one's-complement sum of the IPv4 or IPv6
// pseudo-header of a transport segment of length l4Len.
func pseudoHeaderSum(ip []byte, et uint16, proto uint8, l4Len int) uint16 {
	var sum uint16
	if et == etherTypeIPv4 {
		sum = checksum.Checksum(ip[12:20], 0) // source and destination
	} else {
		sum = checksum.Checksum(ip[8:40], 0)
	}
	var tail [4]byte
	binary.BigEndian.PutUint16(tail[0:], uint16(proto))
	binary.BigEndian.PutUint16(tail[2:], uint16(l4Len))
	return checksum.Checksum(tail[:], sum)
}
