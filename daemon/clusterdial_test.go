package daemon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/daemon/cluster"
)

// A daemon without an etcd client (the CLI binary's) refuses a cluster
// network, naming the binary that serves one, and keeps nothing of it.
func TestClusterNeedsTheDaemonBinary(t *testing.T) {
	e := newEnv(t)
	listen := "127.0.0.1:" + strconv.Itoa(freeUDPPort(t))
	_, err := e.d.CreateNetwork(context.Background(), api.NetworkCreate{Name: "c", Subnet: "10.9.0.0/16",
		Tunnel: "vxlan", TunnelListen: listen, Cluster: "etcd://127.0.0.1:2379"})
	if !errors.Is(err, ErrNoCluster) || !strings.Contains(err.Error(), "switchyardd") {
		t.Fatalf("err %v, want ErrNoCluster naming switchyardd", err)
	}
	if ns := e.d.Networks(); len(ns) != 0 {
		t.Fatalf("networks after a refused create: %+v", ns)
	}
}

// The daemon hands its Cluster hook the request's endpoints, TLS files,
// user and the password read from its file.
func TestClusterDialCarriesTLSAndAuth(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	files := map[string]string{"ca.pem": "ca", "cert.pem": "cert", "key.pem": "key", "pw": "s3cret\nignored\n"}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	refused := errors.New("refused by the test")
	var got cluster.Dial
	cfg := e.config()
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.Cluster = func(_ context.Context, d cluster.Dial) (cluster.Backend, error) {
		got = d
		return nil, refused
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	listen := "127.0.0.1:" + strconv.Itoa(freeUDPPort(t))
	_, err = d.CreateNetwork(context.Background(), api.NetworkCreate{Name: "c", Subnet: "10.9.0.0/16",
		Tunnel: "vxlan", TunnelListen: listen, Cluster: "etcds://127.0.0.1:2379,[::1]:2379",
		EtcdCACert: filepath.Join(dir, "ca.pem"), EtcdCert: filepath.Join(dir, "cert.pem"), EtcdKey: filepath.Join(dir, "key.pem"),
		EtcdUser: "root", EtcdPasswordFile: filepath.Join(dir, "pw")})
	if !errors.Is(err, refused) {
		t.Fatalf("err %v, want the hook's", err)
	}
	want := cluster.Dial{Endpoints: []string{"https://127.0.0.1:2379", "https://[::1]:2379"},
		CACert: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, "cert.pem"), Key: filepath.Join(dir, "key.pem"),
		Username: "root", Password: "s3cret", Timeout: clusterTimeout / 2}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("dial %+v, want %+v", got, want)
	}
}
