//go:build linux

package tunnel_test

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/testing/netnstest"
	"github.com/switchyard-net/switchyard/tunnel"
)

// A tunnel whose underlay is far slower than the frames offered never
// holds up its caller, a switch port's reader (the switch's Port
// contract): what does not fit is dropped and counted. The underlay is a
// veth shaped by a token bucket of 8 kbit/s with a deep queue, so the
// tunnel's socket buffer fills.
func TestSlowUnderlayDoesNotHoldUpTheSwitch(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: creates network namespaces")
	}
	ns, far := netnstest.New(t), netnstest.New(t)
	ns.MustRun("ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1", "netns", far.Name)
	ns.MustRun("ip", "addr", "add", "10.213.9.1/24", "dev", "v0")
	far.MustRun("ip", "addr", "add", "10.213.9.2/24", "dev", "v1")
	ns.MustRun("ip", "link", "set", "v0", "up")
	far.MustRun("ip", "link", "set", "v1", "up")
	if _, err := ns.Run("tc", "qdisc", "add", "dev", "v0", "root", "tbf", "rate", "8kbit", "burst", "1600", "limit", "100000000"); err != nil {
		t.Skipf("skipping: the kernel refuses a tbf qdisc here: %v", err)
	}
	pc, err := ns.ListenPacket("10.213.9.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conn := pc.(*net.UDPConn)
	p, err := tunnel.New(tunnel.Config{Conn: conn, VNI: 42, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	sink, err := far.ListenPacket("10.213.9.2:4789")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	if err := p.AddPeer(netip.MustParseAddrPort("10.213.9.2:4789")); err != nil {
		t.Fatal(err)
	}

	// More frames than the tunnel's socket buffer (4 MiB asked, 8 MiB
	// granted) holds; the qdisc holds them all without dropping, so the
	// socket fills.
	const frames = 8000
	done := make(chan struct{})
	go func() {
		defer close(done)
		f := rawFrame(vswitch.Broadcast, macN(1), 1, 1400)
		for range frames {
			p.Write(vswitch.Frame{Data: f})
		}
	}()
	// At 8 kbit/s the underlay takes hours to carry these frames: a
	// Write that waited for it would not return for that long.
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Write blocked on a slow underlay: the switch port reading these frames would be held up")
	}
	st := p.Stats()
	dropped := st.DropsBy[tunnel.DropSend] + st.DropsBy[tunnel.DropQueueFull]
	if dropped == 0 || st.TXFrames+dropped < frames {
		t.Fatalf("sent %d and dropped %d of %d frames; want the rest dropped and counted", st.TXFrames, dropped, frames)
	}
}
