package proxy

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"
)

// Sentinel errors of the Manager, for callers that must branch with
// errors.Is. The messages that wrap them read like Docker's and name the
// host address that failed.
var (
	// ErrAllocated is wrapped when the host port is already published by
	// this Manager on an overlapping address (the same address, or a
	// wildcard of the same family), as in
	//
	//	Bind for 0.0.0.0:8080 failed: port is already allocated
	//
	// and when no port of a host range or of the ephemeral range is free:
	//
	//	Bind for 0.0.0.0:8000-8010 failed: all ports are allocated
	ErrAllocated = errors.New("port is already allocated")

	// ErrAddrInUse is wrapped when the kernel refuses the bind because
	// another socket, usually another process's, holds the address. The
	// message is the kernel's, as Go reports it:
	//
	//	listen tcp4 0.0.0.0:8080: bind: address already in use
	//
	// syscall.EADDRINUSE is reachable with errors.Is as well.
	ErrAddrInUse = errors.New("address already in use")

	// ErrPrivileged is wrapped when the kernel refuses to bind a port below
	// net.ipv4.ip_unprivileged_port_start to a process without
	// CAP_NET_BIND_SERVICE. The message names the sysctl and its value.
	ErrPrivileged = errors.New("privileged port")

	// ErrNotPublished is wrapped by Unpublish when the owner has nothing
	// published for the mapping.
	ErrNotPublished = errors.New("not published")

	// ErrClosed is returned by Publish and Unpublish after Close.
	ErrClosed = errors.New("proxy manager is closed")
)

// bindError is the concrete type of the errors above that concern one host
// address. Its message stands on its own; the sentinel and the kernel's
// error (if any) are reachable through errors.Is and errors.As.
type bindError struct {
	msg   string
	kind  error
	cause error
}

func (e *bindError) Error() string { return e.msg }

func (e *bindError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}

// hostAddrString prints a host address and port, or port range, the way
// Docker's messages do: 0.0.0.0:8080, [::1]:8080, 0.0.0.0:8000-8010.
func hostAddrString(ip netip.Addr, ports PortRange) string {
	if ip.Is6() {
		return "[" + ip.String() + "]:" + ports.String()
	}
	return ip.String() + ":" + ports.String()
}

// allocatedError reports that ip:port is already published by this Manager.
func allocatedError(ip netip.Addr, port uint16) error {
	return &bindError{
		msg:  fmt.Sprintf("Bind for %s failed: port is already allocated", hostAddrString(ip, PortRange{port, port})),
		kind: ErrAllocated,
	}
}

// exhaustedError reports that no port of r is free on ip. ephemeral says
// that r is the kernel's ephemeral range rather than the user's.
func exhaustedError(ip netip.Addr, r PortRange, ephemeral bool) error {
	msg := fmt.Sprintf("Bind for %s failed: all ports are allocated", hostAddrString(ip, r))
	if ephemeral {
		msg = fmt.Sprintf("Bind for %s failed: all ports are allocated (ephemeral range %s, net.ipv4.ip_local_port_range)", ip, r)
	}
	return &bindError{msg: msg, kind: ErrAllocated}
}

// listenError classifies the error of a failed listen on port. unprivStart
// reports net.ipv4.ip_unprivileged_port_start; it is called only for
// EACCES.
func listenError(err error, port uint16, unprivStart func() (uint16, error)) error {
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return &bindError{msg: err.Error(), kind: ErrAddrInUse, cause: err}
	case errors.Is(err, syscall.EACCES):
		start, serr := unprivStart()
		if serr != nil || port >= start {
			return err
		}
		return &bindError{
			msg: fmt.Sprintf("%v: port %d is below net.ipv4.ip_unprivileged_port_start (%d) and the process lacks CAP_NET_BIND_SERVICE; publish port %d or higher, or lower the sysctl",
				err, port, start, start),
			kind:  ErrPrivileged,
			cause: err,
		}
	}
	return err
}
