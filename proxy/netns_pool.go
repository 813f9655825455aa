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
// namespace, so NetnsDialer makes them in batches: one entry makes
// socketBatch of them, and the next dials take from the pool.
//
// A pooled socket pins its namespace (the kernel keeps a namespace alive
// while a socket in it exists), so a pool that nobody takes from for
// poolIdle is closed, and a pool whose path now names a different
// namespace (the container restarted) is closed before it is used.
const socketBatch = 8

// poolIdle is a variable so that tests can shorten it.
var poolIdle = 2 * time.Second

// netnsEntries counts the batches made, for tests.
var netnsEntries atomic.Int64

type poolKey struct {
	path         string
	family, kind int
}

// socketPool holds unconnected sockets made in one namespace.
type socketPool struct {
	key   poolKey
	mu    sync.Mutex
	id    nsenter.ID // the namespace the fds belong to
	fds   []int
	timer *time.Timer // closes the pool after poolIdle without a take
}

var pools struct {
	sync.Mutex
	m map[poolKey]*socketPool
}

// takeSocket returns a new non-blocking, close-on-exec socket of the
// given family and type inside the network namespace at path. The caller
// owns it.
func takeSocket(path string, family, kind int) (int, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return -1, fmt.Errorf("network namespace %s: %w", path, err)
	}
	id := nsenter.ID{Dev: st.Dev, Ino: st.Ino}
	key := poolKey{path, family, kind}

	pools.Lock()
	if pools.m == nil {
		pools.m = make(map[poolKey]*socketPool)
	}
	p := pools.m[key]
	if p == nil {
		p = &socketPool{key: key}
		pools.m[key] = p
	}
	pools.Unlock()

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

	fds, err := makeSockets(path, family, kind, socketBatch)
	if err != nil {
		return -1, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.id != id {
		// The path changed namespace while these were made: keep only
		// the one this dial asked for, as a direct Do would have.
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
		p.timer = time.AfterFunc(poolIdle, p.expire)
		return
	}
	p.timer.Reset(poolIdle)
}

// expire closes the pool's sockets and forgets the pool.
func (p *socketPool) expire() {
	pools.Lock()
	defer pools.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.drainLocked()
	if pools.m[p.key] == p {
		delete(pools.m, p.key)
	}
}

func (p *socketPool) drainLocked() {
	closeAll(p.fds)
	p.fds = p.fds[:0]
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// pooledSockets reports how many sockets the pools hold, for tests.
func pooledSockets() int {
	pools.Lock()
	defer pools.Unlock()
	n := 0
	for _, p := range pools.m {
		p.mu.Lock()
		n += len(p.fds)
		p.mu.Unlock()
	}
	return n
}

// makeSockets enters the namespace at path once and makes n sockets there.
func makeSockets(path string, family, kind, n int) ([]int, error) {
	netnsEntries.Add(1)
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
