// Package cluster joins hosts into one Switchyard network across machines,
// in flannel's model: the network's address range is cut into per-host
// subnets, each host leases one in etcd for as long as it keeps the lease
// alive, publishes its tunnel endpoint with it, and watches the others'
// leases to know its tunnel peers.
//
// # Keys
//
//	<KeyPrefix>/networks/<network>/config                  {"network":"10.240.0.0/16","subnetLen":24}
//	<KeyPrefix>/networks/<network>/subnets/10.240.7.0-24   {"hostID":"…","publicAddr":"10.213.0.1:4789"}
//
// A dual-stack network (Config.NetworkCIDR6) has both ranges in its
// config key, and each lease gives its host the IPv6 subnet with the same
// index as its IPv4 one, named in the lease's value:
//
//	…/config                  {"network":"10.240.0.0/16","subnetLen":24,"network6":"fd00:240::/64","subnetLen6":72}
//	…/subnets/10.240.7.0-24   {"hostID":"…","publicAddr":"[fd00:213::1]:4789","subnet6":"fd00:240:0:0:700::/72"}
//
// The key stays the IPv4 subnet, so taking a dual-stack lease is the same
// one race-free transaction. Public addresses may be of either family.
//
// KeyPrefix is "/switchyard" unless configured. A subnet's key names it
// with "-" in place of the "/" of its CIDR (as flannel's keys do), so that
// the key stays one path element. The config key is written by the first
// host to join; every later host checks that it agrees, so that two hosts
// never cut the same range differently.
//
// # Leases
//
// Each subnet key is attached to an etcd lease of the configured TTL, which
// the Cluster keeps alive. A host that stops (crash, Close, network loss
// longer than the TTL) stops renewing; etcd deletes its key when the TTL
// runs out, and the other hosts see it leave. Close does not revoke the
// lease, so that a daemon restarted within the TTL finds its own key and
// keeps its subnet, as flannel does; Leave revokes it for good.
//
// Taking a subnet is race-free between hosts: it is an etcd transaction
// that creates the key only if it does not exist. A host that loses the
// race re-reads the leases and tries the next free subnet.
//
// A joining host, in order of preference: keeps the subnet whose key holds
// its HostID (re-attached to a fresh lease in a transaction that checks
// the key has not changed); takes Config.PreviousSubnet if it is free
// (its subnet from an earlier run, which the daemon remembers in its state
// directory); otherwise takes the first free subnet, searching from a
// position derived from its HostID, so that a host tends to get the same
// subnet again even without a remembered one, and joining hosts seldom
// race for the same key.
//
// # Peers
//
// After joining, one goroutine watches the subnet keys and calls
// Config.OnChange, in order, with a PeerAdded event for each other host's
// lease (those present at Join included) and a PeerRemoved event when a
// lease goes. A lease whose endpoint changes is reported removed, then
// added. If the watch breaks (compaction, lost connection) the watcher
// re-reads the leases and reports the difference.
//
// # etcd
//
// The Cluster speaks to etcd through a Backend (backend.go), a handful of
// calls: package etcdv3 implements it with etcd's own Go client, which
// does TLS, auth, failover, keep-alives and watches. This package does
// not import that client, so that package daemon, and the binaries that
// link it without needing a cluster, stay free of gRPC.
package cluster
