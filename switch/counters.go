package vswitch

import (
	"sync/atomic"

	"github.com/switchyard-net/switchyard/internal/reasons"
)

// DropReason says why the switch dropped a frame.
type DropReason uint8

// Drop reasons. Ingress reasons are counted on the port the frame came in
// on; egress reasons on the port it would have gone out of.
const (
	// DropMalformed: shorter than an Ethernet header, or a group address
	// as source.
	DropMalformed DropReason = iota
	// DropOversize: longer than the port's MTU allows.
	DropOversize
	// DropLearnLimit: a new source MAC arrived on a port that already has
	// as many MACs in the forwarding table as it may (AttachOptions.MaxMACs).
	DropLearnLimit
	// DropSpoofed: the source MAC is not the one the port is locked or
	// bound to, one the port may not send from (AttachOptions.DenyMAC), or
	// a MAC bound to another port.
	DropSpoofed
	// DropIsolated: unicast between two isolated ports (icc=false).
	DropIsolated
	// DropHairpin: the destination MAC lives on the port the frame came
	// in on.
	DropHairpin
	// DropOffload: a superframe or partial checksum could not be fixed up
	// for a port that cannot take it (malformed headers, unsupported type).
	DropOffload
	// DropWrite: the egress port refused the frame (queue full, device
	// error, port closing).
	DropWrite
	// DropSpoofedIP: a bound port sent from an IPv4 or IPv6 address not in
	// its Binding.
	DropSpoofedIP
	// DropSpoofedARP: a bound port's ARP spoke for another MAC or address.
	DropSpoofedARP
	// DropSpoofedND: a bound port's neighbour solicitation or advertisement
	// spoke for another MAC or address.
	DropSpoofedND
	// DropRAGuard: a bound port sent an IPv6 router advertisement or
	// redirect (behind any extension headers), or a first fragment that
	// does not hold the whole IPv6 header chain (RFC 7113).
	DropRAGuard
	// DropEtherType: a bound port sent something other than IPv4, ARP or
	// IPv6 (VLAN-tagged frames included).
	DropEtherType

	numDropReasons
)

var dropReasonNames = [numDropReasons]string{
	DropMalformed:  "malformed",
	DropOversize:   "oversize",
	DropLearnLimit: "learn_limit",
	DropSpoofed:    "spoofed",
	DropIsolated:   "isolated",
	DropHairpin:    "hairpin",
	DropOffload:    "offload",
	DropWrite:      "write",
	DropSpoofedIP:  "spoofed_ip",
	DropSpoofedARP: "spoofed_arp",
	DropSpoofedND:  "spoofed_nd",
	DropRAGuard:    "ra_guard",
	DropEtherType:  "ethertype",
}

// String names the reason as it appears in metrics and the CLI.
func (r DropReason) String() string { return reasons.Name(dropReasonNames[:], r) }

// DropReasons lists every reason, in counter order.
func DropReasons() []DropReason { return reasons.All[DropReason](int(numDropReasons)) }

// dirCounters are the counters of one direction of one port. Each direction
// is written mostly by one goroutine (RX by the port's reader, TX by the
// readers of the other ports), so the two live on separate cache lines.
type dirCounters struct {
	frames atomic.Uint64
	bytes  atomic.Uint64
	drops  [numDropReasons]atomic.Uint64
	_      [64]byte
}

func (c *dirCounters) add(n int) {
	c.frames.Add(1)
	c.bytes.Add(uint64(n))
}

func (c *dirCounters) snapshot() DirStats {
	s := DirStats{Frames: c.frames.Load(), Bytes: c.bytes.Load()}
	for i := range c.drops {
		v := c.drops[i].Load()
		s.Drops += v
		s.DropsBy[i] = v
	}
	return s
}

// DirStats is a snapshot of one direction's counters.
type DirStats struct {
	Frames uint64
	Bytes  uint64
	// Drops is the sum of DropsBy.
	Drops uint64
	// DropsBy is indexed by DropReason.
	DropsBy [numDropReasons]uint64
}

// PortStats is a snapshot of one port's counters. RX is what the switch
// received from the port, TX what it sent to it.
type PortStats struct {
	Name string
	Kind string
	RX   DirStats
	TX   DirStats
}

// Stats is a snapshot of a switch.
type Stats struct {
	Ports []PortStats
	// FDBEntries is the number of learned MACs, expired ones not yet swept
	// included.
	FDBEntries int
	// FDBMoves counts MACs relearned on another port.
	FDBMoves uint64
	// FDBFull counts frames from a new source MAC that the full table
	// could not learn; they are forwarded all the same.
	FDBFull uint64
	// Segmented counts superframes cut into segments for ports without
	// segmentation offload.
	Segmented uint64
	// ICMPSent counts "fragmentation needed" / "packet too big" errors
	// the switch sent for frames too big for their egress port;
	// ICMPLimited the ones the rate limit suppressed.
	ICMPSent    uint64
	ICMPLimited uint64
}
