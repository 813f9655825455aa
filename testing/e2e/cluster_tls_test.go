package e2e_test

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/testing/etcdtest"
)

// TestTunnelClusterTLS is TestTunnelCluster against an etcd that wants
// TLS with client certificates and a password: two daemons join with
// the certificates and a password file, find each other and carry a
// ping; a create without the client certificate is refused with an
// error that says what to check; a daemon restarted rejoins with the
// stored settings and keeps its lease.
func TestTunnelClusterTLS(t *testing.T) {
	hs := newHosts(t, 2)
	etcd := etcdtest.Start(t, etcdtest.Config{
		NetNS: hs.wire.Path, ClientAddr: wireAddr + ":2379", PeerAddr: wireAddr + ":2380", TLS: true, Auth: true,
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return hs.wire.Dial(ctx, network, addr)
		},
	})
	pw := filepath.Join(t.TempDir(), "etcd-password")
	if err := os.WriteFile(pw, []byte(etcd.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cluster := "etcds://" + strings.TrimPrefix(etcd.URL, "https://")
	create := []string{"network", "create", "flat", "--subnet", "10.253.0.0/16", "--tunnel", "vxlan",
		"--cluster", cluster, "--lease-ttl", "3s", "--etcd-cacert", etcd.Certs.CA,
		"--etcd-user", "root", "--etcd-password-file", pw, "--format", "json"}
	withCert := []string{"--etcd-cert", etcd.Certs.ClientCert, "--etcd-key", etcd.Certs.ClientKey}

	r := hs.h[0].d.Run(append(create, "--tunnel-listen", hs.h[0].addr+":4789")...)
	if r.Code == 0 || !strings.Contains(r.Stderr, "client certificate") {
		t.Fatalf("create without a client certificate: %v; want it refused, naming the client certificate", r)
	}
	subnets := map[string]bool{}
	for _, h := range hs.h {
		var n api.Network
		out := h.d.MustRun(append(append(create, withCert...), "--tunnel-listen", h.addr+":4789")...)
		if err := json.Unmarshal([]byte(out), &n); err != nil {
			t.Fatal(err)
		}
		if n.Tunnel == nil || n.Tunnel.HostSubnet.Bits() != 24 || subnets[n.Tunnel.HostSubnet.String()] {
			t.Fatalf("host %s: network %+v, want a /24 lease of its own", h.addr, n)
		}
		subnets[n.Tunnel.HostSubnet.String()] = true
	}
	waitPeers(t, hs.h[0], "flat", 1)
	waitPeers(t, hs.h[1], "flat", 1)
	c1, _ := hs.h[0].container(t, "flat", "c1")
	_, addr2 := hs.h[1].container(t, "flat", "c2")
	if err := c1.Ping(addr2, 2); err != nil {
		t.Fatalf("host1 → host2 through peers found in etcd over TLS: %v", err)
	}

	before := tunnelOf(t, hs.h[1].d, "flat").HostSubnet
	hs.h[1].d.Kill9()
	waitPeers(t, hs.h[0], "flat", 0) // the lease expired (3 s TTL)
	hs.h[1].d.Start()
	if got := tunnelOf(t, hs.h[1].d, "flat").HostSubnet; got != before {
		t.Errorf("host2 restarted with lease %s, want its %s back", got, before)
	}
	waitPeers(t, hs.h[0], "flat", 1)
	if err := c1.Ping(addr2, 3); err != nil {
		t.Errorf("host1 → host2 after host2's restart: %v", err)
	}
}
