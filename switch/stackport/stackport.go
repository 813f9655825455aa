// Package stackport joins a gVisor netstack NIC to a vswitch as a Port.
//
//	switch ── Write(Frame) ──► copy into a PacketBuffer ─┬─► netstack NIC (ethernet.Endpoint), inline
//	                                                     └─► bounded queue ─► delivery goroutine ─► NIC
//	netstack ── WritePackets ──► flatten ─┬─► Ingress.Receive (synchronous)
//	                                       └─► a TCP SYN-ACK: copied ─► delivery goroutine ─► Ingress.Receive
//
// A frame from the switch is delivered to the netstack inline, on the
// goroutine that wrote it (a TAP's reader), when that costs no re-entry and
// no reordering: the writing goroutine is not itself inside a netstack's
// send path (the frame is Direct: a reader that holds no lock sent it; or
// no goroutine of the process is in a send path: see sending), and nothing
// the port queued earlier is still waiting or being delivered. Otherwise
// it goes through the queue to the port's delivery goroutine, as every
// frame did before: the netstack may call WritePackets while holding its
// own locks (ARP, TCP), and an inline delivery of the reply could re-enter
// them. Delivering inline saves one goroutine hand-off per frame (a
// wake-up, tens of µs on a small VM) on the published-port path.
//
// Frames from the netstack go into the switch synchronously, on the
// netstack's goroutine, like a TAP reader's, with one exception: a TCP
// SYN-ACK is copied and sent by the delivery goroutine, after the
// netstack's call has returned. gVisor's forwarder (the gateway's egress)
// sends the SYN-ACK holding the new connection's lock, and a TAP write
// lets the container answer within it: its ACK and first data queue on
// that connection, and gVisor's TCP processor goroutine, finding the lock
// taken, retries without yielding until it is free. On two vCPUs it spun
// for milliseconds per connection, keeping the lock's holder off the CPU
// (benchmarks/RESULTS.md, "Egress connections").
//
// The gateway of every network and the virtual hosts of package vnettest are
// built on this port.
package stackport

import (
	"errors"
	"sync"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/ethernet"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	vswitch "github.com/switchyard-net/switchyard/switch"
)

// DefaultQueueLen is the number of frames from the switch that may wait for
// the netstack before further ones are dropped.
const DefaultQueueLen = 1024

// Errors returned by Write; the switch counts them as DropWrite.
var (
	ErrQueueFull = errors.New("stackport: netstack queue full")
	ErrClosed    = errors.New("stackport: port closed")
)

// Config describes a Port.
type Config struct {
	Name string
	Kind string // for PortInfo; "gateway" or "host"
	MAC  vswitch.MAC
	MTU  int // L3 MTU; 0 means 1500
	// QueueLen bounds the switch-to-netstack queue. 0 means DefaultQueueLen.
	QueueLen int
	// Offload lets frames cross between the netstack and the switch
	// whole: TCP superframes of up to GSOMaxSize bytes from the netstack
	// (host GSO: the switch hands them to TAPs as they are, or cuts them
	// for ports that cannot take them), and superframes and partial
	// checksums from TAPs into the netstack, marked as validated.
	Offload bool
	// Intercept, if set, sees every frame the switch writes to the port,
	// on the switch's goroutine, before it is queued for the netstack. If
	// it returns true the frame is consumed and the netstack never sees
	// it. It must not retain f.Data, and may call Send.
	Intercept func(f vswitch.Frame) bool
}

// Port is a vswitch.Port backed by a netstack NIC. Create it with New, give
// LinkEndpoint() to stack.CreateNIC, and attach the Port to a switch.
type Port struct {
	cfg Config
	ep  *endpoint

	in    atomic.Pointer[ingressBox]
	queue chan *stack.PacketBuffer
	// handshakes are the SYN-ACKs the netstack sent, waiting for the
	// delivery goroutine to send them on (see the package comment).
	handshakes chan handshake
	stop       chan struct{}
	done       chan struct{}
	started    atomic.Bool
	closed     atomic.Bool
	once       sync.Once

	// closeMu is held for reading by an inline delivery and for writing
	// by Close, so that nothing reaches the netstack after Close returns.
	closeMu sync.RWMutex
	// pending counts frames queued and not yet delivered.
	pending atomic.Int64
	inlined atomic.Uint64

	badChecksums atomic.Uint64
}

// BadChecksums counts frames dropped because their checksums were wrong.
func (p *Port) BadChecksums() uint64 { return p.badChecksums.Load() }

// Inlined counts frames from the switch delivered to the netstack on the
// writer's goroutine rather than through the queue.
func (p *Port) Inlined() uint64 { return p.inlined.Load() }

// sending counts the goroutines of the process that are inside a Port's
// fromStackFrame: a netstack's send path (WritePackets) or Send. While it
// is not zero, a goroutine writing to a Port may be one of them, holding
// a netstack's locks, so Write queues rather than delivering inline. When
// it is zero the writing goroutine is certainly not one of them.
var sending atomic.Int64

type ingressBox struct{ vswitch.Ingress }

var _ vswitch.Port = (*Port)(nil)

// New creates a Port. Its delivery goroutine starts with Start (at Attach).
func New(cfg Config) *Port {
	if cfg.MTU <= 0 {
		cfg.MTU = vswitch.DefaultMTU
	}
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = DefaultQueueLen
	}
	if cfg.Kind == "" {
		cfg.Kind = "netstack"
	}
	p := &Port{
		cfg:        cfg,
		queue:      make(chan *stack.PacketBuffer, cfg.QueueLen),
		handshakes: make(chan handshake, handshakeQueueLen),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	p.ep = &endpoint{port: p, mtu: uint32(cfg.MTU), mac: tcpip.LinkAddress(cfg.MAC[:])}
	return p
}

// LinkEndpoint returns the netstack side of the port: an Ethernet link
// endpoint to pass to stack.CreateNIC.
func (p *Port) LinkEndpoint() stack.LinkEndpoint { return ethernet.New(p.ep) }

// GSOMaxSize is the largest TCP packet the netstack hands the switch with
// Offload: a 64 KiB IP packet, headers included, behind an Ethernet header.
const GSOMaxSize = 65535 - header.IPv6MinimumSize - header.TCPMinimumSize - 40

// Info implements vswitch.Port.
func (p *Port) Info() vswitch.PortInfo {
	info := vswitch.PortInfo{Name: p.cfg.Name, Kind: p.cfg.Kind, MTU: p.cfg.MTU}
	if p.cfg.Offload {
		info.Offloads = vswitch.OffloadCsum | vswitch.OffloadTSO4 | vswitch.OffloadTSO6
	}
	return info
}

// Start implements vswitch.Port: frames the netstack sends go to in from
// now on, and the goroutine delivering frames to the netstack starts.
func (p *Port) Start(in vswitch.Ingress) error {
	p.in.Store(&ingressBox{in})
	p.started.Store(true)
	go p.deliver()
	return nil
}

// Write implements vswitch.Port: f is copied into a packet buffer and
// delivered to the netstack, inline or through the queue (see the package
// comment).
func (p *Port) Write(f vswitch.Frame) error {
	if p.closed.Load() {
		return ErrClosed
	}
	if p.cfg.Intercept != nil && p.cfg.Intercept(f) {
		return nil
	}
	if p.cfg.Offload && f.Offload.Flags == 0 && !checksumsValid(f.Data) {
		// With Offload the netstack verifies no checksum itself (the
		// NIC claims RX checksum offload, as for a virtio-net device):
		// frames that claim complete checksums are checked here.
		p.badChecksums.Add(1)
		return nil
	}
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(f.Data)})
	if (f.Direct || sending.Load() == 0) && p.pending.Load() == 0 {
		return p.deliverInline(pkt)
	}
	p.pending.Add(1)
	select {
	case p.queue <- pkt:
		delivered.Add(1)
		return nil
	default:
		p.pending.Add(-1)
		pkt.DecRef()
		return ErrQueueFull
	}
}

// deliverInline hands pkt to the netstack on the caller's goroutine and
// releases it.
func (p *Port) deliverInline(pkt *stack.PacketBuffer) error {
	defer pkt.DecRef()
	p.closeMu.RLock()
	defer p.closeMu.RUnlock()
	if p.closed.Load() {
		return ErrClosed
	}
	if d := p.ep.dispatcher(); d != nil {
		d.DeliverNetworkPacket(0, pkt) // the ethernet wrapper reads the EtherType
	}
	p.inlined.Add(1)
	delivered.Add(1)
	return nil
}

// delivered counts the frames given to any netstack of the process,
// inline or queued. Each may have readied netstack goroutines (a TCP
// processor, a reader) on the writer's processor: a writer that keeps
// its processor busy afterwards (a spinning evloop) checks Delivered to
// know when to yield it to them.
var delivered atomic.Uint64

// Delivered returns how many frames the process's stackports delivered
// to their netstacks so far.
func Delivered() uint64 { return delivered.Load() }

// DeliveredSince returns a function that reports whether a frame was
// delivered to a netstack since it last ran: an evloop's Config.Yield.
// Its state is its caller's: one goroutine only.
func DeliveredSince() func() bool {
	var seen uint64
	return func() bool {
		d := delivered.Load()
		y := d != seen
		seen = d
		return y
	}
}

func (p *Port) deliver() {
	defer close(p.done)
	for {
		select {
		case <-p.stop:
			for {
				select {
				case pkt := <-p.queue:
					pkt.DecRef()
				default:
					return
				}
			}
		case pkt := <-p.queue:
			if d := p.ep.dispatcher(); d != nil {
				d.DeliverNetworkPacket(0, pkt) // the ethernet wrapper reads the EtherType
			}
			pkt.DecRef()
			p.pending.Add(-1)
		case h := <-p.handshakes:
			p.fromStackFrame(vswitch.Frame{Data: h.b[:h.n], Offload: h.offload})
		}
	}
}

// A handshake is a SYN-ACK from the netstack, copied: a SYN-ACK is at
// most 14 bytes of Ethernet, 40 of IPv6, and 60 of TCP with its options.
type handshake struct {
	n       int
	b       [maxHandshake]byte
	offload vswitch.Offload
}

const (
	maxHandshake = header.EthernetMinimumSize + header.IPv6MinimumSize + header.TCPHeaderMaximumSize
	// handshakeQueueLen bounds the SYN-ACKs waiting; when it is full, a
	// SYN-ACK goes out on the netstack's goroutine as any other frame.
	handshakeQueueLen = 64
)

// later queues f for the delivery goroutine if it is a TCP SYN-ACK and
// there is room, and reports whether it did.
func (p *Port) later(f vswitch.Frame) bool {
	if !isSynAck(f.Data) || len(f.Data) > maxHandshake || !p.started.Load() || p.closed.Load() {
		return false
	}
	h := handshake{n: len(f.Data), offload: f.Offload}
	copy(h.b[:], f.Data)
	select {
	case p.handshakes <- h:
		return true
	default:
		return false
	}
}

// isSynAck reports whether Ethernet frame b is an IPv4 or IPv6 TCP
// segment with SYN and ACK set. It reads the netstack's own frames: an
// IPv6 one carries TCP right after the fixed header.
func isSynAck(b []byte) bool {
	const eth = header.EthernetMinimumSize
	var tcp int
	switch {
	case len(b) >= eth+header.IPv4MinimumSize && b[12] == 0x08 && b[13] == 0x00:
		ip := header.IPv4(b[eth:])
		if ip.Protocol() != uint8(header.TCPProtocolNumber) {
			return false
		}
		tcp = eth + int(ip.HeaderLength())
	case len(b) >= eth+header.IPv6MinimumSize && b[12] == 0x86 && b[13] == 0xdd:
		if header.IPv6(b[eth:]).NextHeader() != uint8(header.TCPProtocolNumber) {
			return false
		}
		tcp = eth + header.IPv6MinimumSize
	default:
		return false
	}
	if len(b) < tcp+header.TCPMinimumSize {
		return false
	}
	flags := header.TCP(b[tcp:]).Flags()
	return flags&(header.TCPFlagSyn|header.TCPFlagAck) == header.TCPFlagSyn|header.TCPFlagAck
}

// Close implements vswitch.Port. It stops delivery to the netstack and
// discards queued frames; the netstack's own NIC is removed by its owner.
func (p *Port) Close() error {
	p.once.Do(func() {
		p.closeMu.Lock() // waits for inline deliveries in flight
		p.closed.Store(true)
		p.closeMu.Unlock()
		p.in.Store(nil)
		close(p.stop)
		if p.started.Load() { // a port closed before Start has no goroutine
			<-p.done
		}
	})
	return nil
}

// Send hands the frame b to the switch as if the netstack had sent it (an
// answer built outside the netstack: a translated packet, an ICMP error or
// echo reply). b stays the caller's. It reports false if the port is not
// attached.
func (p *Port) Send(b []byte) bool { return p.fromStack(b) }

// SendFrame is Send for a frame with offload metadata (a translated
// superframe keeps its segmentation and checksum offsets).
func (p *Port) SendFrame(f vswitch.Frame) bool { return p.fromStackFrame(f) }

// fromStack hands one complete frame to the switch.
func (p *Port) fromStack(b []byte) bool { return p.fromStackFrame(vswitch.Frame{Data: b}) }

// fromStackFrame hands one frame built by the netstack to the switch.
func (p *Port) fromStackFrame(f vswitch.Frame) bool {
	in := p.in.Load()
	if in == nil {
		return false
	}
	f.Direct = false // made inside a netstack, or by its owner's code
	sending.Add(1)
	in.Receive(f)
	sending.Add(-1)
	return true
}

// endpoint is the raw link endpoint under ethernet.Endpoint: it sees whole
// Ethernet frames.
type endpoint struct {
	port *Port

	mu      sync.RWMutex
	disp    stack.NetworkDispatcher
	mtu     uint32
	mac     tcpip.LinkAddress
	onClose func()
}

var (
	_ stack.LinkEndpoint = (*endpoint)(nil)
	_ stack.GSOEndpoint  = (*endpoint)(nil)
)

func (e *endpoint) dispatcher() stack.NetworkDispatcher {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.disp
}

// MTU includes the Ethernet header: ethernet.Endpoint subtracts it.
func (e *endpoint) MTU() uint32 {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.mtu + header.EthernetMinimumSize
}

func (e *endpoint) SetMTU(mtu uint32) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if mtu > header.EthernetMinimumSize {
		e.mtu = mtu - header.EthernetMinimumSize
	}
}

func (*endpoint) MaxHeaderLength() uint16 { return 0 }

func (e *endpoint) LinkAddress() tcpip.LinkAddress {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.mac
}

func (e *endpoint) SetLinkAddress(addr tcpip.LinkAddress) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.mac = addr
}

// Capabilities implements stack.LinkEndpoint. With Offload the netstack
// skips checksum verification: frames with a partial checksum (from a TAP
// with offload) cannot be verified and are vouched for by the kernel that
// sent them, as a virtio-net receiver takes them; the port verifies the
// others itself before delivering them (Port.Write).
func (e *endpoint) Capabilities() stack.LinkEndpointCapabilities {
	if e.port.cfg.Offload {
		return stack.CapabilityRXChecksumOffload
	}
	return 0
}

// GSOMaxSize implements stack.GSOEndpoint.
func (e *endpoint) GSOMaxSize() uint32 {
	if e.port.cfg.Offload {
		return GSOMaxSize
	}
	return 0
}

// SupportedGSO implements stack.GSOEndpoint: with Offload, TCP hands over
// superframes with a partial checksum, as to a host TAP.
func (e *endpoint) SupportedGSO() stack.SupportedGSO {
	if e.port.cfg.Offload {
		return stack.HostGSOSupported
	}
	return stack.GSONotSupported
}

func (e *endpoint) Attach(d stack.NetworkDispatcher) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.disp = d
}

func (e *endpoint) IsAttached() bool { return e.dispatcher() != nil }

// Wait implements stack.LinkEndpoint. Delivery stops when the Port is
// closed; the netstack does not wait for it.
func (*endpoint) Wait() {}

func (*endpoint) ARPHardwareType() header.ARPHardwareType { return header.ARPHardwareNone }

func (*endpoint) AddHeader(*stack.PacketBuffer) {}

func (*endpoint) ParseHeader(*stack.PacketBuffer) bool { return true }

func (e *endpoint) Close() {
	e.mu.Lock()
	fn := e.onClose
	e.onClose = nil
	e.mu.Unlock()
	if fn != nil {
		fn()
	}
}

func (e *endpoint) SetOnCloseAction(fn func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.onClose = fn
}

// offloadOf translates the netstack's GSO options for pkt into the
// virtio-net metadata the switch carries (as gVisor's fdbased endpoint
// writes them for a host TAP).
func offloadOf(pkt *stack.PacketBuffer) vswitch.Offload {
	g := pkt.GSOOptions
	var o vswitch.Offload
	if g.Type != stack.GSOTCPv4 && g.Type != stack.GSOTCPv6 {
		return o
	}
	if g.NeedsCsum {
		o.Flags = vswitch.OffloadNeedsCsum
		o.CsumStart = header.EthernetMinimumSize + g.L3HdrLen
		o.CsumOffset = g.CsumOffset
	}
	if pkt.Data().Size() > int(g.MSS) {
		o.GSOType = vswitch.GSOTCPv4
		if g.Type == stack.GSOTCPv6 {
			o.GSOType = vswitch.GSOTCPv6
		}
		o.GSOSize = g.MSS
		o.HdrLen = uint16(pkt.HeaderSize())
	}
	return o
}

// WritePackets hands each packet, flattened, to the switch. The view is
// released when the switch returns: the switch does not retain frames.
func (e *endpoint) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	n := 0
	for _, pkt := range pkts.AsSlice() {
		v := pkt.ToView()
		f := vswitch.Frame{Data: v.AsSlice(), Offload: offloadOf(pkt)}
		ok := e.port.later(f) || e.port.fromStackFrame(f)
		v.Release()
		if !ok {
			if n == 0 {
				return 0, &tcpip.ErrClosedForSend{}
			}
			break
		}
		n++
	}
	return n, nil
}
