package netnstest

import (
	"context"
	"io"
	"net"
	"testing"
	"time"
)

// ServeEach listens on TCP addr in the namespace until the test ends and
// answers every connection with what reply says for it, then closes it.
func (n *NS) ServeEach(t testing.TB, addr string, reply func(c net.Conn) string) {
	t.Helper()
	l, err := n.Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, reply(c))
			c.Close()
		}
	}()
}

// ServeEachUDP listens on UDP addr in the namespace until the test ends
// and answers every datagram with what reply says for its sender and
// content.
func (n *NS) ServeEachUDP(t testing.TB, addr string, reply func(from net.Addr, msg []byte) string) {
	t.Helper()
	pc, err := n.ListenPacket(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			k, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo([]byte(reply(from, buf[:k])), from)
		}
	}()
}

// Ask connects from the namespace to TCP addr and returns all the server
// sends before it closes the connection (within 10 seconds). It fails the
// test if the connection or the read fails.
func (n *NS) Ask(t testing.TB, addr string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := n.Dial(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("connect %s from %s: %v", addr, n.Name, err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read from %s: %v", addr, err)
	}
	return string(b)
}
