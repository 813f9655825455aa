package vnettest

import (
	"container/heap"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"

	vswitch "github.com/switchyard-net/switchyard/switch"
)

// A Wire is the cable between a host and its network. Frames cross it in
// two directions, each through its own list of stages (none at first: the
// wire is then a plain cable that costs nothing):
//
//	host netstack ── Up stages ──► scheduler ──► switch
//	host netstack ◄── scheduler ◄── Down stages ── switch
//
// A frame entering a direction is copied once, run through the stages in
// order (each may drop it, change it, duplicate it or move its departure
// time later) and leaves when its time comes: at once if it is due and
// nothing waits before it, else from the direction's one scheduler
// goroutine, in departure order. Stages can be changed while frames flow.
type Wire struct {
	name string
	up   *direction
	down *direction
	cap  *capture

	upCapture func(b []byte) // records what the host sent; nil if not captured
}

// Direction names one way across a Wire.
type Direction int

const (
	// Up is from the host to its network.
	Up Direction = iota
	// Down is from the network to the host.
	Down
)

func (d Direction) String() string {
	if d == Up {
		return "up"
	}
	return "down"
}

// Name returns the wire's name: the host's name.
func (w *Wire) Name() string { return w.name }

// SetStages replaces the stages of one direction. Frames already past the
// stages keep their departure times. A stage that fails its own checks (a
// loss rate outside [0,1], a negative delay) is refused with an error that
// names it, and the old stages stay.
func (w *Wire) SetStages(dir Direction, stages ...Stage) error {
	for _, s := range stages {
		if s == nil {
			return fmt.Errorf("vnettest: wire %s %s: nil stage", w.name, dir)
		}
		if v, ok := s.(interface{ validate() error }); ok {
			if err := v.validate(); err != nil {
				return fmt.Errorf("vnettest: wire %s %s: stage %s: %w", w.name, dir, s, err)
			}
		}
	}
	d := w.up
	if dir == Down {
		d = w.down
	}
	if len(stages) == 0 {
		d.stages.Store(nil)
		return nil
	}
	list := append([]Stage(nil), stages...)
	d.stages.Store(&list)
	return nil
}

// Impair sets the same stages on both directions (each direction gets the
// same Stage values, so a stateful stage such as RateLimit or BurstLoss
// should be given to SetStages per direction instead if the directions
// must not share its state).
func (w *Wire) Impair(stages ...Stage) error {
	if err := w.SetStages(Up, stages...); err != nil {
		return err
	}
	return w.SetStages(Down, stages...)
}

// Cut partitions the host from its network: every frame that enters the
// wire either way is dropped until Heal (frames already past the stages,
// waiting for their time, still leave).
func (w *Wire) Cut() { w.up.cut.Store(true); w.down.cut.Store(true) }

// Heal undoes Cut.
func (w *Wire) Heal() { w.up.cut.Store(false); w.down.cut.Store(false) }

// WireStats counts the frames of one direction of a Wire.
//
// Once no frame waits in the direction, In + Added = Out + Dropped.
type WireStats struct {
	In      uint64 // frames that entered the direction
	Added   uint64 // frames beyond the first that the stages made of one (duplicates)
	Out     uint64 // frames that left it (duplicates included)
	Dropped uint64 // frames of which the stages made nothing, or that Cut stopped
	Waiting uint64 // frames past the stages, waiting for their time
}

// Stats returns the counters of one direction.
func (w *Wire) Stats(dir Direction) WireStats {
	d := w.up
	if dir == Down {
		d = w.down
	}
	// Read in the order the counters grow along the path, so that a
	// reading taken while frames flow never shows more out than in.
	out, dropped := d.out.Load(), d.dropped.Load()
	waiting := d.queued.Load()
	added, in := d.added.Load(), d.in.Load()
	return WireStats{In: in, Added: added, Out: out, Dropped: dropped, Waiting: uint64(max(waiting, 0))}
}

// newWire makes a wire of the World's, recorded for the pcaps.
func (w *World) newWire(name string) *Wire {
	wire := &Wire{
		name: name,
		up:   newDirection(name, w.seed, Up),
		down: newDirection(name, w.seed, Down),
		cap:  newCapture(w.clock().Now),
	}
	wire.upCapture, wire.down.exitCapture = wire.cap.record, wire.cap.record
	for _, d := range []*direction{wire.up, wire.down} {
		d.ctx.Dir = Up
		if d == wire.down {
			d.ctx.Dir = Down
		}
		d.clk, d.virtual, d.activity = w.clock(), w.vclock != nil, &w.activity
		d.onPanic = func(s Stage, v any) {
			w.errorf("vnettest: wire %s %s: stage %s panicked: %v (frame dropped)", name, d.ctx.Dir, s, v)
		}
	}
	w.mu.Lock()
	w.wires = append(w.wires, wire)
	w.mu.Unlock()
	return wire
}

// direction is one way across a wire.
type direction struct {
	name    string
	next    func(b []byte) // hands a frame on; set before the first frame
	onPanic func(stage Stage, v any)
	// exitCapture, if set, records each frame leaving the direction (the
	// Down direction's: what the host received).
	exitCapture func(b []byte)

	clk      clock
	virtual  bool           // clk is virtual: a timer of it, not a goroutine, releases frames
	activity *atomic.Uint64 // the World's count of moving frames
	vt       tcpip.Timer    // under virtual time, the release timer; guarded by mu

	stages atomic.Pointer[[]Stage]
	cut    atomic.Bool
	queued atomic.Int64 // frames waiting in pending

	in, added, out, dropped atomic.Uint64

	mu      sync.Mutex // guards rnd, pending, seq, stage state and ctx
	rnd     *rand.Rand
	pending pendingHeap
	seq     uint64
	ctx     StageContext

	wake chan struct{}
	stop chan struct{}
	done chan struct{}
}

func newDirection(name string, seed int64, dir Direction) *direction {
	h := fnv.New64a()
	h.Write([]byte(name))
	d := &direction{
		name: name,
		rnd:  rand.New(rand.NewPCG(uint64(seed), h.Sum64()^uint64(dir))),
		wake: make(chan struct{}, 1),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	return d
}

// send takes one frame into the direction. b stays the caller's.
func (d *direction) send(b []byte) {
	d.activity.Add(1)
	d.in.Add(1)
	if d.cut.Load() {
		d.dropped.Add(1)
		return
	}
	stages := d.stages.Load()
	if stages == nil && d.queued.Load() == 0 {
		d.emit(b)
		return
	}
	own := append([]byte(nil), b...)
	now := d.clk.Now()
	var ready [][]byte
	d.mu.Lock()
	pkts := []Packet{{Data: own, At: now}}
	if stages != nil {
		pkts = d.run(*stages, pkts, now)
	}
	if len(pkts) == 0 {
		d.dropped.Add(1)
	} else {
		d.added.Add(uint64(len(pkts) - 1))
	}
	for _, p := range pkts {
		if !p.At.After(now) && d.pending.Len() == 0 {
			ready = append(ready, p.Data)
			continue
		}
		d.seq++
		heap.Push(&d.pending, pendingFrame{at: p.At, seq: d.seq, data: p.Data})
		d.queued.Add(1)
	}
	queued := d.pending.Len() > 0
	if queued && d.virtual {
		d.armLocked(now)
	}
	d.mu.Unlock()
	for _, b := range ready {
		d.emit(b)
	}
	if queued && !d.virtual {
		select {
		case d.wake <- struct{}{}:
		default:
		}
	}
}

// armLocked sets the virtual release timer for the first waiting frame;
// d.mu is held.
func (d *direction) armLocked(now time.Time) {
	wait := d.pending[0].at.Sub(now)
	if d.vt == nil {
		d.vt = d.clk.AfterFunc(wait, d.release)
		return
	}
	d.vt.Stop()
	d.vt.Reset(wait)
}

// release sends the frames whose time has come, under virtual time: it is
// the release timer's function.
func (d *direction) release() {
	var due [][]byte
	d.mu.Lock()
	now := d.clk.Now()
	for d.pending.Len() > 0 && !d.pending[0].at.After(now) {
		due = append(due, heap.Pop(&d.pending).(pendingFrame).data)
		d.queued.Add(-1)
	}
	if d.pending.Len() > 0 {
		d.armLocked(now)
	}
	d.mu.Unlock()
	for _, b := range due {
		d.emit(b)
	}
}

// stopVirtual stops the release timer.
func (d *direction) stopVirtual() {
	d.mu.Lock()
	if d.vt != nil {
		d.vt.Stop()
	}
	d.mu.Unlock()
}

func (d *direction) emit(b []byte) {
	d.activity.Add(1)
	if d.exitCapture != nil {
		d.exitCapture(b)
	}
	d.out.Add(1)
	d.next(b)
}

// run passes pkts through stages; d.mu is held.
func (d *direction) run(stages []Stage, pkts []Packet, now time.Time) []Packet {
	d.ctx.Rand, d.ctx.Now = d.rnd, now
	for _, s := range stages {
		var out []Packet
		emit := func(p Packet) { out = append(out, p) }
		for _, p := range pkts {
			d.process(s, p, emit)
		}
		pkts = out
		if len(pkts) == 0 {
			break
		}
	}
	return pkts
}

// process runs one stage on one packet; a panic in the stage drops the
// packet and is reported.
func (d *direction) process(s Stage, p Packet, emit func(Packet)) {
	defer func() {
		if v := recover(); v != nil {
			d.onPanic(s, v)
		}
	}()
	s.Process(&d.ctx, p, emit)
}

// schedule releases queued frames when their time comes. It is the
// direction's one goroutine.
func (d *direction) schedule() {
	defer close(d.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		var due [][]byte
		var wait time.Duration = -1
		d.mu.Lock()
		now := time.Now()
		for d.pending.Len() > 0 {
			if at := d.pending[0].at; at.After(now) {
				wait = at.Sub(now)
				break
			}
			due = append(due, heap.Pop(&d.pending).(pendingFrame).data)
			d.queued.Add(-1)
		}
		d.mu.Unlock()
		for _, b := range due {
			d.emit(b)
		}
		if wait >= 0 {
			timer.Reset(wait)
		} else {
			timer.Stop()
		}
		select {
		case <-d.stop:
			return
		case <-d.wake:
		case <-timer.C:
		}
	}
}

type pendingFrame struct {
	at   time.Time
	seq  uint64
	data []byte
}

// pendingHeap orders frames by departure time, then by arrival.
type pendingHeap []pendingFrame

func (h pendingHeap) Len() int { return len(h) }
func (h pendingHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}
func (h pendingHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *pendingHeap) Push(x any)   { *h = append(*h, x.(pendingFrame)) }
func (h *pendingHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// wirePort sits between a host's port and the switch and carries frames
// through the wire's two directions.
type wirePort struct {
	w       *Wire
	inner   vswitch.Port
	once    sync.Once
	started bool // set by Start, read by Close (the switch orders them)
}

var _ vswitch.Port = (*wirePort)(nil)

func (p *wirePort) Info() vswitch.PortInfo { return p.inner.Info() }

func (p *wirePort) Start(in vswitch.Ingress) error {
	p.w.up.next = func(b []byte) { in.Receive(vswitch.Frame{Data: b}) }
	p.w.down.next = func(b []byte) { _ = p.inner.Write(vswitch.Frame{Data: b}) }
	p.started = true
	for _, d := range []*direction{p.w.up, p.w.down} {
		if d.virtual {
			close(d.done) // the virtual clock's timer releases frames
		} else {
			go d.schedule()
		}
	}
	return p.inner.Start(upIngress{d: p.w.up, capture: p.w.upCapture})
}

// Write implements vswitch.Port. The frame goes to the host through the
// Down stages; a drop there is the wire's, not a write error.
func (p *wirePort) Write(f vswitch.Frame) error {
	p.w.down.send(f.Data)
	return nil
}

func (p *wirePort) Close() error {
	err := p.inner.Close()
	p.once.Do(func() {
		if !p.started { // closed by a failed Attach
			return
		}
		for _, d := range []*direction{p.w.up, p.w.down} {
			close(d.stop)
			<-d.done
			if d.virtual {
				d.stopVirtual()
			}
		}
	})
	return err
}

// upIngress takes the frames the host's netstack sends; capture, if set,
// records them as sent.
type upIngress struct {
	d       *direction
	capture func(b []byte)
}

func (u upIngress) Receive(f vswitch.Frame) {
	if u.capture != nil {
		u.capture(f.Data)
	}
	u.d.send(f.Data)
}

// Pcap returns what the wire's host sent and received so far as a pcap
// file (the one a failed test saves), with the World's clock's
// timestamps: under VirtualTime, two runs with the same seed give the same
// bytes.
func (w *Wire) Pcap() []byte {
	b, _ := w.cap.bytes()
	return b
}
