package vnettest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// A Stage is one step that frames take across one direction of a Wire:
// an impairment (loss, delay, …) or code under test (a filter, a NAT, a
// packet processor of your own).
//
// Process is given one packet and passes on what should go further by
// calling emit: not at all to drop it, once (changed or not) to pass it,
// more than once to duplicate it. A stage may change p.Data in place or
// replace it, and may move p.At later to delay it; it must not keep p.Data
// after Process returns unless it emits it (emitted data belongs to the
// wire), and must copy it to emit it twice. Process is never called
// concurrently for one direction of one wire. A panic in Process drops the
// packet and fails the test, naming the stage.
type Stage interface {
	Process(c *StageContext, p Packet, emit func(Packet))
	// String names the stage in errors and logs.
	String() string
}

// Packet is one Ethernet frame inside a Wire.
type Packet struct {
	// Data is the frame, from the destination MAC to the last payload
	// byte.
	Data []byte
	// At is when the frame leaves the wire. It starts at the time it
	// entered; a stage delays the frame by moving it later.
	At time.Time
}

// StageContext is what a stage may use besides the packet.
type StageContext struct {
	// Rand is the direction's random source, seeded from the World's
	// seed and the wire's name and direction: the same seed and the same
	// frames give the same choices. Stages must draw randomness only
	// from it.
	Rand *rand.Rand
	// Now is the time the packet entered the wire.
	Now time.Time
	// Dir is the direction the stage works on.
	Dir Direction
}

// StageFunc makes a Stage of a function.
type StageFunc func(c *StageContext, p Packet, emit func(Packet))

// Process implements Stage.
func (f StageFunc) Process(c *StageContext, p Packet, emit func(Packet)) { f(c, p, emit) }

func (f StageFunc) String() string { return "StageFunc" }

var errNegative = errors.New("must not be negative")

func checkProb(name string, p float64) error {
	if !(p >= 0 && p <= 1) { // NaN fails too
		return fmt.Errorf("%s %v outside [0,1]", name, p)
	}
	return nil
}

// Delay holds every frame for d plus a uniform jitter in [-jitter,
// +jitter] (never below zero). Jitter reorders frames, as netem's does.
func Delay(d, jitter time.Duration) Stage { return delay{d, jitter} }

type delay struct{ d, jitter time.Duration }

func (s delay) String() string { return fmt.Sprintf("Delay(%v, %v)", s.d, s.jitter) }
func (s delay) validate() error {
	if s.d < 0 || s.jitter < 0 {
		return fmt.Errorf("delay and jitter %w", errNegative)
	}
	return nil
}
func (s delay) Process(c *StageContext, p Packet, emit func(Packet)) {
	d := s.d
	if s.jitter > 0 {
		d += time.Duration(c.Rand.Int64N(2*int64(s.jitter)+1)) - s.jitter
	}
	p.At = p.At.Add(max(d, 0))
	emit(p)
}

// Loss drops each frame with probability rate, independently.
func Loss(rate float64) Stage { return loss{rate} }

type loss struct{ rate float64 }

func (s loss) String() string  { return fmt.Sprintf("Loss(%v)", s.rate) }
func (s loss) validate() error { return checkProb("loss rate", s.rate) }
func (s loss) Process(c *StageContext, p Packet, emit func(Packet)) {
	if s.rate > 0 && c.Rand.Float64() < s.rate {
		return
	}
	emit(p)
}

// BurstLoss drops frames in bursts, by the Gilbert model: in the good state
// every frame passes and the next one enters the bad state with
// probability enter; in the bad state every frame is lost and the next one
// returns to the good state with probability leave. The mean burst is
// 1/leave frames; the mean loss enter/(enter+leave). Each BurstLoss value
// has its own state: give each direction its own.
func BurstLoss(enter, leave float64) Stage { return &burstLoss{enter: enter, leave: leave} }

type burstLoss struct {
	enter, leave float64
	bad          bool
}

func (s *burstLoss) String() string { return fmt.Sprintf("BurstLoss(%v, %v)", s.enter, s.leave) }
func (s *burstLoss) validate() error {
	return errors.Join(checkProb("enter probability", s.enter), checkProb("leave probability", s.leave))
}
func (s *burstLoss) Process(c *StageContext, p Packet, emit func(Packet)) {
	lost := s.bad
	if s.bad {
		s.bad = c.Rand.Float64() >= s.leave
	} else {
		s.bad = c.Rand.Float64() < s.enter
	}
	if !lost {
		emit(p)
	}
}

// Duplicate sends each frame twice with probability rate.
func Duplicate(rate float64) Stage { return duplicate{rate} }

type duplicate struct{ rate float64 }

func (s duplicate) String() string  { return fmt.Sprintf("Duplicate(%v)", s.rate) }
func (s duplicate) validate() error { return checkProb("duplication rate", s.rate) }
func (s duplicate) Process(c *StageContext, p Packet, emit func(Packet)) {
	if s.rate > 0 && c.Rand.Float64() < s.rate {
		emit(Packet{Data: append([]byte(nil), p.Data...), At: p.At})
	}
	emit(p)
}

// Reorder holds each frame back by hold with probability rate, so the
// frames behind it overtake it.
func Reorder(rate float64, hold time.Duration) Stage { return reorder{rate, hold} }

type reorder struct {
	rate float64
	hold time.Duration
}

func (s reorder) String() string { return fmt.Sprintf("Reorder(%v, %v)", s.rate, s.hold) }
func (s reorder) validate() error {
	if s.hold < 0 {
		return fmt.Errorf("hold %w", errNegative)
	}
	return checkProb("reorder rate", s.rate)
}
func (s reorder) Process(c *StageContext, p Packet, emit func(Packet)) {
	if s.rate > 0 && c.Rand.Float64() < s.rate {
		p.At = p.At.Add(s.hold)
	}
	emit(p)
}

// Corrupt flips one random bit past the Ethernet header of each frame with
// probability rate. Receivers drop such frames on their checksums, as they
// would on a real link whose FCS check failed to catch the error.
func Corrupt(rate float64) Stage { return corrupt{rate} }

type corrupt struct{ rate float64 }

func (s corrupt) String() string  { return fmt.Sprintf("Corrupt(%v)", s.rate) }
func (s corrupt) validate() error { return checkProb("corruption rate", s.rate) }
func (s corrupt) Process(c *StageContext, p Packet, emit func(Packet)) {
	if n := len(p.Data) - ethHeaderLen; n > 0 && s.rate > 0 && c.Rand.Float64() < s.rate {
		bit := c.Rand.IntN(n * 8)
		p.Data[ethHeaderLen+bit/8] ^= 1 << (bit % 8)
	}
	emit(p)
}

const ethHeaderLen = 14

// Truncate cuts each frame to at most keep bytes with probability rate.
func Truncate(rate float64, keep int) Stage { return truncate{rate, keep} }

type truncate struct {
	rate float64
	keep int
}

func (s truncate) String() string { return fmt.Sprintf("Truncate(%v, %d)", s.rate, s.keep) }
func (s truncate) validate() error {
	if s.keep < 0 {
		return fmt.Errorf("kept length %w", errNegative)
	}
	return checkProb("truncation rate", s.rate)
}
func (s truncate) Process(c *StageContext, p Packet, emit func(Packet)) {
	if len(p.Data) > s.keep && s.rate > 0 && c.Rand.Float64() < s.rate {
		p.Data = p.Data[:s.keep]
	}
	emit(p)
}

// MTUBlackHole silently drops every IPv4 or IPv6 packet longer than mtu
// bytes: the path MTU is smaller than the hosts believe and no ICMP "too
// big" comes back, the case that makes TCP connections hang after the
// handshake (RFC 2923, section 2.1).
func MTUBlackHole(mtu int) Stage { return mtuBlackHole{mtu} }

type mtuBlackHole struct{ mtu int }

func (s mtuBlackHole) String() string { return fmt.Sprintf("MTUBlackHole(%d)", s.mtu) }
func (s mtuBlackHole) validate() error {
	if s.mtu < 68 {
		return fmt.Errorf("mtu %d below 68, the least IPv4 allows", s.mtu)
	}
	return nil
}
func (s mtuBlackHole) Process(c *StageContext, p Packet, emit func(Packet)) {
	if len(p.Data) >= ethHeaderLen {
		et := binary.BigEndian.Uint16(p.Data[12:])
		if (et == 0x0800 || et == 0x86dd) && len(p.Data)-ethHeaderLen > s.mtu {
			return
		}
	}
	emit(p)
}

// RateLimit sends frames no faster than bitsPerSecond, queueing them like a
// link's transmit queue; a frame that would wait longer than maxQueue is
// dropped (tail drop). Each RateLimit value has its own queue: give each
// direction its own.
func RateLimit(bitsPerSecond int64, maxQueue time.Duration) Stage {
	return &rateLimit{bps: bitsPerSecond, maxQueue: maxQueue}
}

type rateLimit struct {
	bps      int64
	maxQueue time.Duration
	free     time.Time // when the link is next idle
}

func (s *rateLimit) String() string { return fmt.Sprintf("RateLimit(%d, %v)", s.bps, s.maxQueue) }
func (s *rateLimit) validate() error {
	if s.bps <= 0 {
		return fmt.Errorf("rate %d bit/s: want more than 0", s.bps)
	}
	if s.maxQueue < 0 {
		return fmt.Errorf("queue %w", errNegative)
	}
	return nil
}
func (s *rateLimit) Process(c *StageContext, p Packet, emit func(Packet)) {
	start := p.At
	if s.free.After(start) {
		start = s.free
	}
	if start.Sub(p.At) > s.maxQueue {
		return
	}
	tx := time.Duration(int64(len(p.Data)) * 8 * int64(time.Second) / s.bps)
	s.free = start.Add(tx)
	p.At = s.free
	emit(p)
}
