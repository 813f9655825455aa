package proxy

import (
	"testing"
	"time"
)

// NetnsEntries reports how many times NetnsDialer has entered a namespace
// to make sockets.
func NetnsEntries() int64 { return netnsEntries.Load() }

// PooledSockets reports how many unconnected sockets the pools hold.
func PooledSockets() int { return pooledSockets() }

// SocketBatch is how many sockets one entry makes.
const SocketBatch = socketBatch

// SetPoolIdle shortens how long an unused pool lives, for one test.
func SetPoolIdle(t testing.TB, d time.Duration) {
	old := poolIdle
	poolIdle = d
	t.Cleanup(func() { poolIdle = old })
}
