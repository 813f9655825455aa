package gateway_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/gateway"
)

// A bulk download from the host reaches the container whole and in order:
// more than the gateway netstack's send buffer and more than a relay
// buffer, with a container that is slow to start reading so the relay has
// to wait for room, and the host's end of stream passed on as the
// container's EOF while the container's half keeps flowing.
func TestEgressBulkFromHost(t *testing.T) {
	n := newEgressNet(t, gateway.Config{HostLoopback: hostLoopback})
	data := make([]byte, 24<<20)
	rand.NewChaCha8([32]byte{7}).Read(data)
	want := sha256.Sum256(data)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	reply := make(chan []byte, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			reply <- nil
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		c.Write(data)
		c.(*net.TCPConn).CloseWrite()
		b, _ := io.ReadAll(c) // the container's half, after ours ended
		reply <- b
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	port := netip.MustParseAddrPort(l.Addr().String()).Port()
	c, err := n.host.DialTCP(ctx, netip.AddrPortFrom(hostLoopback, port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitStalled(t, n.gw.Link()) // the container's window and the gateway's send buffer are full
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("after %d bytes: %v", len(got), err)
	}
	if len(got) != len(data) || sha256.Sum256(got) != want {
		t.Fatalf("container received %d bytes (sha256 %x), want %d (%x)", len(got), sha256.Sum256(got), len(data), want)
	}
	// The container's half still flows after the host's ended.
	c.Write([]byte("thanks"))
	c.(interface{ CloseWrite() error }).CloseWrite()
	if b := <-reply; !bytes.Equal(b, []byte("thanks")) {
		t.Fatalf("host server got %q after its half-close, want %q", b, "thanks")
	}
}
