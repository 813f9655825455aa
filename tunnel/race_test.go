//go:build race

package tunnel_test

// raceEnabled: the race detector makes sync.Pool drop items at random, so
// pooled buffers are allocated again and allocation counts mean nothing.
const raceEnabled = true
