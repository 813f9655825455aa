package cluster_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/switchyard-net/switchyard/daemon/cluster"
	"github.com/switchyard-net/switchyard/daemon/cluster/etcdv3"
	"github.com/switchyard-net/switchyard/testing/etcdtest"
)

var testNet = netip.MustParsePrefix("10.240.0.0/16")

// recorder collects the events a host's OnChange is told.
type recorder struct {
	mu     sync.Mutex
	events []cluster.Event
}

func (r *recorder) on(e cluster.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recorder) snapshot() []cluster.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]cluster.Event(nil), r.events...)
}

// count returns how many events of type typ about host id were seen.
func (r *recorder) count(typ cluster.EventType, id string) int {
	n := 0
	for _, e := range r.snapshot() {
		if e.Type == typ && e.Lease.HostID == id {
			n++
		}
	}
	return n
}

// waitFor polls cond for up to d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// host is a test host's configuration and how it reaches etcd: each join
// makes a new Backend, which the Cluster owns.
type host struct {
	cluster.Config
	dial cluster.Dial
}

// join makes h's Backend and joins.
func (h host) join(ctx context.Context) (*cluster.Cluster, error) {
	b, err := etcdv3.New(ctx, h.dial, h.Logger)
	if err != nil {
		return nil, err
	}
	cfg := h.Config
	cfg.Backend = b
	return cluster.Join(ctx, cfg)
}

// hostConfig is the configuration of test host n.
func hostConfig(t *testing.T, endpoints []string, n int, ttl time.Duration, r *recorder) host {
	cfg := cluster.Config{
		Network: "web", NetworkCIDR: testNet, SubnetLen: 24,
		PublicAddr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 213, 0, byte(n)}), 4789),
		HostID:     fmt.Sprintf("host-%d", n), TTL: ttl, Logger: zaptest.NewLogger(t),
	}
	if r != nil {
		cfg.OnChange = r.on
	}
	return host{Config: cfg, dial: cluster.Dial{Endpoints: endpoints}}
}

func join(t *testing.T, cfg host) *cluster.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := cfg.join(ctx)
	if err != nil {
		t.Fatalf("join %s: %v", cfg.HostID, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// peersOf returns a host's peers as HostID → lease.
func peersOf(c *cluster.Cluster) map[string]cluster.Lease {
	m := map[string]cluster.Lease{}
	for _, l := range c.Peers() {
		m[l.HostID] = l
	}
	return m
}

// Hosts joining at once get disjoint subnets, even when there are exactly
// as many subnets as hosts (so that they race for the same keys), and
// each learns the others' endpoints; one more host finds none free.
func TestJoinGivesDisjointLeases(t *testing.T) {
	endpoints := startEtcd(t)
	const n = 4
	hosts := make([]*cluster.Cluster, n)
	recs := make([]*recorder, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		recs[i] = &recorder{}
		cfg := hostConfig(t, endpoints, i+1, time.Minute, recs[i])
		cfg.NetworkCIDR = netip.MustParsePrefix("10.240.0.0/22") // four /24s
		wg.Add(1)
		go func() {
			defer wg.Done()
			hosts[i], errs[i] = cfg.join(context.Background())
		}()
	}
	wg.Wait()
	seen := map[netip.Prefix]string{}
	for i, c := range hosts {
		if errs[i] != nil {
			t.Fatalf("host %d: %v", i+1, errs[i])
		}
		t.Cleanup(func() { c.Close() })
		l := c.Lease()
		if other, dup := seen[l.Subnet]; dup {
			t.Fatalf("%s and %s both hold %s", other, l.HostID, l.Subnet)
		}
		if !netip.MustParsePrefix("10.240.0.0/22").Contains(l.Subnet.Addr()) || l.Subnet.Bits() != 24 {
			t.Fatalf("%s got %s, outside 10.240.0.0/22 or not a /24", l.HostID, l.Subnet)
		}
		seen[l.Subnet] = l.HostID
	}
	for i, c := range hosts {
		waitFor(t, 10*time.Second, "every host to see the others", func() bool { return len(c.Peers()) == n-1 })
		for _, h := range hosts {
			if h == c {
				continue
			}
			want := h.Lease()
			if got := peersOf(c)[want.HostID]; got != want {
				t.Errorf("%s sees %s as %+v, want %+v", c.Lease().HostID, want.HostID, got, want)
			}
			waitFor(t, 5*time.Second, "an added event", func() bool { return recs[i].count(cluster.PeerAdded, want.HostID) == 1 })
		}
	}
	cfg := hostConfig(t, endpoints, 9, time.Minute, nil)
	cfg.NetworkCIDR = netip.MustParsePrefix("10.240.0.0/22")
	if _, err := cfg.join(context.Background()); !errors.Is(err, cluster.ErrNoSubnet) {
		t.Fatalf("a fifth host on four subnets: err %v, want ErrNoSubnet", err)
	}
}

// The environment variables that make the test binary a helper host.
const (
	helperEnv     = "SYTEST_CLUSTER_HELPER"
	helperEtcd    = "SYTEST_CLUSTER_ETCD"
	helperPrevEnv = "SYTEST_CLUSTER_PREVIOUS"
)

// TestHelperHost is not a test: run by startHelper in a child process, it
// joins as host 3 with a 2-second TTL, prints its subnet and waits to be
// killed.
func TestHelperHost(t *testing.T) {
	if os.Getenv(helperEnv) == "" {
		t.Skip("helper process for TestKilledHostExpires")
	}
	cfg := hostConfig(t, []string{os.Getenv(helperEtcd)}, 3, 2*time.Second, nil)
	if p := os.Getenv(helperPrevEnv); p != "" {
		cfg.PreviousSubnet = netip.MustParsePrefix(p)
	}
	c, err := cfg.join(context.Background())
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("joined", c.Lease().Subnet)
	time.Sleep(time.Minute) // killed long before
	os.Exit(2)
}

// startHelper runs TestHelperHost in a child process and returns it with
// the subnet it leased. The child is killed (by PID) when the test ends,
// if it still runs.
func startHelper(t *testing.T, endpoints []string, previous netip.Prefix) (*exec.Cmd, netip.Prefix) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHost$", "-test.v=false")
	cmd.Env = append(os.Environ(), helperEnv+"=1", helperEtcd+"="+endpoints[0])
	if previous.IsValid() {
		cmd.Env = append(cmd.Env, helperPrevEnv+"="+previous.String())
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	line := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			if strings.HasPrefix(s.Text(), "joined ") || strings.HasPrefix(s.Text(), "error ") {
				line <- s.Text()
				return
			}
		}
		close(line)
	}()
	select {
	case l, ok := <-line:
		p, err := netip.ParsePrefix(strings.TrimPrefix(l, "joined "))
		if !ok || err != nil {
			t.Fatalf("helper host: %q", l)
		}
		return cmd, p
	case <-time.After(20 * time.Second):
		t.Fatal("helper host did not join within 20 s")
	}
	return nil, netip.Prefix{}
}

// A host killed with SIGKILL stops renewing its lease: the others drop it
// once its TTL has run out, not before. Restarted with the same HostID, it
// gets its subnet back, and the others add it again.
func TestKilledHostExpires(t *testing.T) {
	endpoints := startEtcd(t)
	ra, rb := &recorder{}, &recorder{}
	a := join(t, hostConfig(t, endpoints, 1, 2*time.Second, ra))
	b := join(t, hostConfig(t, endpoints, 2, 2*time.Second, rb))
	helper, subnet := startHelper(t, endpoints, netip.Prefix{})
	waitFor(t, 10*time.Second, "a and b to see host 3", func() bool {
		return peersOf(a)["host-3"].Subnet == subnet && peersOf(b)["host-3"].Subnet == subnet
	})

	if err := helper.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	helper.Wait()
	killed := time.Now()
	waitFor(t, 15*time.Second, "a and b to drop host 3", func() bool {
		return ra.count(cluster.PeerRemoved, "host-3") == 1 && rb.count(cluster.PeerRemoved, "host-3") == 1
	})
	took := time.Since(killed)
	t.Logf("the killed host was dropped %v after the kill (TTL 2 s)", took)
	if took < time.Second {
		t.Errorf("dropped %v after the kill, before its TTL could have run out", took)
	}
	if _, ok := peersOf(a)["host-3"]; ok {
		t.Error("a still lists host 3")
	}
	if len(a.Peers()) != 1 || len(b.Peers()) != 1 {
		t.Errorf("peers after the kill: a %v, b %v", a.Peers(), b.Peers())
	}

	_, again := startHelper(t, endpoints, subnet)
	if again != subnet {
		t.Fatalf("restarted host got %s, want its old %s", again, subnet)
	}
	waitFor(t, 10*time.Second, "a to add host 3 again", func() bool { return ra.count(cluster.PeerAdded, "host-3") == 2 })
}

// A host restarted within its TTL finds its own key and keeps its subnet;
// the others see no change, or, if its endpoint moved, the old endpoint
// removed and the new one added.
func TestRestartWithinTTLKeepsSubnet(t *testing.T) {
	endpoints := startEtcd(t)
	rb := &recorder{}
	cfgA := hostConfig(t, endpoints, 1, time.Minute, nil)
	a := join(t, cfgA)
	b := join(t, hostConfig(t, endpoints, 2, time.Minute, rb))
	subnet := a.Lease().Subnet
	a.Close()

	a2 := join(t, cfgA)
	if got := a2.Lease().Subnet; got != subnet {
		t.Fatalf("restarted host got %s, want %s", got, subnet)
	}
	time.Sleep(300 * time.Millisecond)
	if n := rb.count(cluster.PeerRemoved, "host-1"); n != 0 {
		t.Fatalf("b saw host-1 removed %d times across a restart within the TTL", n)
	}
	a2.Close()

	cfgA.PublicAddr = netip.MustParseAddrPort("10.213.0.99:4789")
	a3 := join(t, cfgA)
	if got := a3.Lease().Subnet; got != subnet {
		t.Fatalf("host restarted with a new endpoint got %s, want %s", got, subnet)
	}
	waitFor(t, 5*time.Second, "b to see the new endpoint", func() bool { return peersOf(b)["host-1"].PublicAddr == cfgA.PublicAddr })
	if rb.count(cluster.PeerRemoved, "host-1") != 1 || rb.count(cluster.PeerAdded, "host-1") != 2 {
		t.Errorf("b's events %+v, want host-1 added, removed (old endpoint), added (new)", rb.snapshot())
	}
}

// After its lease expired, a restarted host takes its remembered subnet
// again if it is free; if another host took it meanwhile, it gets another
// one and nobody loses theirs.
func TestRestartAfterExpiry(t *testing.T) {
	endpoints := startEtcd(t)
	rb := &recorder{}
	cfgA := hostConfig(t, endpoints, 1, 2*time.Second, nil)
	a := join(t, cfgA)
	join(t, hostConfig(t, endpoints, 2, 2*time.Second, rb))
	subnet := a.Lease().Subnet
	a.Close()
	waitFor(t, 15*time.Second, "host-1's lease to expire", func() bool { return rb.count(cluster.PeerRemoved, "host-1") == 1 })

	cfgA.PreviousSubnet = subnet
	a2 := join(t, cfgA)
	if got := a2.Lease().Subnet; got != subnet {
		t.Fatalf("restarted host got %s, want its free old subnet %s", got, subnet)
	}
	a2.Close()
	waitFor(t, 15*time.Second, "host-1's lease to expire again", func() bool { return rb.count(cluster.PeerRemoved, "host-1") == 2 })

	thief := hostConfig(t, endpoints, 3, time.Minute, nil)
	thief.PreviousSubnet = subnet
	if got := join(t, thief).Lease().Subnet; got != subnet {
		t.Fatalf("host-3 asked for the free %s and got %s", subnet, got)
	}
	a3 := join(t, cfgA)
	if got := a3.Lease().Subnet; got == subnet || !testNet.Contains(got.Addr()) {
		t.Fatalf("host-1 got %s; want another subnet of %s than host-3's %s", got, testNet, subnet)
	}
}

// Leave revokes the lease: the others drop the host at once, long before
// its TTL.
func TestLeaveRevokesAtOnce(t *testing.T) {
	endpoints := startEtcd(t)
	ra := &recorder{}
	join(t, hostConfig(t, endpoints, 1, time.Hour, ra))
	b := join(t, hostConfig(t, endpoints, 2, time.Hour, nil))
	waitFor(t, 5*time.Second, "host-1 to see host-2", func() bool { return ra.count(cluster.PeerAdded, "host-2") == 1 })
	if err := b.Leave(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "host-1 to drop host-2", func() bool { return ra.count(cluster.PeerRemoved, "host-2") == 1 })
}

// If the lease is lost (here revoked behind the host's back, as an expiry
// during an etcd outage would), the host takes one again, with the same
// subnet if free, and says so.
func TestLostLeaseIsTakenAgain(t *testing.T) {
	endpoints := startEtcd(t)
	ra := &recorder{}
	// The client sends a keep-alive every third of the TTL; the host
	// notices the loss at the next one.
	a := join(t, hostConfig(t, endpoints, 1, 3*time.Second, ra))
	subnet := a.Lease().Subnet
	cli := etcdClient(t, endpoints)
	key := "/switchyard/networks/web/subnets/" + strings.Replace(subnet.String(), "/", "-", 1)
	resp, err := cli.Get(context.Background(), key)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("get %s: %v %v", key, resp, err)
	}
	if _, err := cli.Revoke(context.Background(), clientv3LeaseID(resp.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "the lease to be taken again", func() bool { return ra.count(cluster.LeaseChanged, "host-1") == 1 })
	if got := a.Lease().Subnet; got != subnet {
		t.Errorf("lease taken again with %s, want %s", got, subnet)
	}
	resp, err = cli.Get(context.Background(), key)
	if err != nil || len(resp.Kvs) != 1 || !strings.Contains(string(resp.Kvs[0].Value), "host-1") {
		t.Fatalf("key %s after recovery: %v %v", key, resp, err)
	}
}

// Hosts that cut the network differently are refused with a message that
// names both configurations.
func TestConfigMismatch(t *testing.T) {
	endpoints := startEtcd(t)
	join(t, hostConfig(t, endpoints, 1, time.Minute, nil))
	cfg := hostConfig(t, endpoints, 2, time.Minute, nil)
	cfg.SubnetLen = 25
	_, err := cfg.join(context.Background())
	if !errors.Is(err, cluster.ErrConfigMismatch) || !strings.Contains(err.Error(), "/25") || !strings.Contains(err.Error(), "/24") {
		t.Fatalf("err %v, want ErrConfigMismatch naming /24 and /25", err)
	}
}

// closeCounter is a Backend that is never called but closed.
type closeCounter struct {
	cluster.Backend
	closed int
}

func (c *closeCounter) Close() error { c.closed++; return nil }

// A bad configuration is refused before etcd is asked, naming what is
// wrong, and the Backend is closed all the same.
func TestJoinRefusesBadConfig(t *testing.T) {
	base := cluster.Config{
		Network: "web", NetworkCIDR: testNet, SubnetLen: 24,
		PublicAddr: netip.MustParseAddrPort("10.213.0.1:4789"), HostID: "h",
	}
	for _, tc := range []struct {
		name string
		mod  func(*cluster.Config)
		want string
	}{
		{"name", func(c *cluster.Config) { c.Network = "a/b" }, "network name"},
		{"host", func(c *cluster.Config) { c.HostID = "" }, "host ID"},
		{"public", func(c *cluster.Config) { c.PublicAddr = netip.MustParseAddrPort("0.0.0.0:4789") }, "public address"},
		{"backend", func(c *cluster.Config) { c.Backend = nil }, "etcd backend"},
		{"cidr", func(c *cluster.Config) { c.NetworkCIDR = netip.Prefix{} }, "network CIDR"},
		{"len", func(c *cluster.Config) { c.SubnetLen = 16 }, "subnet length"},
		{"huge", func(c *cluster.Config) { c.NetworkCIDR = netip.MustParsePrefix("fd00::/64"); c.SubnetLen = 120 }, "2^56"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			b := &closeCounter{}
			cfg.Backend = b
			tc.mod(&cfg)
			_, err := cluster.Join(context.Background(), cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one mentioning %q", err, tc.want)
			}
			if cfg.Backend != nil && b.closed != 1 {
				t.Fatalf("backend closed %d times, want once", b.closed)
			}
		})
	}
}

// Hosts join an etcd that wants TLS with client certificates and a
// password, and find each other.
func TestJoinOverTLSWithAuth(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Config{TLS: true, Auth: true})
	ra := &recorder{}
	hosts := []host{hostConfig(t, nil, 1, time.Minute, ra), hostConfig(t, nil, 2, time.Minute, nil)}
	var cs []*cluster.Cluster
	for _, h := range hosts {
		h.dial = cluster.Dial{Endpoints: []string{srv.URL}, CACert: srv.Certs.CA, Cert: srv.Certs.ClientCert,
			Key: srv.Certs.ClientKey, Username: "root", Password: srv.Password}
		cs = append(cs, join(t, h))
	}
	waitFor(t, 10*time.Second, "host-1 to see host-2", func() bool { return ra.count(cluster.PeerAdded, "host-2") == 1 })
	if got, want := peersOf(cs[0])["host-2"], cs[1].Lease(); got != want {
		t.Fatalf("host-1 sees host-2 as %+v, want %+v", got, want)
	}
}
