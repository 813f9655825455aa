package daemon

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/daemon/store"
	"github.com/switchyard-net/switchyard/testing/attachtest"
)

// testEnv is a daemon on an in-memory Attacher and a state directory of
// its own: it runs as any user, with no TAP and no namespace.
type testEnv struct {
	t     *testing.T
	dir   string
	att   *attachtest.Attacher
	d     *Daemon
	store *failingStore
}

// newEnv starts a daemon with no default network.
func newEnv(t *testing.T) *testEnv {
	t.Helper()
	e := &testEnv{t: t, dir: t.TempDir(), att: attachtest.New()}
	e.start()
	t.Cleanup(func() { e.d.Close() })
	return e
}

// config is the daemon's configuration: nothing read from the host.
func (e *testEnv) config() Config {
	resolv := filepath.Join(e.dir, "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 127.0.0.1\n"), 0o644); err != nil {
		e.t.Fatal(err)
	}
	return Config{
		StateDir: filepath.Join(e.dir, "state"), Logger: zaptest.NewLogger(e.t), Attacher: e.att,
		HostPrefixes:     func() ([]netip.Prefix, error) { return nil, nil },
		HostAddrs:        func() ([]netip.Addr, error) { return []netip.Addr{netip.MustParseAddr("192.0.2.10")}, nil },
		NoDefaultNetwork: true, ResolvConf: resolv, WatchInterval: 10 * time.Millisecond,
		Forwarding: func(bool) (bool, error) { return true, nil },
	}
}

// start starts a daemon on the environment's state directory, with its
// state writes going through a failingStore.
func (e *testEnv) start() {
	e.t.Helper()
	d, err := New(e.config())
	if err != nil {
		e.t.Fatal(err)
	}
	e.d = d
	d.mu.Lock()
	e.store = &failingStore{stateStore: d.store}
	d.store = e.store
	d.mu.Unlock()
}

func (e *testEnv) createNetwork(req api.NetworkCreate) api.Network {
	e.t.Helper()
	n, err := e.d.CreateNetwork(context.Background(), req)
	if err != nil {
		e.t.Fatalf("create network %s: %v", req.Name, err)
	}
	return n
}

func (e *testEnv) connect(network string, req api.EndpointCreate) api.Endpoint {
	e.t.Helper()
	ep, err := e.d.Connect(context.Background(), network, req)
	if err != nil {
		e.t.Fatalf("connect to %s: %v", network, err)
	}
	return ep
}

// storedEndpoints returns the endpoints in the state file.
func (e *testEnv) storedEndpoints() []store.Endpoint {
	e.t.Helper()
	eps, err := e.store.Endpoints()
	if err != nil {
		e.t.Fatal(err)
	}
	return eps
}

// addrOwner returns who holds addr in network's pool ("" if free).
func (e *testEnv) addrOwner(network string, addr netip.Addr) string {
	e.d.mu.Lock()
	defer e.d.mu.Unlock()
	n := e.d.networks[network]
	n.addrs.mu.Lock()
	defer n.addrs.mu.Unlock()
	owner, _ := n.addrs.pool.Owner(addr)
	return owner
}

// switchPorts counts the ports attached to network's switch (its gateway
// is one).
func (e *testEnv) switchPorts(network string) int {
	e.d.mu.Lock()
	defer e.d.mu.Unlock()
	return len(e.d.networks[network].sw.Stats().Ports)
}

// freePorts returns n distinct TCP ports of 127.0.0.1 nobody listens on
// now.
func freePorts(t *testing.T, n int) []uint16 {
	t.Helper()
	var out []uint16
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		out = append(out, uint16(l.Addr().(*net.TCPAddr).Port))
	}
	return out
}

// freeUDPPort returns a UDP port of 127.0.0.1 nobody uses now.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// bindable reports whether 127.0.0.1:port is free to listen on.
func bindable(port uint16) bool {
	l, err := net.Listen("tcp", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port).String())
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// errInjected is the error the tests make steps fail with.
var errInjected = errors.New("injected failure")

// failingStore is the state file with writes that can be told to fail.
type failingStore struct {
	stateStore
	mu   sync.Mutex
	fail map[string]int // by method: the next call fails...
	skip map[string]int // ...after this many more succeed
}

// failAfter makes the next call of method (PutEndpoint, DeleteEndpoint,
// PutNetwork, DeleteNetwork) fail, after skip successful ones.
func (s *failingStore) failAfter(method string, skip int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail == nil {
		s.fail, s.skip = map[string]int{}, map[string]int{}
	}
	s.fail[method], s.skip[method] = 1, skip
}

// failPut makes PutEndpoint fail once, after skip successful calls.
func (s *failingStore) failPut(skip int) { s.failAfter("PutEndpoint", skip) }

// failDelete makes the next DeleteEndpoint fail.
func (s *failingStore) failDelete() { s.failAfter("DeleteEndpoint", 0) }

// fails reports whether this call of method is to fail.
func (s *failingStore) fails(method string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail[method] == 0 {
		return false
	}
	if s.skip[method] > 0 {
		s.skip[method]--
		return false
	}
	s.fail[method]--
	return true
}

func (s *failingStore) PutEndpoint(rec store.Endpoint) error {
	if s.fails("PutEndpoint") {
		return errInjected
	}
	return s.stateStore.PutEndpoint(rec)
}

func (s *failingStore) DeleteEndpoint(network, name string) error {
	if s.fails("DeleteEndpoint") {
		return errInjected
	}
	return s.stateStore.DeleteEndpoint(network, name)
}

func (s *failingStore) PutNetwork(rec store.Network) error {
	if s.fails("PutNetwork") {
		return errInjected
	}
	return s.stateStore.PutNetwork(rec)
}

func (s *failingStore) DeleteNetwork(name string) error {
	if s.fails("DeleteNetwork") {
		return errInjected
	}
	return s.stateStore.DeleteNetwork(name)
}
