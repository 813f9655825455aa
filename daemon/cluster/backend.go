package cluster

import (
	"context"
	"time"
)

// Backend is the slice of etcd's v3 API that a Cluster uses. Package
// daemon/cluster/etcdv3 implements it with etcd's own Go client (TLS,
// auth, failover between endpoints, keep-alives and watches); this
// package does not import that client, so that binaries which never
// join a cluster (the CLI, `switchyard run`) do not link gRPC.
//
// A Cluster owns its Backend: Close and Leave close it.
type Backend interface {
	// Range reads every key under prefix, at the returned revision.
	Range(ctx context.Context, prefix string) (rev int64, kvs []KV, err error)
	// PutIf puts key=value, under lease if not 0, if the key's revision
	// of kind on equals rev (CreateRevision 0: the key is absent). If it
	// does not and orGet is set, it returns the key's current state.
	PutIf(ctx context.Context, key, value string, lease int64, on Revision, rev int64, orGet bool) (bool, []KV, error)
	// Grant makes a lease of ttl seconds.
	Grant(ctx context.Context, ttl int64) (int64, error)
	// Revoke ends a lease and deletes its keys.
	Revoke(ctx context.Context, id int64) error
	// KeepAlive renews lease id until ctx ends or the lease is lost (etcd
	// says it is gone, or no renewal succeeded within its TTL); the
	// channel is closed then.
	KeepAlive(ctx context.Context, id int64) <-chan struct{}
	// Watch follows the keys under prefix from revision rev on. The
	// channel closes when ctx ends or the watch breaks; a response with
	// Err, Canceled or CompactRevision set is the last.
	Watch(ctx context.Context, prefix string, rev int64) <-chan WatchResponse
	// Close ends every call and goroutine of the Backend.
	Close() error
}

// Revision names which of a key's revisions PutIf compares.
type Revision uint8

const (
	// CreateRevision is the revision the key was created at; 0 if absent.
	CreateRevision Revision = iota
	// ModRevision is the revision of the key's last change.
	ModRevision
)

// KV is one key's state.
type KV struct {
	Key, Value  []byte
	ModRevision int64
	Lease       int64
}

// WatchEvent is one change of a key; a put unless Delete.
type WatchEvent struct {
	Delete bool
	KV     KV
}

// WatchResponse is one message of a watch.
type WatchResponse struct {
	Revision        int64
	Events          []WatchEvent
	CompactRevision int64
	Canceled        bool
	Err             error
}

// Dial says how to reach etcd: what a Backend is made from.
type Dial struct {
	// Endpoints are client URLs, http:// or https://; requests fail over
	// between them.
	Endpoints []string
	// CACert is a PEM file of the CAs that sign etcd's server
	// certificate; Cert and Key a client certificate and its key, for
	// etcd's --client-cert-auth. Any of them set means TLS.
	CACert, Cert, Key string
	// Username and Password log in to etcd's auth (etcdctl auth enable).
	Username, Password string
	// Timeout bounds connecting, and each request. If zero,
	// DefaultDialTimeout.
	Timeout time.Duration
}

// TLS reports whether d asks for TLS.
func (d Dial) TLS() bool { return d.CACert != "" || d.Cert != "" || d.Key != "" }
