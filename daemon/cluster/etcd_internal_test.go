package cluster

import (
	"bytes"
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/testing/etcdtest"
)

func TestPrefixEnd(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []byte
	}{
		{"/switchyard/web/subnets/", []byte("/switchyard/web/subnets0")},
		{"a", []byte("b")},
		{"a\xff", []byte("b")},
		{"\xff\xff", []byte{0}},
	} {
		if got := prefixEnd(c.in); !bytes.Equal(got, c.want) {
			t.Errorf("prefixEnd(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// The gateway client against a real etcd: a dead endpoint is skipped, an
// error etcd answers with comes back as one (not as "unreachable"), a
// conditional put wins once, a revoked lease reads as gone, and a watch
// sees a put and a delete in order.
func TestEtcdGatewayClient(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Config{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close() // nothing listens there now
	e, err := newEtcd([]string{dead, srv.URL}, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer e.close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	id, err := e.grant(ctx, 30)
	if err != nil {
		t.Fatalf("grant through a dead endpoint and a live one: %v", err)
	}
	var ee *etcdError
	if err := e.revoke(ctx, id+12345); !errors.As(err, &ee) || ee.Code != 5 {
		t.Fatalf("revoke of an unknown lease: %v, want etcd's NotFound (code 5)", err)
	}

	var wg sync.WaitGroup
	wctx, wcancel := context.WithCancel(ctx)
	defer func() { wcancel(); wg.Wait() }()
	rev, _, err := e.rangePrefix(ctx, "/t/")
	if err != nil {
		t.Fatal(err)
	}
	events := e.watch(wctx, "/t/", rev+1, &wg)

	for i, want := range []bool{true, false} {
		won, _, err := e.txnPut(ctx, "/t/a", "v1", id, "CREATE", 0, false)
		if err != nil || won != want {
			t.Fatalf("create-if-absent #%d: won %v, err %v; want %v", i+1, won, err, want)
		}
	}
	won, kvs, err := e.txnPut(ctx, "/t/a", "v2", 0, "CREATE", 0, true)
	if err != nil || won || len(kvs) != 1 || string(kvs[0].Value) != "v1" || int64(kvs[0].Lease) != id {
		t.Fatalf("create-if-absent with get: won %v kvs %+v err %v; want the key's v1 under lease %d", won, kvs, err, id)
	}
	if ttl, err := e.keepAliveOnce(ctx, id); err != nil || ttl <= 0 {
		t.Fatalf("keep-alive of a live lease: ttl %d err %v", ttl, err)
	}
	if err := e.revoke(ctx, id); err != nil {
		t.Fatal(err)
	}
	if ttl, err := e.keepAliveOnce(ctx, id); err != nil || ttl != 0 {
		t.Fatalf("keep-alive of a revoked lease: ttl %d err %v, want 0", ttl, err)
	}
	if _, kvs, err := e.rangePrefix(ctx, "/t/"); err != nil || len(kvs) != 0 {
		t.Fatalf("keys after revoking their lease: %+v %v, want none", kvs, err)
	}

	var got []string
	for len(got) < 2 {
		select {
		case r, ok := <-events:
			if !ok || r.Err != nil {
				t.Fatalf("watch ended: %v", r.Err)
			}
			for _, ev := range r.Events {
				got = append(got, map[bool]string{false: "put ", true: "delete "}[ev.Delete]+string(ev.KV.Key))
			}
		case <-ctx.Done():
			t.Fatalf("watch saw %v, want a put and a delete", got)
		}
	}
	if got[0] != "put /t/a" || got[1] != "delete /t/a" {
		t.Fatalf("watch saw %v, want [put /t/a delete /t/a]", got)
	}
}
