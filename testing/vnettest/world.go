package vnettest

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
)

// SeedEnv is the environment variable that fixes the seed of every World
// made without the Seed option, to replay a failed run.
const SeedEnv = "VNETTEST_SEED"

// World is one test's virtual internet: its networks, hosts and wires.
// Make it with New; the test's Cleanup closes everything in it.
type World struct {
	t    testing.TB
	seed int64
	log  *zap.Logger

	// input, while FuzzFrames runs, is the fuzz input's test: failures
	// found on the data path (a stage's panic) go to it rather than to
	// the *testing.F the World was made with, which must not be used
	// inside the fuzz target.
	input atomic.Pointer[testing.TB]

	// vclock is the World's virtual clock; nil means the real one.
	vclock *vclock
	// activity counts frames moving on the World's wires, for settle.
	activity activityCounter

	mu       sync.Mutex
	closed   bool
	networks []*Network
	hosts    []*Host
	routers  []*Router
	tunnels  []*Tunnel
	wires    []*Wire
	names    map[string]*Host
}

// Option changes how New builds a World.
type Option func(*World)

// Seed fixes the seed from which every random choice of the World's
// stages is drawn. Without it the seed comes from $VNETTEST_SEED, or else
// from the clock; either way a failing test logs it.
func Seed(seed int64) Option { return func(w *World) { w.seed = seed } }

// New returns an empty World bound to t: when t ends, every host, gateway
// and network in it is closed, and if t failed, the frames each host sent
// and received are saved as one pcap file per wire (in t.ArtifactDir: run
// `go test -artifacts` to keep them) and the files and the seed are
// logged.
func New(t testing.TB, opts ...Option) *World {
	t.Helper()
	w := &World{t: t, log: zap.NewNop(), names: map[string]*Host{}, seed: time.Now().UnixNano()}
	if s := os.Getenv(SeedEnv); s != "" {
		seed, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("vnettest: $%s=%q: want a decimal integer", SeedEnv, s)
		}
		w.seed = seed
	}
	for _, o := range opts {
		o(w)
	}
	t.Cleanup(w.close)
	return w
}

// Seed returns the World's seed.
func (w *World) Seed() int64 { return w.seed }

// close shuts the world down; it runs as t's cleanup.
func (w *World) close() {
	w.mu.Lock()
	w.closed = true
	hosts, networks, routers, wires, tunnels := w.hosts, w.networks, w.routers, w.wires, w.tunnels
	w.mu.Unlock()
	// Gateways first (their relays run on uplink hosts), then hosts,
	// then the switches.
	for _, n := range slices.Backward(networks) {
		n.closeGateway()
	}
	for _, t := range slices.Backward(tunnels) {
		t.close() // before its end hosts, whose sockets it reads
	}
	for _, r := range slices.Backward(routers) {
		r.close()
	}
	for _, h := range slices.Backward(hosts) {
		h.Close()
	}
	for _, n := range slices.Backward(networks) {
		n.sw.Close()
	}
	if w.t.Failed() {
		w.t.Logf("vnettest: seed %d (replay with %s=%d)", w.seed, SeedEnv, w.seed)
		w.savePcaps(wires)
	}
}

// savePcaps writes each wire's capture to the test's artifact directory.
func (w *World) savePcaps(wires []*Wire) {
	var dir string
	for _, wire := range wires {
		if dir == "" {
			dir = w.t.ArtifactDir()
		}
		name := filepath.Join(dir, fileName(wire.name)+".pcap")
		data, lost := wire.cap.bytes()
		if err := os.WriteFile(name, data, 0o644); err != nil {
			w.t.Logf("vnettest: saving capture of wire %s: %v", wire.name, err)
			continue
		}
		note := ""
		if lost > 0 {
			note = fmt.Sprintf(" (%d frames past the size cap not kept)", lost)
		}
		w.t.Logf("vnettest: frames of wire %s saved in %s%s", wire.name, name, note)
	}
}

// fileName keeps the letters, digits, '-', '_' and '.' of s.
func fileName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return '_'
	}, s)
}

// errorf reports a failure found on the data path.
func (w *World) errorf(format string, args ...any) {
	if t := w.input.Load(); t != nil {
		(*t).Errorf(format, args...)
		return
	}
	w.t.Errorf(format, args...)
}

// fail reports bad input through the test and stops it.
func (w *World) fail(format string, args ...any) {
	w.t.Helper()
	w.t.Fatalf("vnettest: "+format, args...)
}

// NewNetwork adds a network: one switch, with hosts on subnet (such as
// "10.0.0.0/24"). The first usable address is kept for a gateway.
func (w *World) NewNetwork(name, subnet string) *Network {
	w.t.Helper()
	n, err := w.newNetwork(name, subnet)
	if err != nil {
		w.fail("%v", err)
	}
	return n
}

// reserve claims a host name in the world; add completes it.
func (w *World) reserve(name string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return fmt.Errorf("host %q: the world is closed", name)
	}
	if _, dup := w.names[name]; dup {
		return fmt.Errorf("host %q: a host of that name exists already", name)
	}
	w.names[name] = nil
	return nil
}

// add completes a reservation with h, or with nil drops it.
func (w *World) add(name string, h *Host) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if h == nil {
		delete(w.names, name)
		return
	}
	w.names[name] = h
	w.hosts = append(w.hosts, h)
}

// lookup resolves a host name in the world.
func (w *World) lookup(name string) (netip.Addr, error) {
	w.mu.Lock()
	h := w.names[strings.TrimSuffix(name, ".")]
	w.mu.Unlock()
	if h == nil {
		return netip.Addr{}, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	}
	return h.Addr(), nil
}
