package ipam

import "errors"

// Sentinel errors that callers branch on. The errors returned by this package
// wrap them with a message that names the address, owner or subnet involved;
// test for them with errors.Is.
var (
	// ErrExhausted means that every address that Allocate may hand out is
	// taken.
	ErrExhausted = errors.New("no free address")

	// ErrInUse means that the address is held: by another endpoint (the
	// message names it), by the gateway, or by an aux address.
	ErrInUse = errors.New("address in use")

	// ErrOutside means that an address or prefix lies outside the subnet of
	// the pool, or belongs to the other address family.
	ErrOutside = errors.New("outside the subnet")

	// ErrReserved means that the address can never be given to an endpoint:
	// it is the network or broadcast address of an IPv4 subnet, or the
	// subnet-router anycast address of an IPv6 subnet.
	ErrReserved = errors.New("address reserved")

	// ErrNotAllocated is returned by Release for an address that no
	// endpoint holds.
	ErrNotAllocated = errors.New("address not allocated")

	// ErrNoFreePool is returned by NextFree when every candidate overlaps
	// something in use.
	ErrNoFreePool = errors.New("no free address pool")
)
