package cluster_test

import (
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/switchyard-net/switchyard/testing/etcdtest"
)

// startEtcd runs a single-member etcd server for the test on free
// loopback ports (testing/etcdtest) and returns its client URLs.
func startEtcd(t *testing.T) []string {
	t.Helper()
	return []string{etcdtest.Start(t, etcdtest.Config{}).URL}
}

// etcdClient returns a client of the test's server, closed at the end:
// the tests use etcd's own client to act behind the Cluster's back.
func etcdClient(t *testing.T, endpoints []string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func clientv3LeaseID(id int64) clientv3.LeaseID { return clientv3.LeaseID(id) }
