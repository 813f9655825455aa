package proxy

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Defaults for the zero fields of Config.
const (
	DefaultDialTimeout = 10 * time.Second
	DefaultUDPTimeout  = 90 * time.Second // Docker's UDP conntrack timeout
	DefaultMaxUDPFlows = 4096
)

// Linux's default ip_local_port_range, used when the file cannot be read.
const fallbackEphemeralStart, fallbackEphemeralEnd = 32768, 60999

// Config configures a Manager. The zero Config is valid: every zero field
// takes its default.
type Config struct {
	// Logger receives one line per publish and unpublish, and warnings
	// about refused connections and failed accepts at most once per
	// listener per WarnInterval; nothing is logged per connection or
	// datagram (except at debug level: failed dials). If nil, nothing is
	// logged.
	Logger *zap.Logger

	// DialTimeout bounds the dial to the container for each accepted
	// connection and each new UDP flow. If not positive, DefaultDialTimeout.
	DialTimeout time.Duration

	// UDPTimeout is how long a UDP flow may stay idle (no datagram either
	// way) before it is closed. If not positive, DefaultUDPTimeout (90s, Docker's).
	UDPTimeout time.Duration

	// MaxUDPFlows caps the flows of each UDP listener; a new client beyond
	// it evicts the least recently active flow. If not positive,
	// DefaultMaxUDPFlows.
	MaxUDPFlows int

	// EphemeralRange is where host ports of mappings without one (-p 80,
	// -P) are chosen. If zero (or reversed), the kernel's
	// ip_local_port_range is read once, by NewManager or by a zero
	// Manager's first use (32768-60999 if it cannot be read).
	EphemeralRange PortRange

	// MaxConns caps the TCP connections (from accept to close) and UDP
	// flows of every listener together; a connection beyond it is reset at
	// once and a new UDP client's datagram dropped, both counted. If zero,
	// derived from the open-file limit by DefaultConnLimits, read by
	// NewManager (or a zero Manager's first use); if negative, no limit.
	MaxConns int

	// MaxConnsPerPort caps the TCP connections of each published port (of
	// its listeners together: 0.0.0.0 and [::]) and the flow table of each
	// UDP listener, below MaxUDPFlows. If zero, derived as MaxConns is; if
	// negative, no limit.
	MaxConnsPerPort int

	// WarnInterval is the shortest time between two warnings about one
	// listener's refused connections (or failed accepts), each giving the
	// count since the last. If not positive, DefaultWarnInterval.
	WarnInterval time.Duration

	// NetnsPoolIdle is how long the sockets the Manager's NetnsDialers
	// made ahead in a namespace are kept without a dial taking one (a
	// pooled socket keeps its namespace alive). If not positive,
	// DefaultNetnsPoolIdle.
	NetnsPoolIdle time.Duration
}

// Options are per-Publish settings. The zero Options takes the Manager's
// Config for everything.
type Options struct {
	// DialTimeout, if positive, replaces Config.DialTimeout for this mapping.
	DialTimeout time.Duration
	// UDPTimeout, if positive, replaces Config.UDPTimeout for this mapping.
	UDPTimeout time.Duration
	// MaxUDPFlows, if positive, replaces Config.MaxUDPFlows for this mapping.
	MaxUDPFlows int
	// MaxConns, if not zero, replaces Config.MaxConnsPerPort for this
	// mapping (negative: no limit of its own; the Manager's still holds).
	MaxConns int
	// Target6, if valid, is a dual-stack container's IPv6 address: the
	// listeners on IPv6 host addresses (the [::] half of a wildcard
	// included) relay to it instead of Publish's target, so that IPv6
	// clients reach the container over IPv6 (and may keep their own
	// address). IPv4 listeners relay to the target.
	Target6 netip.Addr
}

// Published is one host listener of a published port: the source of one
// line of `docker port`. A mapping without a host address is published on
// two listeners, 0.0.0.0 and [::] (IPv6-only), and so gives two Published
// with the same HostPort, as Docker prints two lines for it.
type Published struct {
	Owner         string
	Proto         Proto
	HostIP        netip.Addr // the address bound: 0.0.0.0, ::, or the mapping's HostIP
	HostPort      uint16     // the port bound, chosen if the mapping had none or a range
	ContainerPort uint16
	Target        netip.Addr // the container address connections are relayed to

	// Spec is the mapping as it was given to Publish. Unpublish(Owner,
	// Spec) removes this listener and its siblings.
	Spec Mapping
}

// HostAddr returns the address and port the listener is bound to.
func (p Published) HostAddr() netip.AddrPort { return netip.AddrPortFrom(p.HostIP, p.HostPort) }

// TargetAddr returns the container address and port the listener relays to.
func (p Published) TargetAddr() netip.AddrPort {
	return netip.AddrPortFrom(p.Target, p.ContainerPort)
}

// String returns the `docker port` line of p, like "80/tcp -> 0.0.0.0:8080".
func (p Published) String() string {
	return FormatPortLine(p.ContainerPort, p.Proto, p.HostIP, p.HostPort)
}

func comparePublished(a, b Published) int {
	return cmp.Or(
		strings.Compare(a.Owner, b.Owner),
		cmp.Compare(a.ContainerPort, b.ContainerPort),
		cmp.Compare(a.Proto, b.Proto),
		cmp.Compare(a.HostPort, b.HostPort),
		a.HostIP.Compare(b.HostIP),
	)
}

// Manager owns every published port of a daemon: host listeners, the
// relays behind them and the UDP janitor. Ports can be published and
// unpublished at any time; one binding's changes never disturb another's
// traffic. All methods are safe for concurrent use.
//
// The zero Manager is ready to use, with the zero Config.
type Manager struct {
	cfg         Config
	log         *zap.Logger
	ephemeral   PortRange
	epoch       time.Time
	unprivStart func() (uint16, error)
	netns       netnsPools // NetnsDialer's sockets; has its own lock
	datagrams   sync.Pool  // UDP flows' reply buffers (newDatagramBuf)
	conns       connLimit  // every listener's connections and flows (Config.MaxConns)

	// mu guards everything below. It is held while binding sockets (a
	// few syscalls) so that concurrent Publish calls cannot pick the same
	// port; it is never held while waiting for goroutines to end, and the
	// relays never take it. Lock order: Manager.mu, then a binding's mu.
	mu       sync.Mutex
	ready    bool
	closed   bool
	entries  []*entry                 // in publish order
	bound    map[portKey][]netip.Addr // host addresses bound, per protocol and port
	cursor   [2]uint16                // per Proto: next offset into the ephemeral range
	draining map[binding]struct{}     // stopped, goroutines not yet all gone
	udp      map[*udpBinding]struct{} // what the janitor scans
	retired  struct {
		tcp TCPStats
		udp UDPStats
	}
	janitorOn bool
	kick      chan struct{} // wakes the janitor when UDP bindings change
	done      chan struct{} // closed by Close
	closeDone chan struct{} // closed when Close has finished
	wg        sync.WaitGroup
}

// entry is what one successful Publish bound.
type entry struct {
	owner    string
	spec     Mapping
	port     uint16
	bindings []binding
}

// matches reports whether mp names e: either the mapping that was given to
// Publish, or the same mapping with the host port that was actually bound.
func (e *entry) matches(mp Mapping) bool {
	if e.spec == mp {
		return true
	}
	return mp.HostPort.Len() == 1 && mp.HostPort.Start == e.port && mp.HostIP == e.spec.HostIP &&
		mp.ContainerPort == e.spec.ContainerPort && mp.Proto == e.spec.Proto
}

type portKey struct {
	proto Proto
	port  uint16
}

// NewManager returns a Manager configured by cfg.
func NewManager(cfg Config) *Manager {
	m := &Manager{cfg: cfg}
	m.mu.Lock()
	m.initLocked()
	m.mu.Unlock()
	return m
}

func (m *Manager) initLocked() {
	if m.ready {
		return
	}
	m.ready = true
	c := &m.cfg
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	m.log = c.Logger.Named("proxy")
	c.DialTimeout = positiveOr(c.DialTimeout, DefaultDialTimeout)
	c.UDPTimeout = positiveOr(c.UDPTimeout, DefaultUDPTimeout)
	c.MaxUDPFlows = positiveOr(c.MaxUDPFlows, DefaultMaxUDPFlows)
	c.NetnsPoolIdle = positiveOr(c.NetnsPoolIdle, DefaultNetnsPoolIdle)
	c.WarnInterval = positiveOr(c.WarnInterval, DefaultWarnInterval)
	c.MaxConns, c.MaxConnsPerPort = connLimits(c.MaxConns, c.MaxConnsPerPort)
	m.conns.max = int64(c.MaxConns)
	m.log.Info("connection limits", zap.Int("max_conns", c.MaxConns), zap.Int("max_conns_per_port", c.MaxConnsPerPort))
	m.netns.init(c.NetnsPoolIdle)
	m.datagrams.New = newDatagramBuf
	m.ephemeral = c.EphemeralRange
	if m.ephemeral.Len() == 0 {
		r, err := EphemeralRange()
		if err != nil {
			r = PortRange{fallbackEphemeralStart, fallbackEphemeralEnd}
			m.log.Warn("using the default ephemeral port range", zap.Stringer("range", r), zap.Error(err))
		}
		m.ephemeral = r
	}
	m.epoch = time.Now()
	if m.unprivStart == nil {
		m.unprivStart = UnprivilegedPortStart
	}
	m.bound = make(map[portKey][]netip.Addr)
	m.draining = make(map[binding]struct{})
	m.udp = make(map[*udpBinding]struct{})
	m.kick = make(chan struct{}, 1)
	m.done = make(chan struct{})
	m.closeDone = make(chan struct{})
}

// positiveOr returns v if it is positive, else d.
func positiveOr[T int | time.Duration](v, d T) T {
	if v > 0 {
		return v
	}
	return d
}

// now returns the Manager's monotonic clock, used for UDP flow activity.
func (m *Manager) now() int64 { return int64(time.Since(m.epoch)) }

// Publish binds the host listeners of one mapping, as returned by
// ParsePublish, for owner (an endpoint key such as "web/a"), and relays
// their traffic to target at the mapping's ContainerPort through d.
//
// The host port is mp.HostPort if it is a single port; the first free port
// of it if it is a range; a free port of the ephemeral range, taken in
// turn, if it is zero. A mapping without HostIP is bound on 0.0.0.0 and on
// [::] (IPv6 only), with the same port; [::] is skipped silently if the
// host has no IPv6. Publish returns one Published per listener.
//
// Publish is all or nothing: on error nothing is left bound and other
// bindings are untouched. A port this Manager already publishes on an
// overlapping address gives an error wrapping ErrAllocated; a port held by
// another socket, ErrAddrInUse; a privileged port, ErrPrivileged; a bad
// mapping, ErrInvalidSpec.
func (m *Manager) Publish(owner string, mp Mapping, target netip.Addr, d Dialer, opts Options) ([]Published, error) {
	mp.HostIP = mp.HostIP.Unmap()
	target = target.Unmap()
	if err := checkPublish(owner, mp, target, d); err != nil {
		return nil, err
	}
	if t6 := opts.Target6; t6.IsValid() && (!t6.Is6() || t6.Is4In6() || t6.IsUnspecified()) {
		return nil, fmt.Errorf("publish %s for %q: IPv6 target %s is not an IPv6 address; want the container's IPv6 address", mp, owner, t6)
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	m.initLocked()
	if m.closed {
		return nil, ErrClosed
	}

	socks, port, err := m.allocateLocked(mp)
	if err != nil {
		return nil, err
	}
	e := &entry{owner: owner, spec: mp, port: port}
	perPort := cmp.Or(opts.MaxConns, m.cfg.MaxConnsPerPort)
	portLimit := &connLimit{max: int64(perPort)} // the TCP listeners', together
	maxFlows := positiveOr(opts.MaxUDPFlows, m.cfg.MaxUDPFlows)
	if perPort > 0 {
		maxFlows = min(maxFlows, perPort)
	}
	pubs := make([]Published, len(socks))
	for i, s := range socks {
		pub := Published{
			Owner: owner, Proto: mp.Proto, HostIP: s.addr, HostPort: port,
			ContainerPort: mp.ContainerPort, Target: target, Spec: mp,
		}
		if s.addr.Is6() && opts.Target6.IsValid() {
			pub.Target = opts.Target6
		}
		pubs[i] = pub
		base := m.newBase(pub, d, opts)
		if s.tcp != nil {
			base.port = portLimit
			e.bindings = append(e.bindings, newTCPBinding(base, s.tcp))
			continue
		}
		u := newUDPBinding(base, s.udp, positiveOr(opts.UDPTimeout, m.cfg.UDPTimeout), maxFlows, &m.datagrams)
		m.udp[u] = struct{}{}
		e.bindings = append(e.bindings, u)
	}
	m.entries = append(m.entries, e)
	for _, b := range e.bindings {
		k := portKey{mp.Proto, port}
		m.bound[k] = append(m.bound[k], b.published().HostIP)
		b.start()
	}
	if mp.Proto == UDP {
		m.startJanitorLocked()
	}
	for _, p := range pubs {
		m.log.Info("published", zap.String("owner", owner), zap.Stringer("spec", mp),
			zap.String("listen", p.HostAddr().String()+"/"+p.Proto.String()), zap.Stringer("target", p.TargetAddr()))
	}
	return pubs, nil
}

// checkPublish rejects what Publish cannot serve before anything is bound.
func checkPublish(owner string, mp Mapping, target netip.Addr, d Dialer) error {
	switch {
	case owner == "":
		return fmt.Errorf("publish %s: empty owner; want an endpoint key like \"web/a\"", mp)
	case d == nil:
		return fmt.Errorf("publish %s for %q: nil Dialer", mp, owner)
	case !target.IsValid() || target.IsUnspecified():
		return fmt.Errorf("publish %s for %q: invalid target address %q; want the container's IP", mp, owner, target)
	case mp.Proto != TCP && mp.Proto != UDP:
		return specErrorf("publish %s for %q: invalid protocol %v; want tcp or udp", mp, owner, mp.Proto)
	case mp.ContainerPort == 0:
		return specErrorf("publish %s for %q: container port 0; want 1-65535", mp, owner)
	case !mp.HostPort.IsZero() && (mp.HostPort.Start == 0 || mp.HostPort.End < mp.HostPort.Start):
		return specErrorf("publish %s for %q: invalid host port range %d-%d; want a port or start-end within 1-65535",
			mp, owner, mp.HostPort.Start, mp.HostPort.End)
	}
	return nil
}

// Unpublish removes what Publish bound for owner and mp, closing its
// listeners and the connections and flows they carry; it returns when all
// of their goroutines have ended. mp is the mapping given to Publish, or
// the same mapping with the host port that was bound (Published.HostPort);
// every publication of owner matching it is removed. If there is none, the
// error wraps ErrNotPublished.
func (m *Manager) Unpublish(owner string, mp Mapping) error {
	mp.HostIP = mp.HostIP.Unmap()
	m.mu.Lock()
	m.initLocked()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	gone := m.removeLocked(func(e *entry) bool { return e.owner == owner && e.matches(mp) })
	m.mu.Unlock()
	if len(gone) == 0 {
		return fmt.Errorf("unpublish %s for %q: %w", mp, owner, ErrNotPublished)
	}
	m.drain(gone)
	return nil
}

// UnpublishAll removes everything owner has published, as Unpublish does.
func (m *Manager) UnpublishAll(owner string) {
	m.mu.Lock()
	m.initLocked()
	gone := m.removeLocked(func(e *entry) bool { return e.owner == owner })
	m.mu.Unlock()
	m.drain(gone)
}

// removeLocked removes the entries that match, stops their bindings and
// moves them to draining. It returns the bindings stopped.
func (m *Manager) removeLocked(match func(*entry) bool) []binding {
	var gone []binding
	kept := m.entries[:0]
	for _, e := range m.entries {
		if !match(e) {
			kept = append(kept, e)
			continue
		}
		for _, b := range e.bindings {
			m.unindexLocked(b.published())
			if u, ok := b.(*udpBinding); ok {
				delete(m.udp, u)
			}
			b.stop()
			m.draining[b] = struct{}{}
			gone = append(gone, b)
		}
	}
	clear(m.entries[len(kept):])
	m.entries = kept
	return gone
}

func (m *Manager) unindexLocked(p Published) {
	k := portKey{p.Proto, p.HostPort}
	addrs := m.bound[k]
	if i := slices.Index(addrs, p.HostIP); i >= 0 {
		addrs = slices.Delete(addrs, i, i+1)
	}
	if len(addrs) == 0 {
		delete(m.bound, k)
	} else {
		m.bound[k] = addrs
	}
}

// drain waits for the goroutines of stopped bindings to end, then folds
// their counters into the retired totals. Two callers may drain the same
// binding (Unpublish racing Close); it is counted once.
func (m *Manager) drain(gone []binding) {
	for _, b := range gone {
		b.wait()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, b := range gone {
		if _, ok := m.draining[b]; !ok {
			continue
		}
		delete(m.draining, b)
		st := b.stats()
		m.retired.tcp.add(st.TCP)
		m.retired.udp.add(st.UDP)
		p := st.Published
		fields := []zap.Field{zap.String("owner", p.Owner),
			zap.String("listen", p.HostAddr().String()+"/"+p.Proto.String()), zap.Stringer("target", p.TargetAddr())}
		if p.Proto == TCP {
			fields = append(fields, zap.Uint64("conns", st.TCP.Total), zap.Uint64("refused", st.TCP.Refused),
				zap.Uint64("bytes_in", st.TCP.BytesIn), zap.Uint64("bytes_out", st.TCP.BytesOut))
		} else {
			fields = append(fields, zap.Uint64("flows", st.UDP.FlowsTotal), zap.Uint64("packets_in", st.UDP.PacketsIn),
				zap.Uint64("packets_out", st.UDP.PacketsOut), zap.Uint64("dropped", st.UDP.Dropped))
		}
		m.log.Info("unpublished", fields...)
	}
}

// List returns what owner has published, one Published per host listener,
// ordered by owner, container port, protocol, host port and host address.
// An empty owner lists every owner's.
func (m *Manager) List(owner string) []Published {
	out := collect(m, owner, binding.published)
	slices.SortFunc(out, comparePublished)
	return out
}

// BindingStats returns the counters of owner's listeners (every owner's
// if owner is empty), in List order.
func (m *Manager) BindingStats(owner string) []BindingStats {
	out := collect(m, owner, binding.stats)
	slices.SortFunc(out, func(a, b BindingStats) int { return comparePublished(a.Published, b.Published) })
	return out
}

// collect returns f of every listener of owner (of every owner if empty).
func collect[T any](m *Manager, owner string, f func(binding) T) []T {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []T
	for _, e := range m.entries {
		if owner == "" || e.owner == owner {
			for _, b := range e.bindings {
				out = append(out, f(b))
			}
		}
	}
	return out
}

// Stats returns the Manager's counters: totals, and one BindingStats per
// live listener in List order.
func (m *Manager) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.initLocked()
	s := Stats{TCP: m.retired.tcp, UDP: m.retired.udp, Netns: m.netns.stats(),
		Conns: m.conns.n.Load(), MaxConns: m.cfg.MaxConns, MaxConnsPerPort: m.cfg.MaxConnsPerPort}
	for b := range m.draining {
		st := b.stats()
		s.TCP.add(st.TCP)
		s.UDP.add(st.UDP)
	}
	for _, e := range m.entries {
		for _, b := range e.bindings {
			st := b.stats()
			s.TCP.add(st.TCP)
			s.UDP.add(st.UDP)
			s.Bindings = append(s.Bindings, st)
		}
	}
	slices.SortFunc(s.Bindings, func(a, b BindingStats) int { return comparePublished(a.Published, b.Published) })
	return s
}

// Close unpublishes everything, stops the janitor and closes the sockets
// pooled for NetnsDialers. It returns when every
// listener, connection and flow is closed and every goroutine the Manager
// started has ended. Later calls return nil at once (or, while the first
// is still closing, when it has finished); Publish and Unpublish then
// return ErrClosed.
func (m *Manager) Close() error {
	m.mu.Lock()
	m.initLocked()
	if m.closed {
		m.mu.Unlock()
		<-m.closeDone
		return nil
	}
	m.closed = true
	m.removeLocked(func(*entry) bool { return true })
	all := make([]binding, 0, len(m.draining))
	for b := range m.draining {
		all = append(all, b)
	}
	close(m.done)
	m.mu.Unlock()

	m.drain(all)
	m.wg.Wait()
	m.netns.close()
	close(m.closeDone)
	return nil
}

// startJanitorLocked starts the janitor with the first UDP binding and
// wakes it whenever one is added, so that it recomputes its interval.
func (m *Manager) startJanitorLocked() {
	if !m.janitorOn {
		m.janitorOn = true
		m.wg.Add(1)
		go m.runJanitor()
	}
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// runJanitor is the Manager's one janitor goroutine: it closes UDP flows
// that have been idle longer than their binding's timeout. It wakes every
// tenth of the smallest timeout in use (between 1ms and 1s), so a flow
// lives at most that much longer than its timeout.
func (m *Manager) runJanitor() {
	defer m.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var ls []*udpBinding
	for {
		m.mu.Lock()
		for u := range m.udp {
			ls = append(ls, u)
		}
		m.mu.Unlock()

		if len(ls) == 0 {
			select {
			case <-m.done:
				return
			case <-m.kick:
				continue
			}
		}
		now := m.now()
		shortest := ls[0].timeout
		for _, u := range ls {
			u.expire(now)
			shortest = min(shortest, u.timeout)
		}
		clear(ls)
		ls = ls[:0]

		timer.Reset(janitorInterval(shortest))
		select {
		case <-m.done:
			return
		case <-m.kick:
		case <-timer.C:
		}
	}
}

func janitorInterval(timeout time.Duration) time.Duration {
	return min(max(timeout/10, time.Millisecond), time.Second)
}
