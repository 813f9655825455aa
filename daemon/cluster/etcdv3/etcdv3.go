// Package etcdv3 is the cluster.Backend of the daemon: etcd's own Go
// client (go.etcd.io/etcd/client/v3), which brings TLS with client
// certificates, etcd's auth (user and password), failover between
// endpoints, lease keep-alives and watches.
//
// It links gRPC and protobuf, whose initialisation and size would slow
// every start of the CLI and of `switchyard run`; so only the daemon
// binary, switchyardd, imports this package (benchmarks/RESULTS.md,
// "Start-up").
package etcdv3

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/switchyard-net/switchyard/daemon/cluster"
)

// Backend is a cluster.Backend on a clientv3.Client.
type Backend struct {
	c  *clientv3.Client
	wg sync.WaitGroup // the keep-alive and watch relays
}

var _ cluster.Backend = (*Backend)(nil)

// New connects to etcd as d says: TLS if d names a CA or a client
// certificate (every endpoint must then be https://), and logged in if d
// names a user. It checks that etcd answers, so that a refused
// certificate or password is reported here, naming the endpoints.
func New(ctx context.Context, d cluster.Dial, log *zap.Logger) (*Backend, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if d.Timeout <= 0 {
		d.Timeout = cluster.DefaultDialTimeout
	}
	eps, err := endpoints(d)
	if err != nil {
		return nil, err
	}
	cfg := clientv3.Config{
		Endpoints: eps, DialTimeout: d.Timeout, Username: d.Username, Password: d.Password,
		Logger: log.Named("etcd").WithOptions(zap.IncreaseLevel(zap.WarnLevel)), Context: context.Background(),
	}
	if d.TLS() {
		if cfg.TLS, err = tlsConfig(d); err != nil {
			return nil, err
		}
	}
	c, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcd at %s: %w", strings.Join(eps, ","), explain(err, d))
	}
	b := &Backend{c: c}
	// clientv3 connects lazily: ask once, so that a refused certificate
	// or an unreachable etcd says so now rather than as a stalled call.
	cctx, cancel := context.WithTimeout(ctx, d.Timeout)
	defer cancel()
	if _, err := c.Get(cctx, "/", clientv3.WithCountOnly()); err != nil {
		c.Close()
		return nil, fmt.Errorf("etcd at %s: %w", strings.Join(eps, ","), explain(err, d))
	}
	return b, nil
}

// endpoints checks d's URLs against its TLS setting.
func endpoints(d cluster.Dial) ([]string, error) {
	if len(d.Endpoints) == 0 {
		return nil, errors.New("no etcd endpoints")
	}
	want := "http"
	if d.TLS() {
		want = "https"
	}
	for _, ep := range d.Endpoints {
		u, err := url.Parse(ep)
		if err != nil || u.Host == "" || u.Scheme != want {
			return nil, fmt.Errorf("etcd endpoint %q: want a %s:// URL like %s://10.0.0.5:2379", ep, want, want)
		}
	}
	return d.Endpoints, nil
}

// tlsConfig loads d's CA and client certificate.
func tlsConfig(d cluster.Dial) (*tls.Config, error) {
	if (d.Cert == "") != (d.Key == "") {
		return nil, fmt.Errorf("etcd client certificate %q and key %q: want both or neither", d.Cert, d.Key)
	}
	for _, f := range []string{d.CACert, d.Cert, d.Key} {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("etcd TLS: %w", err)
		}
	}
	info := transport.TLSInfo{TrustedCAFile: d.CACert, CertFile: d.Cert, KeyFile: d.Key}
	cfg, err := info.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("etcd TLS (ca %q, cert %q, key %q): %w", d.CACert, d.Cert, d.Key, err)
	}
	return cfg, nil
}

// explain adds what to check to an error of the first call.
func explain(err error, d cluster.Dial) error {
	if errors.Is(err, context.DeadlineExceeded) {
		hint := "is etcd running there"
		if d.TLS() {
			hint += ", does its certificate verify against the CA, and does it accept this client certificate (etcd's --client-cert-auth)"
		} else {
			hint += ", and does it serve plain http (an etcd with TLS wants https:// and --etcd-cacert)"
		}
		return fmt.Errorf("no answer within %v (%s?): %w", d.Timeout, hint, err)
	}
	if errors.Is(err, rpctypes.ErrPermissionDenied) && d.Username == "" {
		return fmt.Errorf("%w (etcd's auth is on: give the user and its password)", err)
	}
	return err
}

// Close ends the client and waits for the relays.
func (b *Backend) Close() error {
	err := b.c.Close()
	b.wg.Wait()
	return err
}

// Range implements cluster.Backend.
func (b *Backend) Range(ctx context.Context, prefix string) (int64, []cluster.KV, error) {
	resp, err := b.c.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return 0, nil, err
	}
	kvs := make([]cluster.KV, len(resp.Kvs))
	for i, kv := range resp.Kvs {
		kvs[i] = cluster.KV{Key: kv.Key, Value: kv.Value, ModRevision: kv.ModRevision, Lease: kv.Lease}
	}
	return resp.Header.Revision, kvs, nil
}

// PutIf implements cluster.Backend.
func (b *Backend) PutIf(ctx context.Context, key, value string, lease int64, on cluster.Revision, rev int64, orGet bool) (bool, []cluster.KV, error) {
	cmp := clientv3.Compare(clientv3.CreateRevision(key), "=", rev)
	if on == cluster.ModRevision {
		cmp = clientv3.Compare(clientv3.ModRevision(key), "=", rev)
	}
	var opts []clientv3.OpOption
	if lease != 0 {
		opts = append(opts, clientv3.WithLease(clientv3.LeaseID(lease)))
	}
	txn := b.c.Txn(ctx).If(cmp).Then(clientv3.OpPut(key, value, opts...))
	if orGet {
		txn = txn.Else(clientv3.OpGet(key))
	}
	resp, err := txn.Commit()
	if err != nil {
		return false, nil, err
	}
	if resp.Succeeded || !orGet || len(resp.Responses) == 0 {
		return resp.Succeeded, nil, nil
	}
	var kvs []cluster.KV
	for _, kv := range resp.Responses[0].GetResponseRange().GetKvs() {
		kvs = append(kvs, cluster.KV{Key: kv.Key, Value: kv.Value, ModRevision: kv.ModRevision, Lease: kv.Lease})
	}
	return false, kvs, nil
}

// Grant implements cluster.Backend.
func (b *Backend) Grant(ctx context.Context, ttl int64) (int64, error) {
	resp, err := b.c.Grant(ctx, ttl)
	if err != nil {
		return 0, err
	}
	return int64(resp.ID), nil
}

// Revoke implements cluster.Backend.
func (b *Backend) Revoke(ctx context.Context, id int64) error {
	_, err := b.c.Revoke(ctx, clientv3.LeaseID(id))
	return err
}

// KeepAlive implements cluster.Backend with clientv3's keep-alive, which
// renews every third of the TTL and closes its channel when the lease is
// gone or could not be renewed within its TTL.
func (b *Backend) KeepAlive(ctx context.Context, id int64) <-chan struct{} {
	done := make(chan struct{})
	ch, err := b.c.KeepAlive(ctx, clientv3.LeaseID(id))
	if err != nil {
		close(done)
		return done
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		defer close(done)
		for range ch { // drained, as clientv3 asks
		}
	}()
	return done
}

// Watch implements cluster.Backend. The watch requires a leader: a member
// cut off from it ends the watch instead of going quiet.
func (b *Backend) Watch(ctx context.Context, prefix string, rev int64) <-chan cluster.WatchResponse {
	out := make(chan cluster.WatchResponse)
	wch := b.c.Watch(clientv3.WithRequireLeader(ctx), prefix, clientv3.WithPrefix(), clientv3.WithRev(rev))
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		defer close(out)
		for wr := range wch {
			r := cluster.WatchResponse{Revision: wr.Header.Revision, CompactRevision: wr.CompactRevision, Canceled: wr.Canceled, Err: wr.Err()}
			for _, ev := range wr.Events {
				r.Events = append(r.Events, cluster.WatchEvent{
					Delete: ev.Type == clientv3.EventTypeDelete,
					KV:     cluster.KV{Key: ev.Kv.Key, Value: ev.Kv.Value, ModRevision: ev.Kv.ModRevision, Lease: ev.Kv.Lease},
				})
			}
			select {
			case out <- r:
			case <-ctx.Done():
				return
			}
			if r.Err != nil || r.Canceled || r.CompactRevision != 0 {
				return
			}
		}
	}()
	return out
}
