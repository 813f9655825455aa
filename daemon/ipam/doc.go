// Package ipam is Switchyard's IP address management for one network,
// following Docker's rules, plus Docker's choice of a default subnet for
// networks created without --subnet.
//
// A Pool hands out the addresses of one subnet (one address family). Its
// Config mirrors the flags of `docker network create`:
//
//	--subnet       Config.Subnet   required, canonical (host bits zero)
//	--gateway      Config.Gateway  default: the first address after the network address
//	--ip-range     Config.IPRange  default: the whole subnet
//	--aux-address  Config.Aux      name=IP, never handed out
//
// Addresses that are never given to an endpoint:
//
//	IPv4: the network address, the broadcast address, the gateway, aux addresses
//	IPv6: the subnet-router anycast address (all host bits zero), the
//	      gateway, aux addresses
//
// Allocate (an endpoint without --ip) returns the lowest free address of the
// ip-range, so an address that is released is the next one handed out if
// nothing lower is free. Reserve (an endpoint with --ip) takes any free
// address of the subnet, inside or outside the ip-range, as Docker does.
//
// # Cost
//
// A Pool never holds state per address of its range: the addresses that are
// taken are kept as a sorted list of runs of consecutive addresses, so a
// fresh /8 or /64 costs a few hundred bytes, and a run of addresses handed
// out in order costs one entry. Allocate, Reserve and Release are
// O(log r) to find the place plus a copy of at most r entries, where r is the
// number of runs (at most one more than the number of holes that releases
// left). Owners are kept in a map, one entry per endpoint.
//
// # State
//
// A Pool lives in memory only. At start-up the daemon rebuilds it with New
// and Reserve for every stored endpoint. A Pool is not safe for concurrent
// use: the daemon serialises the operations on one network, which it must do
// anyway to keep its store and the pool in step.
//
// # Default pools
//
// DefaultPools lists Docker's predefined local address pools in Docker's
// order, and NextFree picks the first that overlaps no route, host address
// or other network.
package ipam
