package proxy

import (
	"sync/atomic"
	"time"

	"github.com/switchyard-net/switchyard/internal/rlimit"
)

// Connection limits. Every relayed TCP connection and UDP flow holds file
// descriptors, and a process out of them cannot accept on its API socket
// either. So the Manager caps what its listeners take: each published port
// may hold at most Config.MaxConnsPerPort connections and flows, and all
// ports together Config.MaxConns, which leaves a reserve of descriptors to
// the API, the TAPs, the state store and the listeners themselves.
//
// A TCP connection over a limit is accepted and reset at once (SO_LINGER
// 0), so the client learns of it without waiting, and counted
// (TCPStats.OverLimit). A new UDP client over the Manager's limit has its
// datagram dropped and counted (UDPStats.FlowsOverLimit); a port's limit
// caps each UDP listener's flow table, which when full evicts its least
// recently active flow (as MaxUDPFlows does). Refusals and failed accepts
// are logged at warn level at most once per Config.WarnInterval per
// listener, with the count since the last line: never a line per
// connection.

// Defaults for the limits, from the soft RLIMIT_NOFILE.
const (
	// ConnFDs is the number of file descriptors the default limits budget
	// for each connection: the most one can hold. A connection through the
	// gateway's netstack holds one (the client's socket); with
	// path=splice it holds the container's socket as well and, while the
	// kernel splices, one pipe (two descriptors) per direction.
	ConnFDs = 6

	// The reserve left to the rest of the daemon is an eighth of the
	// limit, between these bounds.
	minFDReserve = 64
	maxFDReserve = 4096

	// fallbackNoFile is the limit assumed when it cannot be read: Linux's
	// usual soft limit.
	fallbackNoFile = 1024

	// DefaultWarnInterval is the shortest time between two warnings of
	// one kind about one listener.
	DefaultWarnInterval = 10 * time.Second
)

// DefaultConnLimits returns the limits a Manager takes when its Config
// leaves them zero, for a process that may open nofile files:
//
//	reserve = nofile/8, within 64-4096
//	global  = (nofile - reserve) / ConnFDs
//	perPort = global / 2
//
// so that one flooded port leaves half the connections to the others, and
// a flood of every port leaves the reserve to the API. Neither is below 1.
// At 1024 descriptors that is 149 and 74; at 1,048,576, 174,080 and
// 87,040.
func DefaultConnLimits(nofile uint64) (global, perPort int) {
	reserve := min(max(nofile/8, minFDReserve), maxFDReserve)
	g := uint64(1)
	if nofile > reserve+ConnFDs {
		g = (nofile - reserve) / ConnFDs
	}
	g = min(g, 1<<31-1)
	return int(g), int(max(g/2, 1))
}

// connLimits fills in Config's zero limits: the global one from the
// open-file limit, the per-port one as half the global one (or, with no
// global limit, from the open-file limit too).
func connLimits(global, perPort int) (int, int) {
	if global == 0 {
		global, _ = DefaultConnLimits(noFile())
	}
	if perPort == 0 {
		if global > 0 {
			perPort = max(global/2, 1)
		} else {
			_, perPort = DefaultConnLimits(noFile())
		}
	}
	return global, perPort
}

// noFile returns the process's soft open-file limit, or fallbackNoFile.
func noFile() uint64 {
	soft, _, err := rlimit.NoFile()
	if err != nil || soft == 0 {
		return fallbackNoFile
	}
	return soft
}

// connLimit counts what one scope (the Manager, or one published port)
// holds against its limit: TCP connections from accept to close, UDP
// flows from dial to close.
type connLimit struct {
	max int64 // not positive: no limit
	n   atomic.Int64
}

// acquire takes a slot, or reports false if none is free.
func (l *connLimit) acquire() bool {
	for {
		n := l.n.Load()
		if l.max > 0 && n >= l.max {
			return false
		}
		if l.n.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (l *connLimit) release() { l.n.Add(-1) }

// limitScope names the limit a connection was refused for, in logs.
type limitScope string

const (
	scopeNone   limitScope = ""
	scopePort   limitScope = "port"
	scopeGlobal limitScope = "global"
)

// admit takes a slot of the port's limit and of the Manager's (port may
// be nil: no per-port limit, for UDP), or neither; it returns the limit
// that was full, or scopeNone.
func admit(port, global *connLimit) limitScope {
	if port != nil && !port.acquire() {
		return scopePort
	}
	if !global.acquire() {
		if port != nil {
			port.release()
		}
		return scopeGlobal
	}
	return scopeNone
}

// warnGate lets one warning through per interval, and tells it how many
// events it stands for. Its methods are safe for concurrent use and do not
// block.
type warnGate struct {
	next   atomic.Int64  // clock time before which no warning is due
	warned atomic.Uint64 // the event count at the last warning
}

// due reports whether a warning is due at now (a monotonic clock in
// nanoseconds, like Manager.now), given the events counted so far; if so,
// it returns how many happened since the last warning, and the next is due
// every later. Of concurrent callers, one wins.
func (g *warnGate) due(now int64, every time.Duration, total uint64) (uint64, bool) {
	next := g.next.Load()
	if now < next || !g.next.CompareAndSwap(next, now+int64(every)) {
		return 0, false
	}
	prev := g.warned.Swap(total)
	return total - min(prev, total), true
}

// AdmitExternal takes one slot of the Manager's connection limit
// (Config.MaxConns) for a flow that is not a published port's but holds a
// host socket from the same descriptors: the gateways' egress flows. It
// reports false when none is free; each true is given back with
// ReleaseExternal. A Manager made by NewManager is needed.
func (m *Manager) AdmitExternal() bool { return m.conns.acquire() }

// ReleaseExternal gives back a slot AdmitExternal took.
func (m *Manager) ReleaseExternal() { m.conns.release() }
