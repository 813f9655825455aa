package proxy

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/switchyard-net/switchyard/internal/nsenter"
)

// Entering a namespace costs a goroutine, a locked thread, two opens and
// two setns calls: about a tenth of the CPU the splice path spends per
// connection. Sockets do not care which thread made them, only which
// namespace, so a Manager's NetnsDialers make them in batches: one entry
// makes socketBatch of them, and the next dials take from the Manager's
// pool for that namespace.
//
// A pooled socket pins its namespace (the kernel keeps a namespace alive
// while a socket in it exists), so a pool that nobody takes from for
// Config.NetnsPoolIdle is closed, and a pool whose path now names a
// different namespace (the container restarted) is closed before it is
// used. Manager.Close closes them all.
const socketBatch = 8

// DefaultNetnsPoolIdle is the default of Config.NetnsPoolIdle.
const DefaultNetnsPoolIdle = 2 * time.Second

// NetnsStats counts what NetnsDialers made by a Manager did.
type NetnsStats struct {
	Entries uint64 // times a namespace was entered to make sockets
	Pooled  int    // unconnected sockets the pools hold now
}

// NetnsDialer returns a NetnsDialer for the network namespace at path
// whose sockets come from the Manager's pools, so that a namespace is
// entered once per batch of connections rather than for each. After
// Close it still dials, entering the namespace for every socket.
func (m *Manager) NetnsDialer(path string) NetnsDialer {
	m.mu.Lock()
	m.initLocked()
	m.mu.Unlock()
	return NetnsDialer{NetNS: path, pools: &m.netns}
}

type poolKey struct {
	path         string
	family, kind int
}

// netnsPools are a Manager's socket pools, one per namespace path, address
// family and socket type. The zero value is not ready: init it.
type netnsPools struct {
	idle    time.Duration // a pool unused this long is closed
	entries atomic.Uint64

	mu     sync.Mutex
	m      map[poolKey]*socketPool
	closed bool // close has run: no more pooling
}

func (ps *netnsPools) init(idle time.Duration) {
	ps.idle = idle
	ps.m = make(map[poolKey]*socketPool)
}

// socketPool holds unconnected sockets made in one namespace.
type socketPool struct {
	key   poolKey
	owner *netnsPools
	mu    sync.Mutex
	id    nsenter.ID // the namespace the fds belong to
	fds   []int
	timer *time.Timer // closes the pool after owner.idle without a take
}

// take returns a new non-blocking, close-on-exec socket of the given
// family and type inside the network namespace at path. The caller owns
// it. A nil ps makes one socket per call.
func (ps *netnsPools) take(path string, family, kind int) (int, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return -1, fmt.Errorf("network namespace %s: %w", path, err)
	}
	p := ps.pool(poolKey{path, family, kind})
	if p == nil {
		fds, err := ps.makeSockets(path, family, kind, 1)
		if err != nil {
			return -1, err
		}
		return fds[0], nil
	}
	return p.take(nsenter.ID{Dev: st.Dev, Ino: st.Ino})
}

// pool returns the pool for key, made if needed; nil without pooling.
func (ps *netnsPools) pool(key poolKey) *socketPool {
	if ps == nil {
		return nil
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.closed {
		return nil
	}
	p := ps.m[key]
	if p == nil {
		p = &socketPool{key: key, owner: ps}
		ps.m[key] = p
	}
	return p
}

// take returns a socket of the pool's namespace, which is id now: one
// pooled, or the first of a new batch.
func (p *socketPool) take(id nsenter.ID) (int, error) {
	p.mu.Lock()
	if p.id != id {
		p.drainLocked()
		p.id = id
	}
	if n := len(p.fds); n > 0 {
		fd := p.fds[n-1]
		p.fds = p.fds[:n-1]
		p.armLocked()
		p.mu.Unlock()
		return fd, nil
	}
	p.mu.Unlock()

	fds, err := p.owner.makeSockets(p.key.path, p.key.family, p.key.kind, socketBatch)
	if err != nil {
		return -1, err
	}
	p.owner.mu.Lock() // to see close, whose drain may have run meanwhile
	defer p.owner.mu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.id != id || p.owner.closed {
		// The path changed namespace while these were made, or the
		// Manager closed: keep only the one this dial asked for, as a
		// direct entry would have.
		closeAll(fds[1:])
		return fds[0], nil
	}
	p.fds = append(p.fds, fds[1:]...)
	p.armLocked()
	return fds[0], nil
}

// armLocked (re)starts the idle timer.
func (p *socketPool) armLocked() {
	if p.timer == nil {
		p.timer = time.AfterFunc(p.owner.idle, p.expire)
		return
	}
	p.timer.Reset(p.owner.idle)
}

// expire closes the pool's sockets and forgets the pool.
func (p *socketPool) expire() {
	p.owner.mu.Lock()
	defer p.owner.mu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.drainLocked()
	if p.owner.m[p.key] == p {
		delete(p.owner.m, p.key)
	}
}

func (p *socketPool) drainLocked() {
	closeAll(p.fds)
	p.fds = p.fds[:0]
}

// close closes every pool and stops their timers; later takes make one
// socket at a time.
func (ps *netnsPools) close() {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.closed = true
	for k, p := range ps.m {
		p.mu.Lock()
		if p.timer != nil {
			p.timer.Stop()
		}
		p.drainLocked()
		p.mu.Unlock()
		delete(ps.m, k)
	}
}

func (ps *netnsPools) stats() NetnsStats {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	s := NetnsStats{Entries: ps.entries.Load()}
	for _, p := range ps.m {
		p.mu.Lock()
		s.Pooled += len(p.fds)
		p.mu.Unlock()
	}
	return s
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// makeSockets enters the namespace at path once and makes n sockets
// there, counting the entry in ps (if not nil).
func (ps *netnsPools) makeSockets(path string, family, kind, n int) ([]int, error) {
	if ps != nil {
		ps.entries.Add(1)
	}
	fds := make([]int, 0, n)
	err := nsenter.Do(path, func() error {
		for range n {
			fd, err := unix.Socket(family, kind|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				if len(fds) > 0 {
					return nil // a short batch is still a batch
				}
				return os.NewSyscallError("socket", err)
			}
			fds = append(fds, fd)
		}
		return nil
	})
	if err != nil {
		closeAll(fds)
		return nil, err
	}
	return fds, nil
}
