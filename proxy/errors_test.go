package proxy

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
)

// TestListenError checks how bind failures are classified, with made-up
// kernel errors, so that it runs for any user.
func TestListenError(t *testing.T) {
	bindErr := func(errno syscall.Errno, addr string) error {
		return &net.OpError{Op: "listen", Net: "tcp4", Addr: net.TCPAddrFromAddrPort(netip.MustParseAddrPort(addr)),
			Err: os.NewSyscallError("bind", errno)}
	}
	start := func() (uint16, error) { return 1024, nil }

	err := listenError(bindErr(syscall.EACCES, "0.0.0.0:80"), 80, start)
	want := "listen tcp4 0.0.0.0:80: bind: permission denied: port 80 is below net.ipv4.ip_unprivileged_port_start (1024) and the process lacks CAP_NET_BIND_SERVICE; publish port 1024 or higher, or lower the sysctl"
	if !errors.Is(err, ErrPrivileged) || !errors.Is(err, syscall.EACCES) || err.Error() != want {
		t.Errorf("EACCES on port 80: %v\nwant %q wrapping ErrPrivileged and EACCES", err, want)
	}

	// Permission denied on an unprivileged port (a security module, say)
	// is not about the sysctl.
	err = listenError(bindErr(syscall.EACCES, "0.0.0.0:8080"), 8080, start)
	if errors.Is(err, ErrPrivileged) || !errors.Is(err, syscall.EACCES) {
		t.Errorf("EACCES on port 8080: %v, want the plain kernel error", err)
	}

	err = listenError(bindErr(syscall.EADDRINUSE, "127.0.0.1:8080"), 8080, start)
	if !errors.Is(err, ErrAddrInUse) || !errors.Is(err, syscall.EADDRINUSE) ||
		err.Error() != "listen tcp4 127.0.0.1:8080: bind: address already in use" {
		t.Errorf("EADDRINUSE: %v", err)
	}

	err = listenError(bindErr(syscall.EADDRNOTAVAIL, "10.9.9.9:8080"), 8080, start)
	if errors.Is(err, ErrAddrInUse) || !errors.Is(err, syscall.EADDRNOTAVAIL) {
		t.Errorf("EADDRNOTAVAIL: %v, want the plain kernel error", err)
	}
}

// TestMessages checks the Docker-style messages of this package's own
// refusals.
func TestMessages(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{allocatedError(netip.IPv4Unspecified(), 8080), "Bind for 0.0.0.0:8080 failed: port is already allocated"},
		{allocatedError(netip.MustParseAddr("::1"), 8080), "Bind for [::1]:8080 failed: port is already allocated"},
		{exhaustedError(netip.IPv4Unspecified(), PortRange{8000, 8010}, false), "Bind for 0.0.0.0:8000-8010 failed: all ports are allocated"},
	}
	for _, tt := range tests {
		if tt.err.Error() != tt.want || !errors.Is(tt.err, ErrAllocated) {
			t.Errorf("%v, want %q wrapping ErrAllocated", tt.err, tt.want)
		}
	}
}
