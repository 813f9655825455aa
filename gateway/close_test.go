package gateway_test

import (
	"context"
	"io"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/switchyard-net/switchyard/gateway"
	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/testing/vnettest"
)

// relayFrames name the functions of goroutines that serve egress flows.
var relayFrames = []string{
	"internal/relay.",
	"gateway.(*egress).handleTCP(",
	"gateway.(*udpFlow).",
}

// flowGoroutines returns the stacks of goroutines that serve egress flows,
// as they are at this instant (no retry: one that ends later has already
// outlived Close).
func flowGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var found []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		for _, f := range relayFrames {
			if strings.Contains(g, f) {
				found = append(found, g)
				break
			}
		}
	}
	return found
}

// Close ends every egress flow before it returns: an idle TCP flow, one
// whose relay is blocked writing to a container that does not read, and a
// UDP flow. No goroutine of theirs is left once Close has returned.
func TestCloseWaitsForEgressRelays(t *testing.T) {
	log := zaptest.NewLogger(t)
	sw := vswitch.New(vswitch.Config{Name: "web", Logger: log})
	t.Cleanup(func() { sw.Close() })
	gw, err := gateway.New(sw, gateway.Config{
		Network: "web", Subnet: netip.MustParsePrefix("10.240.0.0/24"), Addr: netip.MustParseAddr("10.240.0.1"),
		MAC: vswitch.MAC{0x02, 0x42, 10, 240, 0, 1}, HostLoopback: hostLoopback, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			gw.Close()
		}
	})
	c, err := vnettest.NewHost(sw, vnettest.HostConfig{Name: "c", Addr: netip.MustParsePrefix("10.240.0.2/24"), Gateway: gw.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// An idle TCP flow.
	idle := echoServer(t)
	ic, err := c.DialTCP(ctx, netip.AddrPortFrom(hostLoopback, idle.Port()))
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()

	// A TCP flow the host floods and the container never reads: its
	// relay ends up blocked writing into the netstack.
	flood, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer flood.Close()
	go func() {
		conn, err := flood.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
		io.Copy(conn, zeros{})
	}()
	fc, err := c.DialTCP(ctx, netip.AddrPortFrom(hostLoopback, netip.MustParseAddrPort(flood.Addr().String()).Port()))
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()

	// A UDP flow, answered once.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	uc, err := c.DialUDP(netip.AddrPortFrom(hostLoopback, netip.MustParseAddrPort(pc.LocalAddr().String()).Port()))
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	if _, err := uc.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := pc.ReadFrom(make([]byte, 64)); err != nil {
		t.Fatalf("the UDP flow did not reach the host: %v", err)
	}

	// Every flow is up: wait for the counters, then for the flood to fill
	// the container's window (the gateway's sent bytes stop growing).
	deadline := time.Now().Add(10 * time.Second)
	for st := gw.Stats(); st.TCPActive < 2 || st.UDPActive < 1; st = gw.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("flows not up after 10 s: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	waitStalled(t, gw.Link())
	if n := len(flowGoroutines()); n == 0 {
		t.Fatal("no relay goroutine found with three flows open: the check would pass vacuously")
	}

	gw.Close()
	closed = true
	if left := flowGoroutines(); len(left) > 0 {
		t.Fatalf("%d egress goroutines outlived Close:\n%s", len(left), strings.Join(left, "\n\n"))
	}
}

// waitStalled waits until the gateway port's transmitted bytes stop
// growing: the flooded flow's relay is blocked on a full window.
func waitStalled(t *testing.T, l *vswitch.Link) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	last, same := l.Stats().RX.Bytes, 0
	for same < 5 {
		if time.Now().After(deadline) {
			t.Fatal("the flooded flow never stalled")
		}
		time.Sleep(20 * time.Millisecond)
		if b := l.Stats().RX.Bytes; b == last {
			same++
		} else {
			last, same = b, 0
		}
	}
}

// zeros is an endless reader of zero bytes.
type zeros struct{}

func (zeros) Read(b []byte) (int, error) {
	clear(b)
	return len(b), nil
}
