package tunnel

import (
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/switchyard-net/switchyard/internal/reasons"
	vswitch "github.com/switchyard-net/switchyard/switch"
)

// DropReason says why a Port dropped a datagram or a frame. Every drop
// bumps exactly one counter; nothing is logged per packet.
type DropReason uint8

// Drop reasons. The first eight are the data-path sentinel errors of
// DecodeVXLAN and Opener.Open, one counter each.
const (
	// DropTruncated: ErrTruncated, a datagram shorter than its headers.
	DropTruncated DropReason = iota
	// DropVNIFlag: ErrVNIFlag, a VXLAN header without the I flag.
	DropVNIFlag
	// DropVersion: ErrVersion, a secure datagram of another version (or a
	// plain VXLAN datagram sent to a secure port).
	DropVersion
	// DropType: ErrType, a secure datagram of an unknown type.
	DropType
	// DropUnknownKey: ErrUnknownKey, sealed under a key ID we do not hold.
	DropUnknownKey
	// DropReplay: ErrReplay, a counter already seen or too old.
	DropReplay
	// DropAuth: ErrAuth, forged, corrupted, or sealed with another key.
	DropAuth
	// DropReflected: ErrReflected, an authentic datagram carrying our own
	// sender ID.
	DropReflected
	// DropUnknownPeer: a datagram from an address that is not a peer's.
	// Both modes drop these before looking inside; see the package doc.
	DropUnknownPeer
	// DropVNIMismatch: a valid VXLAN header carrying another VNI.
	DropVNIMismatch
	// DropTooBig: a received inner frame longer than the port's MTU
	// allows (and not a TCP superframe), a datagram longer than the
	// receive buffer, or a frame to send whose datagram would exceed
	// 64 KiB.
	DropTooBig
	// DropMalformed: a frame to send that is shorter than an Ethernet
	// header, or a superframe whose headers cannot be segmented.
	DropMalformed
	// DropNoPeer: a frame to send while the port has no peers.
	DropNoPeer
	// DropSend: the kernel refused to send a datagram (counted once per
	// datagram and peer).
	DropSend
	// DropSeal: the Sealer refused (its counter is exhausted).
	DropSeal
	// DropQueueFull: a frame to send found the sender goroutine's queue
	// full (the underlay is slower than the frames arriving), and was
	// dropped rather than hold up the switch (counted once per datagram
	// and peer).
	DropQueueFull

	numDropReasons
)

// NumDropReasons is the number of drop reasons, the length of
// Stats.DropsBy.
const NumDropReasons = int(numDropReasons)

var dropReasonNames = [numDropReasons]string{
	DropTruncated:   "truncated",
	DropVNIFlag:     "vni_flag",
	DropVersion:     "version",
	DropType:        "type",
	DropUnknownKey:  "unknown_key",
	DropReplay:      "replay",
	DropAuth:        "auth",
	DropReflected:   "reflected",
	DropUnknownPeer: "unknown_peer",
	DropVNIMismatch: "vni_mismatch",
	DropTooBig:      "too_big",
	DropMalformed:   "malformed",
	DropNoPeer:      "no_peer",
	DropSend:        "send",
	DropSeal:        "seal",
	DropQueueFull:   "queue_full",
}

// String names the reason as it appears in metrics and the CLI.
func (r DropReason) String() string { return reasons.Name(dropReasonNames[:], r) }

// DropReasons lists every reason, in counter order.
func DropReasons() []DropReason { return reasons.All[DropReason](int(numDropReasons)) }

// dropFor maps a data-path sentinel error to its counter.
func dropFor(err error) DropReason {
	switch err {
	case ErrTruncated:
		return DropTruncated
	case ErrVNIFlag:
		return DropVNIFlag
	case ErrVersion:
		return DropVersion
	case ErrType:
		return DropType
	case ErrUnknownKey:
		return DropUnknownKey
	case ErrReplay:
		return DropReplay
	case ErrAuth:
		return DropAuth
	case ErrReflected:
		return DropReflected
	}
	return DropMalformed
}

// counters are the port-wide counters. RX is written by the reader, TX by
// the goroutines that call Write; they live on separate cache lines.
type counters struct {
	rxDatagrams atomic.Uint64 // UDP datagrams (GRO-merged ones counted one by one)
	rxFrames    atomic.Uint64 // frames delivered to the switch, before coalescing
	rxBytes     atomic.Uint64
	rxBatches   atomic.Uint64 // recvmmsg calls that returned data
	rxGRO       atomic.Uint64 // messages that carried several datagrams (UDP GRO)
	coalesced   atomic.Uint64 // superframes built from several received segments
	csumFixed   atomic.Uint64 // received frames whose partial checksum was completed
	rxSuper     atomic.Uint64 // superframes received whole in one datagram
	readErrors  atomic.Uint64
	_           [64]byte

	txDatagrams atomic.Uint64
	txFrames    atomic.Uint64 // frames (segments) sent, counted once per peer
	txBytes     atomic.Uint64
	txSyscalls  atomic.Uint64 // sendmsg/sendmmsg calls
	txGSO       atomic.Uint64 // sendmsg calls carrying several datagrams (UDP GSO)
	segmented   atomic.Uint64 // superframes cut into segments
	macMoves    atomic.Uint64
	_           [64]byte

	drops [numDropReasons]atomic.Uint64
}

// Stats is a snapshot of a Port's counters.
type Stats struct {
	// RXDatagrams counts UDP datagrams received, each segment of a
	// GRO-merged message once; RXFrames and RXBytes the inner frames
	// handed to the switch (counted before coalescing, so a superframe
	// built from 40 segments counts 40).
	RXDatagrams, RXFrames, RXBytes uint64
	// RXBatches counts receive system calls that returned data; RXGRO the
	// messages among them that carried several datagrams.
	RXBatches, RXGRO uint64
	// Coalesced counts superframes built from received TCP segments;
	// ReceivedSuperframes those that arrived whole, in one datagram longer
	// than the MTU (from a Linux vxlan device over a veth).
	Coalesced, ReceivedSuperframes uint64
	// ChecksumsCompleted counts received frames whose transport checksum
	// was still partial (see the package doc) and was completed.
	ChecksumsCompleted uint64
	// ReadErrors counts failed receive calls (not datagrams).
	ReadErrors uint64

	// TXDatagrams, TXFrames and TXBytes count what was sent, once per
	// peer a frame went to.
	TXDatagrams, TXFrames, TXBytes uint64
	// TXSyscalls counts send system calls; TXGSO those that used UDP
	// segmentation offload.
	TXSyscalls, TXGSO uint64
	// Segmented counts superframes cut into segments before sending.
	Segmented uint64

	// MACs is the number of learned MAC addresses; MACMoves how often one
	// was relearned behind another peer.
	MACs     int
	MACMoves uint64

	// Drops is the sum of DropsBy, which is indexed by DropReason.
	Drops   uint64
	DropsBy [NumDropReasons]uint64

	// Peers holds one entry per peer, in the order they were added.
	Peers []PeerStats
}

// PeerStats is a snapshot of one peer's counters.
type PeerStats struct {
	// Addr is where the peer's datagrams are sent.
	Addr netip.AddrPort
	// RXFrames and RXBytes count inner frames received from the peer
	// (before coalescing); TXFrames and TXBytes frames sent to it,
	// flooded ones included.
	RXFrames, RXBytes, TXFrames, TXBytes uint64
	// MACs is how many MAC addresses are learned behind the peer now.
	MACs int
	// LastSeen is when the last valid datagram came from the peer; zero
	// if none has.
	LastSeen time.Time
}

// MACEntry is one learned MAC address.
type MACEntry struct {
	MAC      vswitch.MAC
	Peer     netip.AddrPort
	LastSeen time.Time
}
