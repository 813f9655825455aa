package cluster

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// etcd is the slice of etcd's v3 API that a Cluster uses, spoken as JSON
// over HTTP to the gRPC gateway that every etcd since 3.3 serves on its
// client URLs (/v3/kv/range, /v3/kv/txn, /v3/lease/grant, /v3/watch …).
//
// Why not etcd's Go client: it brings gRPC and protobuf, whose package
// initialisation and size cost every start of the switchyard binary about
// 45 ms on a 2-vCPU VM (`switchyard run` starts it three times before a
// command is served; see benchmarks/RESULTS.md), for the five calls below.
//
// Requests go to the endpoints in turn until one answers; keys and values
// are base64 in the JSON (Go's []byte encoding), 64-bit integers strings.
type etcd struct {
	endpoints []string // base URLs, without a trailing slash
	http      *http.Client
	timeout   time.Duration // bounds each unary request and each connect

	mu   sync.Mutex
	next int // the endpoint to try first
}

// etcdError is an error etcd answered with (gRPC code and message), as
// opposed to one reaching it.
type etcdError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (e *etcdError) Error() string { return "etcd: " + e.Message }

// i64 is an int64 that etcd's gateway writes as a JSON string.
type i64 int64

func (v *i64) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("etcd: integer %s: %w", b, err)
	}
	*v = i64(n)
	return nil
}

func (v i64) MarshalJSON() ([]byte, error) {
	return []byte(`"` + strconv.FormatInt(int64(v), 10) + `"`), nil
}

type etcdHeader struct {
	Revision i64 `json:"revision"`
}

// etcdKV is one key's state.
type etcdKV struct {
	Key            []byte `json:"key"`
	Value          []byte `json:"value"`
	CreateRevision i64    `json:"create_revision"`
	ModRevision    i64    `json:"mod_revision"`
	Lease          i64    `json:"lease"`
}

func newEtcd(endpoints []string, timeout time.Duration) (*etcd, error) {
	e := &etcd{timeout: timeout, http: &http.Client{Transport: &http.Transport{
		Proxy:               nil, // etcd is reached directly, never through $HTTP_PROXY
		DialContext:         (&net.Dialer{Timeout: timeout}).DialContext,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     time.Minute,
	}}}
	for _, ep := range endpoints {
		u := strings.TrimRight(ep, "/")
		if !strings.HasPrefix(u, "http://") {
			return nil, fmt.Errorf("etcd endpoint %q: want an http:// URL like http://10.0.0.5:2379 (TLS to etcd is not supported)", ep)
		}
		e.endpoints = append(e.endpoints, u)
	}
	if len(e.endpoints) == 0 {
		return nil, errors.New("no etcd endpoints")
	}
	return e, nil
}

func (e *etcd) close() { e.http.CloseIdleConnections() }

// call posts req to path on the first endpoint that answers and decodes
// the answer into resp.
func (e *etcd) call(ctx context.Context, path string, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	e.mu.Lock()
	first := e.next
	e.mu.Unlock()
	var errs []error
	for i := range e.endpoints {
		k := (first + i) % len(e.endpoints)
		err := e.post(ctx, e.endpoints[k]+path, body, resp)
		var ee *etcdError
		if err == nil || errors.As(err, &ee) {
			e.mu.Lock()
			e.next = k
			e.mu.Unlock()
			return err
		}
		if ctx.Err() != nil {
			return err
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (e *etcd) post(ctx context.Context, url string, body []byte, resp any) error {
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	r.Header.Set("Content-Type", "application/json")
	res, err := e.http.Do(r)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s: %w", url, err)
	}
	if res.StatusCode != http.StatusOK {
		var ee etcdError
		if json.Unmarshal(b, &ee) == nil && ee.Message != "" {
			return &ee
		}
		return fmt.Errorf("%s: HTTP %s: %.200s", url, res.Status, b)
	}
	if err := json.Unmarshal(b, resp); err != nil {
		return fmt.Errorf("%s: answer %.200q: %w", url, b, err)
	}
	return nil
}

// rangePrefix reads every key under prefix.
func (e *etcd) rangePrefix(ctx context.Context, prefix string) (int64, []etcdKV, error) {
	var resp struct {
		Header etcdHeader `json:"header"`
		KVs    []etcdKV   `json:"kvs"`
	}
	err := e.call(ctx, "/v3/kv/range", map[string]any{"key": []byte(prefix), "range_end": prefixEnd(prefix)}, &resp)
	return int64(resp.Header.Revision), resp.KVs, err
}

// prefixEnd is the end of the range of keys that start with prefix.
func prefixEnd(prefix string) []byte {
	end := []byte(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return []byte{0} // every key
}

// txnPut puts key=value (under lease, if not 0) if key's revision field
// ("CREATE" or "MOD") equals rev. If it does not and orGet is set, it
// returns the key's current state instead.
func (e *etcd) txnPut(ctx context.Context, key, value string, lease int64, field string, rev int64, orGet bool) (bool, []etcdKV, error) {
	cmp := map[string]any{"target": field, "key": []byte(key), "result": "EQUAL"}
	if field == "CREATE" {
		cmp["create_revision"] = i64(rev)
	} else {
		cmp["mod_revision"] = i64(rev)
	}
	put := map[string]any{"key": []byte(key), "value": []byte(value)}
	if lease != 0 {
		put["lease"] = i64(lease)
	}
	req := map[string]any{"compare": []any{cmp}, "success": []any{map[string]any{"request_put": put}}}
	if orGet {
		req["failure"] = []any{map[string]any{"request_range": map[string]any{"key": []byte(key)}}}
	}
	var resp struct {
		Succeeded bool `json:"succeeded"`
		Responses []struct {
			Range *struct {
				KVs []etcdKV `json:"kvs"`
			} `json:"response_range"`
		} `json:"responses"`
	}
	if err := e.call(ctx, "/v3/kv/txn", req, &resp); err != nil {
		return false, nil, err
	}
	if resp.Succeeded || !orGet {
		return resp.Succeeded, nil, nil
	}
	if len(resp.Responses) == 0 || resp.Responses[0].Range == nil {
		return false, nil, nil
	}
	return false, resp.Responses[0].Range.KVs, nil
}

// grant makes a lease of ttl seconds.
func (e *etcd) grant(ctx context.Context, ttl int64) (int64, error) {
	var resp struct {
		ID i64 `json:"ID"`
	}
	if err := e.call(ctx, "/v3/lease/grant", map[string]any{"TTL": i64(ttl)}, &resp); err != nil {
		return 0, err
	}
	if resp.ID == 0 {
		return 0, errors.New("etcd granted lease 0")
	}
	return int64(resp.ID), nil
}

// revoke ends a lease and deletes its keys.
func (e *etcd) revoke(ctx context.Context, id int64) error {
	var resp struct{}
	return e.call(ctx, "/v3/lease/revoke", map[string]any{"ID": i64(id)}, &resp)
}

// keepAliveOnce renews a lease and returns its remaining TTL in seconds:
// 0 if the lease no longer exists.
func (e *etcd) keepAliveOnce(ctx context.Context, id int64) (int64, error) {
	var resp struct {
		Result struct {
			TTL i64 `json:"TTL"`
		} `json:"result"`
		Error *etcdError `json:"error"`
	}
	if err := e.call(ctx, "/v3/lease/keepalive", map[string]any{"ID": i64(id)}, &resp); err != nil {
		return 0, err
	}
	if resp.Error != nil {
		return 0, resp.Error
	}
	return int64(resp.Result.TTL), nil
}

// keepAlive renews lease id (of ttl seconds) every third of its TTL until
// ctx ends or the lease is lost: etcd says it is gone, or no renewal has
// succeeded for a whole TTL. The channel closes then. Like etcd's own
// client it retries through errors, twice a second at most.
func (e *etcd) keepAlive(ctx context.Context, id, ttl int64, wg *sync.WaitGroup) <-chan struct{} {
	done := make(chan struct{})
	period := max(time.Duration(ttl)*time.Second/3, 500*time.Millisecond)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		last := time.Now()
		wait := time.Duration(0)
		for {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			left, err := e.keepAliveOnce(ctx, id)
			switch {
			case err == nil && left <= 0:
				return // expired or revoked
			case err == nil:
				last, wait = time.Now(), period
			case time.Since(last) > time.Duration(ttl)*time.Second:
				return // unreachable for a whole TTL: the lease is gone
			default:
				wait = 500 * time.Millisecond
			}
		}
	}()
	return done
}

// watchEvent is one change of a key; a PUT unless Delete.
type watchEvent struct {
	Delete bool
	KV     etcdKV
}

// watchResponse is one message of a watch.
type watchResponse struct {
	Revision        int64
	Events          []watchEvent
	CompactRevision int64
	Canceled        bool
	Err             error
}

// watch follows the keys under prefix from revision rev on. The channel
// closes when ctx ends or the watch breaks; a response with Err,
// Canceled or CompactRevision set is the last.
func (e *etcd) watch(ctx context.Context, prefix string, rev int64, wg *sync.WaitGroup) <-chan watchResponse {
	out := make(chan watchResponse)
	body, _ := json.Marshal(map[string]any{"create_request": map[string]any{
		"key": []byte(prefix), "range_end": prefixEnd(prefix), "start_revision": i64(rev)}})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(out)
		send := func(r watchResponse) bool {
			select {
			case out <- r:
				return true
			case <-ctx.Done():
				return false
			}
		}
		res, err := e.openWatch(ctx, body)
		if err != nil {
			send(watchResponse{Err: err})
			return
		}
		defer res.Body.Close()
		dec := json.NewDecoder(bufio.NewReader(res.Body))
		for {
			var msg struct {
				Result struct {
					Header          etcdHeader `json:"header"`
					Created         bool       `json:"created"`
					Canceled        bool       `json:"canceled"`
					CompactRevision i64        `json:"compact_revision"`
					Events          []struct {
						Type string `json:"type"`
						KV   etcdKV `json:"kv"`
					} `json:"events"`
				} `json:"result"`
				Error *etcdError `json:"error"`
			}
			if err := dec.Decode(&msg); err != nil {
				if ctx.Err() == nil {
					send(watchResponse{Err: fmt.Errorf("etcd watch: %w", err)})
				}
				return
			}
			if msg.Error != nil {
				send(watchResponse{Err: msg.Error})
				return
			}
			r := msg.Result
			if r.Created && len(r.Events) == 0 {
				continue
			}
			wr := watchResponse{Revision: int64(r.Header.Revision), Canceled: r.Canceled, CompactRevision: int64(r.CompactRevision)}
			for _, ev := range r.Events {
				wr.Events = append(wr.Events, watchEvent{Delete: ev.Type == "DELETE", KV: ev.KV})
			}
			if !send(wr) || wr.Canceled || wr.CompactRevision != 0 {
				return
			}
		}
	}()
	return out
}

// openWatch starts a watch stream on the first endpoint that answers.
func (e *etcd) openWatch(ctx context.Context, body []byte) (*http.Response, error) {
	e.mu.Lock()
	first := e.next
	e.mu.Unlock()
	var errs []error
	for i := range e.endpoints {
		url := e.endpoints[(first+i)%len(e.endpoints)] + "/v3/watch"
		r, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		r.Header.Set("Content-Type", "application/json")
		// etcd's WithRequireLeader: a member cut off from the leader
		// ends the watch instead of going quiet.
		r.Header.Set("Grpc-Metadata-Hasleader", "true")
		res, err := e.http.Do(r)
		if err == nil && res.StatusCode == http.StatusOK {
			return res, nil
		}
		if err == nil {
			b, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
			res.Body.Close()
			err = fmt.Errorf("%s: HTTP %s: %.200s", url, res.Status, b)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}
