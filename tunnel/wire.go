package tunnel

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// VXLAN header (RFC 7348, section 5):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|R|R|R|R|I|R|R|R|            Reserved                           |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                VXLAN Network Identifier (VNI) |   Reserved    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// followed by the inner Ethernet frame without FCS. The I flag (0x08) says
// the VNI is valid. Reserved fields are sent as zero and ignored on receipt.

const (
	// VXLANPort is the IANA-assigned UDP destination port for VXLAN, the
	// Linux vxlan device's default (dstport 4789).
	VXLANPort = 4789

	// VXLANHeaderLen is the length of a VXLAN header.
	VXLANHeaderLen = 8

	// EthHeaderLen is the length of an untagged Ethernet header, the
	// shortest inner frame accepted.
	EthHeaderLen = 14

	// MaxVNI is the largest VXLAN Network Identifier (24 bits).
	MaxVNI = 1<<24 - 1

	// Overhead is what VXLAN over IPv4 adds to an inner IP packet: outer
	// IPv4 header (20) + UDP header (8) + VXLAN header (8) + inner Ethernet
	// header (14). It is the kernel's VXLAN_HEADROOM; a 1500-byte underlay
	// leaves an inner MTU of 1450.
	Overhead = 50

	// OverheadIPv6 is Overhead for an IPv6 underlay (40-byte outer
	// header): a 1500-byte underlay leaves an inner MTU of 1430, the
	// kernel's VXLAN6_HEADROOM.
	OverheadIPv6 = 70
)

// vxlanFlagI is the I flag: the VNI field is valid.
const vxlanFlagI = 0x08

// Errors of the data path. They are returned unwrapped so that producing
// them never allocates.
var (
	// ErrTruncated: the datagram is shorter than its headers (and, for
	// VXLAN, an inner Ethernet header; for secure datagrams, the tag).
	ErrTruncated = errors.New("tunnel: datagram truncated")
	// ErrVNIFlag: a VXLAN header whose I flag is clear, which RFC 7348
	// says carries no valid VNI.
	ErrVNIFlag = errors.New("tunnel: VXLAN I flag clear (no valid VNI)")
)

// Errors of configuration and of encapsulation, wrapped in messages that
// name the offending value.
var (
	// ErrVNIRange: a VNI does not fit in 24 bits.
	ErrVNIRange = errors.New("VNI out of range")
	// ErrShortBuffer: a buffer lacks room for the headers, the frame or
	// the tag.
	ErrShortBuffer = errors.New("buffer too short")
)

// VXLAN is a view of a VXLAN header followed by its inner frame. Check
// IsValid before calling the other methods.
type VXLAN []byte

// IsValid reports whether v is long enough for a VXLAN header and has the
// I flag set. Reserved bits are ignored, as RFC 7348 requires of receivers.
func (v VXLAN) IsValid() bool {
	return len(v) >= VXLANHeaderLen && v[0]&vxlanFlagI != 0
}

// VNI returns the 24-bit VXLAN Network Identifier.
func (v VXLAN) VNI() uint32 {
	return uint32(v[4])<<16 | uint32(v[5])<<8 | uint32(v[6])
}

// SetVNI stores the low 24 bits of vni in the VNI field, leaving the flags
// and reserved bytes alone. Callers check vni ≤ MaxVNI (EncodeVXLAN does).
func (v VXLAN) SetVNI(vni uint32) {
	v[4], v[5], v[6] = byte(vni>>16), byte(vni>>8), byte(vni)
}

// Payload returns the inner frame that follows the header.
func (v VXLAN) Payload() []byte { return v[VXLANHeaderLen:] }

// EncodeVXLAN writes a VXLAN header for vni into dst[0:8] exactly as the
// Linux kernel does: flags 0x08, reserved bytes zero. To encapsulate in
// place, copy the frame to buf[VXLANHeaderLen:] and call EncodeVXLAN(buf,
// vni); buf is then the UDP payload.
func EncodeVXLAN(dst []byte, vni uint32) error {
	if vni > MaxVNI {
		return fmt.Errorf("VXLAN VNI %d: %w (want 0 to %d)", vni, ErrVNIRange, MaxVNI)
	}
	if len(dst) < VXLANHeaderLen {
		return fmt.Errorf("%d-byte buffer for a VXLAN header: %w (want at least %d)", len(dst), ErrShortBuffer, VXLANHeaderLen)
	}
	binary.BigEndian.PutUint32(dst[0:4], vxlanFlagI<<24)
	binary.BigEndian.PutUint32(dst[4:8], vni<<8)
	return nil
}

// DecodeVXLAN parses the VXLAN datagram b (a UDP payload) and returns its
// VNI and the inner frame, a view into b. It returns ErrTruncated if b
// cannot hold a header and an Ethernet header, and ErrVNIFlag if the I flag
// is clear. Reserved bits are ignored, as RFC 7348 asks of receivers; note
// that Linux is stricter and drops datagrams with reserved bits set that
// it does not understand.
func DecodeVXLAN(b []byte) (vni uint32, inner []byte, err error) {
	if len(b) < VXLANHeaderLen+EthHeaderLen {
		return 0, nil, ErrTruncated
	}
	v := VXLAN(b)
	if !v.IsValid() {
		return 0, nil, ErrVNIFlag
	}
	return v.VNI(), v.Payload(), nil
}

// MTUFor returns the largest inner IP packet that fits a VXLAN-over-IPv4
// tunnel on a link of MTU linkMTU without fragmentation: linkMTU-Overhead,
// or 0 if the link is too small to carry anything.
func MTUFor(linkMTU int) int {
	return max(linkMTU-Overhead, 0)
}

// MTUFor6 is MTUFor over an IPv6 underlay: linkMTU-OverheadIPv6, or 0.
func MTUFor6(linkMTU int) int {
	return max(linkMTU-OverheadIPv6, 0)
}

// InnerMTU returns the largest inner IP packet a tunnel of mode m carries
// without fragmentation on a link of MTU linkMTU, over IPv6 if ipv6 is
// set: MTUFor, MTUFor6, SecureMTUFor or SecureMTUFor6. On a 1500-byte
// link that is 1450 and 1430 for VXLAN, 1418 and 1398 sealed.
func (m Mode) InnerMTU(linkMTU int, ipv6 bool) int {
	switch {
	case m == ModeSecure && ipv6:
		return SecureMTUFor6(linkMTU)
	case m == ModeSecure:
		return SecureMTUFor(linkMTU)
	case ipv6:
		return MTUFor6(linkMTU)
	}
	return MTUFor(linkMTU)
}
