package proxy

import (
	"net"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

// A published TCP port's accepted connections probe an idle client as Go's
// accept would (15 s, every 15 s, 9 probes), from settings the listening
// socket passes on, and keep TCP_NODELAY.
func TestAcceptedConnectionsKeepAlive(t *testing.T) {
	for _, ip := range []string{"127.0.0.1", "::1"} {
		t.Run(ip, func(t *testing.T) {
			s, err := listen(TCP, netip.MustParseAddr(ip), 0)
			if err != nil {
				if ip == "::1" {
					t.Skipf("skipping: the kernel refuses an IPv6 loopback socket: %v", err)
				}
				t.Fatal(err)
			}
			defer s.close()
			client, err := net.Dial("tcp", s.tcp.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			c, err := s.tcp.AcceptTCP()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			rc, err := c.SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range []struct {
				name       string
				level, opt int
				want       int
			}{
				{"SO_KEEPALIVE", unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
				{"TCP_KEEPIDLE", unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, 15},
				{"TCP_KEEPINTVL", unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, 15},
				{"TCP_KEEPCNT", unix.IPPROTO_TCP, unix.TCP_KEEPCNT, 9},
				{"TCP_NODELAY", unix.IPPROTO_TCP, unix.TCP_NODELAY, 1},
			} {
				var got int
				var gerr error
				if err := rc.Control(func(fd uintptr) { got, gerr = unix.GetsockoptInt(int(fd), o.level, o.opt) }); err != nil {
					t.Fatal(err)
				}
				if gerr != nil || got != o.want {
					t.Errorf("accepted connection: %s = %d (%v), want %d", o.name, got, gerr, o.want)
				}
			}
		})
	}
}
