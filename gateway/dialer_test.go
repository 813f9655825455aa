package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/gateway"
)

// whoServer answers each connection with the address it came from.
func whoServer(t *testing.T, n *egressNet) netip.AddrPort {
	t.Helper()
	l, err := n.b.ListenTCP(80)
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
			io.WriteString(c, c.RemoteAddr().String())
			c.Close()
		}
	}()
	return netip.AddrPortFrom(n.b.Addr(), 80)
}

func seenAs(t *testing.T, d *gateway.Dialer, src, dst netip.AddrPort) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := d.DialTCP(ctx, src, dst)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDialerKeepsClientAddress(t *testing.T) {
	n := newEgressNet(t, gateway.Config{})
	dst := whoServer(t, n)
	client := netip.MustParseAddrPort("198.51.100.7:40001") // exists only inside this test's netstacks
	if got := seenAs(t, n.gw.Dialer(true), client, dst); got != client.String() {
		t.Errorf("with KeepSource the container saw %s, want the client %s", got, client)
	}
	if got := seenAs(t, n.gw.Dialer(false), client, dst); netip.MustParseAddrPort(got).Addr() != n.gw.Addr() {
		t.Errorf("without KeepSource the container saw %s, want the gateway %s", got, n.gw.Addr())
	}
	// A loopback client cannot be shown: the container would answer itself.
	if got := seenAs(t, n.gw.Dialer(true), netip.MustParseAddrPort("127.0.0.1:5555"), dst); netip.MustParseAddrPort(got).Addr() != n.gw.Addr() {
		t.Errorf("a loopback client was shown as %s, want the gateway %s", got, n.gw.Addr())
	}
	// The same client address and port again, while the first connection
	// is in TIME_WAIT: falls back to the gateway address instead of failing.
	if got := seenAs(t, n.gw.Dialer(true), client, dst); got == "" {
		t.Error("second connection from the same client port failed")
	}
}

func TestDialerRefused(t *testing.T) {
	n := newEgressNet(t, gateway.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := n.gw.Dialer(true).DialTCP(ctx, netip.MustParseAddrPort("198.51.100.7:40002"), netip.AddrPortFrom(n.b.Addr(), 81))
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial a closed container port: %v, want an error matching ECONNREFUSED", err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) {
		t.Errorf("error %T is not a *net.OpError", err)
	}
}

func TestDialerUDPKeepsClientAddress(t *testing.T) {
	n := newEgressNet(t, gateway.Config{})
	pc, err := n.b.ListenUDP(53)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	client := netip.MustParseAddrPort("198.51.100.7:40003")
	c, err := n.gw.Dialer(true).DialUDP(context.Background(), client, netip.AddrPortFrom(n.b.Addr(), 53))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 64)
	for i := 0; i < 20; i++ { // the first datagram may wait on ARP
		c.Write([]byte("q"))
		pc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		_, from, err := pc.ReadFrom(buf)
		if err == nil {
			if from.String() != client.String() {
				t.Fatalf("the container saw the datagram from %s, want %s", from, client)
			}
			pc.WriteTo([]byte("a"), from)
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			if k, err := c.Read(buf); err != nil || string(buf[:k]) != "a" {
				t.Fatalf("reply to the client address did not come back: %q %v", buf[:k], err)
			}
			return
		}
	}
	t.Fatal("no datagram reached the container")
}

// A connection from the Dialer can be reset, as the proxy resets the
// container's side when the client's side fails: after SetLinger(0),
// Close sends a RST and the container's read fails; a plain Close ends
// the stream with a FIN, which the container reads as EOF.
func TestDialerConnResets(t *testing.T) {
	n := newEgressNet(t, gateway.Config{})
	l, err := n.b.ListenTCP(82)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ends := make(chan error, 2)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, err := io.ReadFull(c, make([]byte, 5)); err != nil {
					ends <- fmt.Errorf("reading the greeting: %w", err)
					return
				}
				_, err := c.Read(make([]byte, 1))
				ends <- err
			}()
		}
	}()
	for _, reset := range []bool{false, true} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := n.gw.Dialer(true).DialTCP(ctx, netip.MustParseAddrPort("198.51.100.7:40003"), netip.AddrPortFrom(n.b.Addr(), 82))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "hello")
		if reset {
			l, ok := c.(interface{ SetLinger(int) error })
			if !ok {
				t.Fatalf("%T has no SetLinger: the proxy cannot reset the container's side", c)
			}
			l.SetLinger(0)
		}
		c.Close()
		err = <-ends
		switch {
		case !reset && err != io.EOF:
			t.Errorf("after a plain Close the container read %v, want EOF", err)
		case reset && (err == nil || err == io.EOF || !strings.Contains(err.Error(), "reset")):
			t.Errorf("after SetLinger(0) and Close the container read %v, want a connection reset", err)
		}
	}
}
