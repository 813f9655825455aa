package netnstest_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/testing/netnstest"
)

// ServeEach answers each connection as its reply function says, Ask reads
// the whole answer; ServeEachUDP answers each datagram. All inside the
// namespace, on its loopback.
func TestServeEachAndAsk(t *testing.T) {
	ns := netnstest.New(t)
	ns.ServeEach(t, "127.0.0.1:7001", func(c net.Conn) string { return "you are " + c.RemoteAddr().String() })
	for range 2 {
		if got := ns.Ask(t, "127.0.0.1:7001"); !strings.HasPrefix(got, "you are 127.0.0.1:") {
			t.Errorf("Ask got %q, want the server's answer naming the client", got)
		}
	}

	ns.ServeEachUDP(t, "127.0.0.1:7002", func(_ net.Addr, msg []byte) string { return "echo " + string(msg) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := ns.Dial(ctx, "udp", "127.0.0.1:7002")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "echo hi" {
		t.Errorf("UDP answer %q, %v; want \"echo hi\"", buf[:n], err)
	}
}
