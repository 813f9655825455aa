package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/testing/clitest"
	"github.com/switchyard-net/switchyard/testing/etcdtest"
	"github.com/switchyard-net/switchyard/testing/netnstest"
	"github.com/switchyard-net/switchyard/testing/runtimetest"
)

// A Kubernetes-style pair of nodes (docs/runtimes-cni.md, "Kubernetes"):
// each node's daemon has the pod network joined by the tunnel, with
// per-node subnet leases in etcd; the same conflist on both nodes names
// that network; cnitool attaches a pod on each node, and the pods reach
// each other across the tunnel.
//
//	node1 10.213.211.1 ─┐
//	node2 10.213.211.2 ─┴─ br0 in wire (10.213.211.254, etcd)
func TestTwoNodesThroughTheTunnel(t *testing.T) {
	tool := runtimetest.Cnitool(t)
	const wireAddr = "10.213.211.254"
	wire := netnstest.New(t)
	wire.MustRun("ip", "link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0")
	wire.MustRun("ip", "addr", "add", wireAddr+"/24", "dev", "br0")
	wire.MustRun("ip", "link", "set", "br0", "up")
	etcd := etcdtest.Start(t, etcdtest.Config{
		NetNS: wire.Path, ClientAddr: wireAddr + ":2379", PeerAddr: wireAddr + ":2380",
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return wire.Dial(ctx, network, addr)
		},
	})
	cluster := "etcd://" + strings.TrimPrefix(etcd.URL, "http://")

	type node struct {
		ns      *netnstest.NS
		d       *clitest.Daemon
		env     []string
		pod     *netnstest.NS
		podAddr string
	}
	var nodes []*node
	for i := range 2 {
		addr := fmt.Sprintf("10.213.211.%d", i+1)
		n := &node{ns: netnstest.New(t), pod: netnstest.New(t)}
		port := fmt.Sprintf("n%d", i+1)
		wire.MustRun("ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", n.ns.Name)
		wire.MustRun("ip", "link", "set", port, "master", "br0", "up")
		n.ns.MustRun("ip", "addr", "add", addr+"/24", "dev", "eth0")
		n.ns.MustRun("ip", "link", "set", "eth0", "up")
		n.d = clitest.NewDaemon(t)
		n.d.Wrap = []string{"nsenter", "--net=" + n.ns.Path}
		n.d.Start()
		// The node's set-up (a systemd unit in production): the pod
		// network, tunnelled, with this node's lease from etcd.
		n.d.MustRun("network", "create", "pods", "--subnet", "10.244.0.0/16", "--tunnel", "vxlan",
			"--tunnel-listen", addr+":4789", "--cluster", cluster, "--lease-ttl", "30s")
		dir := t.TempDir()
		bin, conf := filepath.Join(dir, "bin"), filepath.Join(dir, "net.d")
		for _, d := range []string{bin, conf} {
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Symlink(n.d.Bin, filepath.Join(bin, "switchyard")); err != nil {
			t.Fatal(err)
		}
		conflist := fmt.Sprintf(`{"cniVersion": "1.0.0", "name": "k8s-pod-network", "plugins": [
			{"type": "switchyard", "network": "pods", "socket": %q, "capabilities": {"portMappings": true}}]}`, n.d.Socket)
		if err := os.WriteFile(filepath.Join(conf, "10-switchyard.conflist"), []byte(conflist), 0o644); err != nil {
			t.Fatal(err)
		}
		n.env = []string{"CNI_PATH=" + bin, "NETCONFPATH=" + conf,
			fmt.Sprintf("CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod%d", i+1)}
		nodes = append(nodes, n)
	}
	for _, n := range nodes {
		waitTunnelPeers(t, n.d, "pods", 1)
		out, err := run(t, n.env, tool, "add", "k8s-pod-network", n.pod.Path)
		if err != nil {
			t.Fatalf("cnitool add: %v\n%s", err, out)
		}
		var res struct{ IPs []struct{ Address string } }
		if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.IPs) != 1 {
			t.Fatalf("cnitool add printed %s (%v)", out, err)
		}
		n.podAddr, _, _ = strings.Cut(res.IPs[0].Address, "/")
	}
	if nodes[0].podAddr == nodes[1].podAddr {
		t.Fatalf("both pods got %s", nodes[0].podAddr)
	}
	if err := nodes[0].pod.Ping(nodes[1].podAddr, 3); err != nil {
		t.Errorf("pod on node1 → pod on node2 (%s) through the tunnel: %v", nodes[1].podAddr, err)
	}
	for _, n := range nodes {
		if out, err := run(t, n.env, tool, "del", "k8s-pod-network", n.pod.Path); err != nil {
			t.Fatalf("cnitool del: %v\n%s", err, out)
		}
		var eps []api.Endpoint
		if err := json.Unmarshal([]byte(n.d.MustRun("endpoint", "ls", "--format", "json")), &eps); err != nil || len(eps) != 0 {
			t.Errorf("endpoints after del: %+v (%v)", eps, err)
		}
	}
}

// waitTunnelPeers waits until d's tunnel on network has want peers.
func waitTunnelPeers(t *testing.T, d *clitest.Daemon, network string, want int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var tn api.Tunnel
		if err := json.Unmarshal([]byte(d.MustRun("tunnel", "ls", network, "--format", "json")), &tn); err != nil {
			t.Fatal(err)
		}
		if len(tn.Peers) >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("tunnel of %s has %d peers after 20s, want %d", network, len(tn.Peers), want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
