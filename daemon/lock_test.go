package daemon

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/testing/attachtest"
)

// callTimeout bounds a call that must not wait for a blocked attach. A
// daemon that held its lock across the attach would never answer.
const callTimeout = 10 * time.Second

// answers runs fn and fails the test if it does not return in time, as
// when the daemon holds its lock across an attach or a netlink call.
func answers(t *testing.T, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); fn() }()
	select {
	case <-done:
	case <-time.After(callTimeout):
		t.Fatalf("%s did not answer while a slow call was under way: the daemon's lock is held across it", what)
	}
}

// While a connect waits in the Attacher (the TAP helper's fork/exec,
// netlink), every other call is answered, and the endpoint's name,
// namespace and address are taken.
func TestConnectDoesNotHoldTheLock(t *testing.T) {
	e := newEnv(t)
	e.createNetwork(api.NetworkCreate{Name: "web", Subnet: "10.7.0.0/24"})
	e.att.AddNetNS("/run/netns/a")
	e.att.AddNetNS("/run/netns/b")
	gate := e.att.Block(attachtest.StepOpen)
	type result struct {
		ep  api.Endpoint
		err error
	}
	res := make(chan result, 1)
	go func() {
		ep, err := e.d.Connect(context.Background(), "web", api.EndpointCreate{NetNS: "/run/netns/a", Name: "a"})
		res <- result{ep, err}
	}()
	<-gate.Entered
	defer gate.Release()

	answers(t, "Networks", func() {
		if ns := e.d.Networks(); len(ns) != 1 || ns[0].Endpoints != 0 {
			t.Errorf("networks %+v, want web with no endpoint yet", ns)
		}
	})
	answers(t, "Endpoints", func() {
		if eps, err := e.d.Endpoints(""); err != nil || len(eps) != 0 {
			t.Errorf("endpoints %+v, %v; want none yet", eps, err)
		}
	})
	answers(t, "Stats", func() { e.d.Stats() })
	answers(t, "a second connect of the same name", func() {
		_, err := e.d.Connect(context.Background(), "web", api.EndpointCreate{NetNS: "/run/netns/b", Name: "a"})
		if !errors.Is(err, api.ErrConflict) {
			t.Errorf("connect of a name being connected: %v, want a conflict", err)
		}
	})
	answers(t, "a second connect of the same namespace", func() {
		_, err := e.d.Connect(context.Background(), "web", api.EndpointCreate{NetNS: "/run/netns/a", Name: "other"})
		if !errors.Is(err, api.ErrConflict) {
			t.Errorf("connect of a namespace being connected: %v, want a conflict", err)
		}
	})
	answers(t, "a second connect on the address", func() {
		_, err := e.d.Connect(context.Background(), "web", api.EndpointCreate{NetNS: "/run/netns/b", IP: "10.7.0.2"})
		if !errors.Is(err, api.ErrConflict) {
			t.Errorf("connect on an address being connected: %v, want a conflict", err)
		}
	})
	answers(t, "RemoveNetwork", func() {
		if err := e.d.RemoveNetwork(context.Background(), "web"); !errors.Is(err, api.ErrConflict) {
			t.Errorf("removing a network with an endpoint being connected: %v, want a conflict", err)
		}
	})
	gate.Release()
	r := <-res
	if r.err != nil || r.ep.Address.Addr().String() != "10.7.0.2" {
		t.Fatalf("connect after release: %+v, %v", r.ep, r.err)
	}
	if eps, _ := e.d.Endpoints("web"); len(eps) != 1 {
		t.Errorf("%d endpoints after the connect, want 1", len(eps))
	}
}

// While a disconnect deletes the device, other calls are answered; the
// name stays taken until it is done.
func TestDisconnectDoesNotHoldTheLock(t *testing.T) {
	e := newEnv(t)
	e.createNetwork(api.NetworkCreate{Name: "web", Subnet: "10.7.0.0/24"})
	e.att.AddNetNS("/run/netns/a")
	e.att.AddNetNS("/run/netns/b")
	e.connect("web", api.EndpointCreate{NetNS: "/run/netns/a"})
	gate := e.att.Block(attachtest.StepForget)
	done := make(chan error, 1)
	go func() { done <- e.d.Disconnect(context.Background(), "web", "a") }()
	<-gate.Entered
	defer gate.Release()
	answers(t, "Endpoints", func() {
		if eps, err := e.d.Endpoints("web"); err != nil || len(eps) != 0 {
			t.Errorf("endpoints %+v, %v; want none while disconnecting", eps, err)
		}
	})
	answers(t, "a connect of the name being disconnected", func() {
		_, err := e.d.Connect(context.Background(), "web", api.EndpointCreate{NetNS: "/run/netns/b", Name: "a"})
		if !errors.Is(err, api.ErrConflict) {
			t.Errorf("connect: %v, want a conflict", err)
		}
	})
	gate.Release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(e.att.Devices()) != 0 {
		t.Errorf("devices left: %+v", e.att.Devices())
	}
	e.connect("web", api.EndpointCreate{NetNS: "/run/netns/b", Name: "a"})
}

// A daemon closed while a connect waits in the Attacher waits for it, and
// the connect undoes all it did: the next daemon finds no endpoint.
func TestCloseDuringConnect(t *testing.T) {
	e := newEnv(t)
	e.createNetwork(api.NetworkCreate{Name: "web", Subnet: "10.7.0.0/24"})
	e.att.AddNetNS("/run/netns/a")
	gate := e.att.Block(attachtest.StepOpen)
	res := make(chan error, 1)
	go func() {
		_, err := e.d.Connect(context.Background(), "web", api.EndpointCreate{NetNS: "/run/netns/a"})
		res <- err
	}()
	<-gate.Entered
	closed := make(chan error, 1)
	go func() { closed <- e.d.Close() }()
	// Close has begun once new calls are refused.
	for deadline := time.Now().Add(callTimeout); ; {
		if _, err := e.d.Connect(context.Background(), "web", api.EndpointCreate{NetNS: "/run/netns/a"}); errors.Is(err, errClosed) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Close never refused new connects")
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a connect was under way", err)
	default:
	}
	gate.Release()
	if err := <-res; !errors.Is(err, errClosed) {
		t.Errorf("connect interrupted by Close: %v, want %v", err, errClosed)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if len(e.att.Devices()) != 0 || e.att.OpenPorts() != 0 {
		t.Errorf("devices left: %+v, %d open", e.att.Devices(), e.att.OpenPorts())
	}
	e.start()
	if recs := e.storedEndpoints(); len(recs) != 0 {
		t.Errorf("stored endpoints after an interrupted connect: %+v", recs)
	}
}

// Reading the host's routes for a network without a subnet (netlink) is
// done without the lock.
func TestCreateNetworkReadsTheHostWithoutTheLock(t *testing.T) {
	e := &testEnv{t: t, dir: t.TempDir(), att: attachtest.New()}
	cfg := e.config()
	entered, release := make(chan struct{}), make(chan struct{})
	cfg.HostPrefixes = func() ([]netip.Prefix, error) {
		close(entered)
		<-release
		return []netip.Prefix{netip.MustParsePrefix("172.17.0.0/16")}, nil
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	defer free() // before Close, if the test fails while it waits
	type result struct {
		n   api.Network
		err error
	}
	res := make(chan result, 1)
	go func() {
		n, err := d.CreateNetwork(context.Background(), api.NetworkCreate{Name: "auto"})
		res <- result{n, err}
	}()
	<-entered
	answers(t, "Networks", func() { d.Networks() })
	free()
	r := <-res
	if r.err != nil || r.n.Subnet.String() != "172.18.0.0/16" {
		t.Errorf("created %v, %v; want 172.18.0.0/16, the host having 172.17.0.0/16", r.n.Subnet, r.err)
	}
}
