package etcdv3_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/switchyard-net/switchyard/daemon/cluster"
	"github.com/switchyard-net/switchyard/daemon/cluster/etcdv3"
	"github.com/switchyard-net/switchyard/testing/etcdtest"
)

// deadURL is a loopback URL nothing listens on.
func deadURL(t *testing.T, scheme string) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return scheme + "://" + l.Addr().String()
}

func dial(t *testing.T, d cluster.Dial) *etcdv3.Backend {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, err := etcdv3.New(ctx, d, zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("dial %+v: %v", d, err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// The backend against a real etcd, with a dead endpoint listed first: a
// conditional put wins once, a failed one returns the key, a revoked
// lease ends its keep-alive and its keys, and a watch sees a put and a
// delete in order.
func TestBackend(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Config{})
	b := dial(t, cluster.Dial{Endpoints: []string{deadURL(t, "http"), srv.URL}, Timeout: 5 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	id, err := b.Grant(ctx, 30)
	if err != nil {
		t.Fatalf("grant through a dead endpoint and a live one: %v", err)
	}
	rev, _, err := b.Range(ctx, "/t/")
	if err != nil {
		t.Fatal(err)
	}
	events := b.Watch(ctx, "/t/", rev+1)
	for i, want := range []bool{true, false} {
		won, _, err := b.PutIf(ctx, "/t/a", "v1", id, cluster.CreateRevision, 0, false)
		if err != nil || won != want {
			t.Fatalf("create-if-absent #%d: won %v, err %v; want %v", i+1, won, err, want)
		}
	}
	won, kvs, err := b.PutIf(ctx, "/t/a", "v2", 0, cluster.CreateRevision, 0, true)
	if err != nil || won || len(kvs) != 1 || string(kvs[0].Value) != "v1" || kvs[0].Lease != id {
		t.Fatalf("create-if-absent with get: won %v kvs %+v err %v; want the key's v1 under lease %d", won, kvs, err, id)
	}
	if won, _, err := b.PutIf(ctx, "/t/a", "v3", id, cluster.ModRevision, kvs[0].ModRevision, false); err != nil || !won {
		t.Fatalf("put at the key's revision: won %v err %v", won, err)
	}
	if won, _, err := b.PutIf(ctx, "/t/a", "v4", id, cluster.ModRevision, kvs[0].ModRevision, false); err != nil || won {
		t.Fatalf("put at the key's revision before the last change: won %v err %v, want lost", won, err)
	}
	revokeEndsKeepAlive(ctx, t, b, id)
	if _, kvs, err := b.Range(ctx, "/t/"); err != nil || len(kvs) != 0 {
		t.Fatalf("keys after revoking their lease: %+v %v, want none", kvs, err)
	}
	if got := watched(ctx, t, events, 3); got != "put /t/a=v1,put /t/a=v3,delete /t/a=" {
		t.Fatalf("watch saw %s, want put /t/a=v1,put /t/a=v3,delete /t/a=", got)
	}
}

// revokeEndsKeepAlive revokes lease id while it is kept alive, and
// checks that the keep-alive ends.
func revokeEndsKeepAlive(ctx context.Context, t *testing.T, b *etcdv3.Backend, id int64) {
	t.Helper()
	kctx, kcancel := context.WithCancel(ctx)
	defer kcancel()
	alive := b.KeepAlive(kctx, id)
	if err := b.Revoke(ctx, id); err != nil {
		t.Fatal(err)
	}
	select {
	case <-alive:
	case <-ctx.Done():
		t.Fatal("keep-alive of a revoked lease did not end")
	}
}

// watched reads n events from events and writes them as one string.
func watched(ctx context.Context, t *testing.T, events <-chan cluster.WatchResponse, n int) string {
	t.Helper()
	var got []string
	for len(got) < n {
		select {
		case r, ok := <-events:
			if !ok || r.Err != nil {
				t.Fatalf("watch ended after %v: %v", got, r.Err)
			}
			for _, ev := range r.Events {
				got = append(got, map[bool]string{false: "put ", true: "delete "}[ev.Delete]+string(ev.KV.Key)+"="+string(ev.KV.Value))
			}
		case <-ctx.Done():
			t.Fatalf("watch saw %v, want %d events", got, n)
		}
	}
	return strings.Join(got, ",")
}

// With nothing listening, New gives up within its timeout and says what
// to check.
func TestUnreachable(t *testing.T) {
	start := time.Now()
	_, err := etcdv3.New(context.Background(), cluster.Dial{Endpoints: []string{deadURL(t, "http")}, Timeout: time.Second}, nil)
	if err == nil || !strings.Contains(err.Error(), "is etcd running there") {
		t.Fatalf("err %v, want one asking whether etcd runs", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("New took %v with a 1 s timeout", d)
	}
}

// An etcd with TLS, client certificates and auth: the right certificates
// and password get in; no client certificate, a wrong password, or a
// plain http:// URL do not, each with an error that says so.
func TestTLSAndAuth(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Config{TLS: true, Auth: true})
	good := cluster.Dial{
		Endpoints: []string{srv.URL}, CACert: srv.Certs.CA, Cert: srv.Certs.ClientCert, Key: srv.Certs.ClientKey,
		Username: "root", Password: srv.Password, Timeout: 3 * time.Second,
	}
	b := dial(t, good)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if won, _, err := b.PutIf(ctx, "/t/tls", "v", 0, cluster.CreateRevision, 0, false); err != nil || !won {
		t.Fatalf("put over TLS with auth: won %v err %v", won, err)
	}

	for _, tc := range []struct {
		name string
		mod  func(*cluster.Dial)
		want string
	}{
		{"no client certificate", func(d *cluster.Dial) { d.Cert, d.Key = "", "" }, "client certificate"},
		{"wrong password", func(d *cluster.Dial) { d.Password = "wrong" }, "authentication failed"},
		{"no password", func(d *cluster.Dial) { d.Username, d.Password = "", "" }, "give the user and its password"},
		{"http URL", func(d *cluster.Dial) { d.Endpoints = []string{strings.Replace(srv.URL, "https:", "http:", 1)} }, "want a https:// URL"},
		{"cert without key", func(d *cluster.Dial) { d.Key = "" }, "want both or neither"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := good
			tc.mod(&d)
			b, err := etcdv3.New(context.Background(), d, zaptest.NewLogger(t))
			if err == nil {
				b.Close()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}
