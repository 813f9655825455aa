package cluster

import (
	"context"
	"maps"
	"slices"
	"time"

	"go.uber.org/zap"
)

// The Cluster's two goroutines: renew keeps the lease alive and takes a
// new one if it is lost; watch follows the other hosts' leases. Both tell
// OnChange through notify, which serialises the calls.

// maxBackoff bounds the wait between attempts to reach etcd again.
const maxBackoff = 30 * time.Second

// notify calls OnChange with e, never concurrently.
func (c *Cluster) notify(e Event) {
	c.log.Debug("lease event", zap.Stringer("type", e.Type), zap.Stringer("subnet", e.Lease.Subnet), zap.Stringer("public", e.Lease.PublicAddr))
	if c.cfg.OnChange == nil {
		return
	}
	c.notifyMu.Lock()
	defer c.notifyMu.Unlock()
	c.cfg.OnChange(e)
}

// sleep waits for d or until the Cluster is closed, and reports whether
// it is still open.
func (c *Cluster) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// renew waits for the keep-alive to end. It ends when the Cluster is
// closed, or when the lease could not be renewed within its TTL (etcd
// unreachable for that long) or is gone (revoked, expired): then the host
// has no subnet, and renew takes one again, its old one if still free.
func (c *Cluster) renew(ka <-chan struct{}) {
	defer c.wg.Done()
	for {
		<-ka
		if c.ctx.Err() != nil {
			return
		}
		old := c.Lease()
		c.log.Warn("lease lost: it could not be renewed within its TTL; taking one again", zap.Stringer("subnet", old.Subnet))
		for backoff := time.Second; ; backoff = min(2*backoff, maxBackoff) {
			l, key, id, err := c.acquire(c.ctx, old.Subnet)
			if err == nil {
				ka = c.client.KeepAlive(c.ctx, id)
				c.mu.Lock()
				c.own, c.ownKey, c.leaseID = l, key, id
				delete(c.peers, key)
				c.mu.Unlock()
				if l.Subnet != old.Subnet {
					c.log.Error("lease taken again with another subnet: the host's containers need new addresses",
						zap.Stringer("old", old.Subnet), zap.Stringer("new", l.Subnet))
				} else {
					c.log.Info("lease taken again", zap.Stringer("subnet", l.Subnet))
				}
				c.notify(Event{Type: LeaseChanged, Lease: l})
				break
			}
			if c.ctx.Err() != nil {
				return
			}
			c.log.Warn("cannot take a lease again; retrying", zap.Error(err), zap.Duration("in", backoff))
			if !c.sleep(backoff) {
				return
			}
		}
	}
}

// watch reports the leases present at Join, then follows changes from
// revision rev on.
func (c *Cluster) watch(rev int64, initial map[string]Lease) {
	defer c.wg.Done()
	own := c.ownKeyNow()
	for _, k := range sortedKeys(initial) {
		if k != own {
			c.notify(Event{Type: PeerAdded, Lease: initial[k]})
		}
	}
	for backoff := time.Second; c.ctx.Err() == nil; backoff = min(2*backoff, maxBackoff) {
		if c.follow(&rev) {
			backoff = time.Second
		}
		if c.ctx.Err() != nil || !c.sleep(backoff) {
			return
		}
		// The watch broke (compacted, canceled, no leader): read the
		// leases again and report the difference.
		r, all, err := c.list(c.ctx)
		if err != nil {
			c.log.Warn("cannot read the leases; retrying", zap.Error(err), zap.Duration("in", backoff))
			continue
		}
		c.resync(all)
		rev = r
	}
}

// follow runs one etcd watch from *rev+1 until it breaks, applying its
// events and advancing *rev. It reports whether any response arrived.
func (c *Cluster) follow(rev *int64) bool {
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	got := false
	for resp := range c.client.Watch(ctx, c.keys.subnets, *rev+1) {
		if resp.CompactRevision != 0 || resp.Canceled || resp.Err != nil {
			if c.ctx.Err() == nil {
				c.log.Warn("watch of the leases broke; reading them again", zap.Error(resp.Err), zap.Int64("compacted", resp.CompactRevision))
			}
			return got
		}
		got = true
		for _, ev := range resp.Events {
			c.apply(ev)
		}
		*rev = resp.Revision
	}
	return got
}

func (c *Cluster) ownKeyNow() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ownKey
}

// apply updates the peers with one watch event and reports the change.
func (c *Cluster) apply(ev WatchEvent) {
	key := string(ev.KV.Key)
	l, valid := Lease{}, false
	if !ev.Delete {
		l, valid = parseLease(c.keys, key, ev.KV.Value)
		if !valid {
			c.log.Debug("ignoring a malformed lease", zap.String("key", key))
		}
	}
	c.update(key, l, valid)
}

// update sets (valid) or removes the lease under key and reports it.
func (c *Cluster) update(key string, l Lease, valid bool) {
	c.mu.Lock()
	if key == c.ownKey {
		c.mu.Unlock()
		return
	}
	old, had := c.peers[key]
	switch {
	case valid && had && old == l:
		c.mu.Unlock()
		return
	case valid:
		c.peers[key] = l
	case had:
		delete(c.peers, key)
	default:
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	if had {
		c.notify(Event{Type: PeerRemoved, Lease: old})
	}
	if valid {
		c.notify(Event{Type: PeerAdded, Lease: l})
	}
}

// resync makes the peers what all says, reporting the differences.
func (c *Cluster) resync(all map[string]Lease) {
	c.mu.Lock()
	gone := make([]string, 0)
	for k := range c.peers {
		if _, ok := all[k]; !ok {
			gone = append(gone, k)
		}
	}
	c.mu.Unlock()
	slices.Sort(gone)
	for _, k := range gone {
		c.update(k, Lease{}, false)
	}
	for _, k := range sortedKeys(all) {
		c.update(k, all[k], true)
	}
}

func sortedKeys(m map[string]Lease) []string {
	return slices.Sorted(maps.Keys(m))
}
