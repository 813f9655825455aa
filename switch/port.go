package vswitch

// Port is one attachment point of a Switch: a TAP device, a netstack, a
// tunnel, or an in-memory double in tests.
//
// A Port moves frames in two directions. Frames it receives from its wire it
// hands to the switch through the Ingress given to Start, from goroutines of
// its own (one reader per device or per queue). Frames the switch sends out
// of it arrive through Write.
type Port interface {
	// Info describes the port. The switch reads it once, at Attach.
	Info() PortInfo

	// Start is called once, by Switch.Attach. From then until Close the
	// port delivers every frame it receives to in.Receive. Start must not
	// block; the port runs its readers on goroutines of its own.
	Start(in Ingress) error

	// Write sends one frame out of the port. The caller owns f.Data; the
	// port must not retain it after Write returns (copy it if the frame is
	// queued). If the port advertises no offloads, f.Offload is zero.
	// Write is called from the goroutines of other ports' readers and must
	// be safe for concurrent use. A port that cannot send now drops the
	// frame and returns an error; the switch counts it.
	Write(f Frame) error

	// Close stops the readers and releases the device. After Close
	// returns the port calls Receive no more.
	Close() error
}

// Ingress receives the frames a Port reads from its wire.
type Ingress interface {
	// Receive forwards f. The caller owns f.Data and may reuse it as soon
	// as Receive returns; the switch may modify the bytes in place while
	// it runs. Receive may be called from several goroutines at once (a
	// multi-queue device) and never blocks on another port's reader.
	Receive(f Frame)
}

// PortInfo describes a Port to the switch.
type PortInfo struct {
	// Name identifies the port in logs, counters and captures.
	Name string
	// Kind is a short word for what the port is: "tap", "gateway",
	// "tunnel", "mem".
	Kind string
	// MTU is the largest L3 packet the port carries. Frames longer than
	// MTU plus the Ethernet header (and one VLAN tag) are dropped on
	// ingress and on egress. Zero means 1500.
	MTU int
	// Offloads says which offloaded frames the port accepts in Write.
	// Frames the port cannot take are fixed up by the switch first:
	// checksums completed, superframes cut into MTU-sized segments.
	Offloads Offloads
}

// Offloads is a set of offload capabilities of a port, in the sense of the
// TUNSETOFFLOAD flags of a TAP device.
type Offloads uint8

const (
	// OffloadCsum: the port accepts frames whose transport checksum is
	// partial (Offload.Flags has OffloadNeedsCsum).
	OffloadCsum Offloads = 1 << iota
	// OffloadTSO4: the port accepts TCP-over-IPv4 superframes.
	OffloadTSO4
	// OffloadTSO6: the port accepts TCP-over-IPv6 superframes.
	OffloadTSO6
	// OffloadUSO: the port accepts UDP (GSO_UDP_L4) superframes.
	OffloadUSO
)

// accepts reports whether a port with offload set s can take a frame
// carrying o unchanged.
func (s Offloads) accepts(o Offload) bool {
	if o.NeedsCsum() && s&OffloadCsum == 0 {
		return false
	}
	switch o.GSOType &^ GSOECN {
	case GSONone:
		return true
	case GSOTCPv4:
		return s&OffloadTSO4 != 0
	case GSOTCPv6:
		return s&OffloadTSO6 != 0
	case GSOUDPL4:
		return s&OffloadUSO != 0
	}
	return false
}
