package vswitch

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Defaults for Config fields left zero.
const (
	DefaultAging   = 300 * time.Second
	DefaultMaxMACs = 16384
	DefaultMTU     = 1500
)

// ErrClosed is returned by Attach on a closed switch.
var ErrClosed = errors.New("switch closed")

// Config configures a Switch. The zero value is usable.
type Config struct {
	// Name identifies the switch in logs (usually the network name).
	Name string
	// Logger receives control-plane events (attach, detach). Nothing is
	// logged per frame. If nil, nothing is logged.
	Logger *zap.Logger
	// Aging is how long a learned MAC stays without traffic from it.
	// If zero, DefaultAging (300 s, as the Linux bridge).
	Aging time.Duration
	// MaxMACs caps the learned entries of the forwarding table, so a
	// flood of random MACs cannot grow memory. Frames from a new source
	// MAC while the table is full are forwarded without being learned
	// (Stats.FDBFull), so they cannot blackhole newcomers either. If zero,
	// DefaultMaxMACs.
	MaxMACs int
	// Now is the clock. If nil, time.Now. The switch reads it about once a
	// second, not per frame.
	Now func() time.Time
	// Router, if set, is the network's router (its gateway): the switch
	// answers a unicast frame too big for its egress port with an ICMP
	// error from it (see SetRouter).
	Router *Router
}

// Switch is a learning Ethernet switch. Its methods are safe for concurrent
// use.
type Switch struct {
	log        *zap.Logger
	name       string
	clock      func() time.Time
	tick       time.Duration
	sweepEvery int64

	fdb *fdb
	// now is the coarse clock, in nanoseconds, read on the forwarding
	// path instead of time.Now.
	now atomic.Int64

	mu     sync.Mutex // serialises Attach, Detach and Close
	closed bool
	// links is the current set of attached links, replaced (never
	// modified) under mu, read without locks by flood.
	links atomic.Pointer[[]*Link]

	segmented atomic.Uint64
	pmtu      pmtuState

	stop chan struct{}
	wg   sync.WaitGroup
}

// New creates a switch and starts its janitor goroutine. Close stops it.
func New(cfg Config) *Switch {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Aging <= 0 {
		cfg.Aging = DefaultAging
	}
	if cfg.MaxMACs <= 0 {
		cfg.MaxMACs = DefaultMaxMACs
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Switch{
		log:   cfg.Logger.Named("switch").With(zap.String("switch", cfg.Name)),
		name:  cfg.Name,
		clock: cfg.Now,
		tick:  time.Second,
		fdb:   newFDB(cfg.MaxMACs, int64(cfg.Aging)),
		stop:  make(chan struct{}),
	}
	// Sweep aged entries a few times per aging period, at most every 10 s.
	s.sweepEvery = min(int64(cfg.Aging)/4, int64(10*time.Second))
	s.now.Store(s.clock().UnixNano())
	s.pmtu.router.Store(cfg.Router)
	empty := []*Link{}
	s.links.Store(&empty)
	s.wg.Add(1)
	go s.janitor()
	return s
}

// Name returns the name given in Config.
func (s *Switch) Name() string { return s.name }

// janitor refreshes the coarse clock, publishes newly learned MACs and
// sweeps aged ones.
func (s *Switch) janitor() {
	defer s.wg.Done()
	t := time.NewTicker(s.tick)
	defer t.Stop()
	lastSweep := s.now.Load()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			now := s.refreshClock()
			s.fdb.publishPending()
			if now-lastSweep >= s.sweepEvery {
				s.fdb.sweep(now)
				lastSweep = now
			}
		}
	}
}

func (s *Switch) refreshClock() int64 {
	now := s.clock().UnixNano()
	s.now.Store(now)
	return now
}

// AttachOptions are per-port policies.
type AttachOptions struct {
	// Isolated ports cannot exchange frames with other isolated ports,
	// only with non-isolated ones (the gateway, tunnels). This is
	// Docker's --icc=false, and the Linux bridge's "isolated" port flag.
	Isolated bool
	// LockMAC, if non-zero, is the only source MAC accepted from the
	// port; frames from any other are dropped (DropSpoofed).
	LockMAC MAC
	// DenyMAC, if non-zero, is a source MAC refused from the port
	// (DropSpoofed). A tunnel to other hosts denies the network's
	// gateway MAC: every host runs a gateway with the same address and
	// MAC (an anycast gateway), and a remote one's frames must not move
	// the local gateway's entry to the tunnel.
	DenyMAC MAC
	// Binding, if set, is the port's security binding (see Binding and
	// Link.SetBinding, which changes it later).
	Binding *Binding
	// MaxMACs caps how many learned MACs the port may have in the
	// forwarding table; frames from more are dropped (DropLearnLimit).
	// Zero means DefaultPortMACs for a port attached with a Binding and no
	// cap for others (uplinks, tunnels, the gateway); negative, no cap.
	MaxMACs int
	// StaticMAC, if non-zero, is a MAC the port owns from the start: a
	// static forwarding entry (never aged, never moved by learning) made
	// at attach, so that frames to it never flood to other ports, even
	// before the port has sent anything. The gateway's MAC is one.
	StaticMAC MAC
}

// Attach connects p to the switch and starts it. The switch owns p from
// then on: Detach and Close close it. If p.Start fails, p is closed and the
// error returned.
func (s *Switch) Attach(p Port, opts AttachOptions) (*Link, error) {
	info := p.Info()
	if info.MTU <= 0 {
		info.MTU = DefaultMTU
	}
	l := &Link{
		sw:       s,
		port:     p,
		info:     info,
		opts:     opts,
		maxFrame: info.MTU + EthHeaderLen + vlanTagLen,
	}
	switch {
	case opts.MaxMACs > 0:
		l.maxMACs = int64(opts.MaxMACs)
	case opts.MaxMACs == 0 && opts.Binding != nil:
		l.maxMACs = DefaultPortMACs
	}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = p.Close()
		return nil, fmt.Errorf("attach port %s: %w", info.Name, ErrClosed)
	}
	old := *s.links.Load()
	for _, o := range old {
		if o.info.Name == info.Name {
			s.mu.Unlock()
			_ = p.Close()
			return nil, fmt.Errorf("attach port %s: a port of that name is already attached", info.Name)
		}
	}
	next := make([]*Link, len(old), len(old)+1)
	copy(next, old)
	next = append(next, l)
	s.links.Store(&next)
	s.mu.Unlock()

	if opts.Binding != nil {
		if err := l.SetBinding(opts.Binding); err != nil {
			s.Detach(l)
			return nil, fmt.Errorf("attach port %s: %w", info.Name, err)
		}
	}
	if !opts.StaticMAC.IsZero() {
		l.bindMu.Lock()
		err := s.fdb.pin(opts.StaticMAC, l, s.now.Load())
		l.bindMu.Unlock()
		if err != nil {
			s.Detach(l)
			return nil, fmt.Errorf("attach port %s: %w", info.Name, err)
		}
	}
	if err := p.Start(l); err != nil {
		s.Detach(l)
		return nil, fmt.Errorf("start port %s: %w", info.Name, err)
	}
	s.log.Debug("port attached", zap.String("port", info.Name), zap.String("kind", info.Kind),
		zap.Int("mtu", info.MTU), zap.Bool("isolated", opts.Isolated))
	return l, nil
}

// Detach disconnects l, forgets the MACs learned on it and closes its
// port. Detaching twice is harmless.
func (s *Switch) Detach(l *Link) {
	s.mu.Lock()
	if l.detached.Swap(true) {
		s.mu.Unlock()
		return
	}
	old := *s.links.Load()
	next := make([]*Link, 0, len(old))
	for _, o := range old {
		if o != l {
			next = append(next, o)
		}
	}
	s.links.Store(&next)
	s.mu.Unlock()

	// Under bindMu, so that a SetBinding in flight cannot pin l's MAC
	// after the flush.
	l.bindMu.Lock()
	s.fdb.flush(l)
	l.bindMu.Unlock()
	if err := l.port.Close(); err != nil {
		s.log.Warn("closing port", zap.String("port", l.info.Name), zap.Error(err))
	}
	s.log.Debug("port detached", zap.String("port", l.info.Name))
}

// Close detaches every port and stops the janitor.
func (s *Switch) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	links := *s.links.Load()
	s.mu.Unlock()
	for _, l := range links {
		s.Detach(l)
	}
	close(s.stop)
	s.wg.Wait()
	return nil
}

// Links returns the attached links.
func (s *Switch) Links() []*Link {
	return append([]*Link(nil), *s.links.Load()...)
}

// Stats returns a snapshot of the counters of every port and of the table.
func (s *Switch) Stats() Stats {
	links := *s.links.Load()
	st := Stats{
		Ports:       make([]PortStats, 0, len(links)),
		FDBEntries:  s.fdb.len(),
		FDBMoves:    s.fdb.moves.Load(),
		FDBFull:     s.fdb.full.Load(),
		Segmented:   s.segmented.Load(),
		ICMPSent:    s.pmtu.sent.Load(),
		ICMPLimited: s.pmtu.limited.Load(),
	}
	for _, l := range links {
		st.Ports = append(st.Ports, l.Stats())
	}
	return st
}

// FDB returns the live (not aged out) entries of the forwarding table.
func (s *Switch) FDB() []FDBEntry { return s.fdb.entries(s.now.Load()) }

// flood sends f out of every link but in, honouring isolation.
func (s *Switch) flood(in *Link, f Frame) {
	links := *s.links.Load()
	if f.Offload.NeedsCsum() && !f.Offload.IsGSO() {
		// Complete the checksum once, before any port sees the frame,
		// if one of them cannot take a partial checksum: completing it
		// in place while others still read it as partial would corrupt
		// theirs.
		for _, out := range links {
			if out != in && out.info.Offloads&OffloadCsum == 0 {
				if !completeChecksum(&f) {
					in.rx.drops[DropOffload].Add(1)
					return
				}
				break
			}
		}
	}
	for _, out := range links {
		if out == in || out.detached.Load() {
			continue
		}
		if in.opts.Isolated && out.opts.Isolated {
			continue
		}
		out.send(f)
	}
}
