package tunnel_test

import (
	"bytes"

	"net"
	"strings"
	"sync/atomic"
	"testing"

	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/tunnel"
)

// plainConn hides *net.UDPConn behind net.PacketConn, and counts the
// datagrams it carried, so that a Port takes the PacketConn path.
type plainConn struct {
	net.PacketConn
	writes atomic.Int64
}

func (c *plainConn) WriteTo(b []byte, a net.Addr) (int, error) {
	c.writes.Add(1)
	return c.PacketConn.WriteTo(b, a)
}

// TestPortOnPacketConn: a Port made with Config.PacketConn carries frames
// both ways and learns, in both modes, through the conn it was given.
func TestPortOnPacketConn(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			ca, cb := &plainConn{PacketConn: loopbackConn(t)}, &plainConn{PacketConn: loopbackConn(t)}
			a := newNode(t, 1, tunnel.Config{Mode: mode, PacketConn: ca})
			b := newNode(t, 2, tunnel.Config{Mode: mode, PacketConn: cb})
			if f := a.tun.Features(); f&(tunnel.FeatureGSO|tunnel.FeatureGRO|tunnel.FeatureBatch) != 0 {
				t.Errorf("features %v on a PacketConn: want no GSO, GRO or batch", f)
			}
			if a.tun.LocalAddr().String() != ca.LocalAddr().String() {
				t.Fatalf("LocalAddr %v, want the conn's %v", a.tun.LocalAddr(), ca.LocalAddr())
			}
			mesh(t, a, b)
			bc := rawFrame(vswitch.Broadcast, macN(1), 1, 100)
			if err := a.local.Inject(bc); err != nil {
				t.Fatal(err)
			}
			waitFrames(t, b.local, 1)
			if got := b.local.Take()[0].Data; !bytes.Equal(got, bc) {
				t.Fatalf("b received % x, want % x", got, bc)
			}
			reply := rawFrame(macN(1), macN(2), 2, 1400)
			if err := b.local.Inject(reply); err != nil {
				t.Fatal(err)
			}
			waitFrames(t, a.local, 1)
			if got := a.local.Take()[0].Data; !bytes.Equal(got, reply) {
				t.Fatal("a received a different reply")
			}
			if ca.writes.Load() != 1 || cb.writes.Load() != 1 {
				t.Fatalf("the conns carried %d and %d datagrams, want 1 each", ca.writes.Load(), cb.writes.Load())
			}
			if s := b.tun.Stats(); s.Drops != 0 || s.RXFrames != 1 || s.TXFrames != 1 {
				t.Errorf("b's stats %+v", s)
			}
		})
	}
}

// TestPortPacketConnBadConfig: Conn and PacketConn together, or a conn
// whose address is not IP:port, are refused, naming the input; the conn
// is closed.
func TestPortPacketConnBadConfig(t *testing.T) {
	c := &closeCount{PacketConn: loopbackConn(t)}
	_, err := tunnel.New(tunnel.Config{PacketConn: c, Conn: loopbackConn(t)})
	if err == nil || !strings.Contains(err.Error(), "both Conn and PacketConn") {
		t.Fatalf("Conn and PacketConn: %v", err)
	}
	if c.closed != 1 {
		t.Errorf("the PacketConn was closed %d times, want 1", c.closed)
	}
	odd := &closeCount{PacketConn: oddAddr{loopbackConn(t)}}
	_, err = tunnel.New(tunnel.Config{PacketConn: odd})
	if err == nil || !strings.Contains(err.Error(), `"somewhere"`) || !strings.Contains(err.Error(), "want IP:port") {
		t.Fatalf("a conn at somewhere: %v", err)
	}
}

type closeCount struct {
	net.PacketConn
	closed int
}

func (c *closeCount) Close() error { c.closed++; return c.PacketConn.Close() }

type oddAddr struct{ net.PacketConn }

func (oddAddr) LocalAddr() net.Addr { return odd{} }

type odd struct{}

func (odd) Network() string { return "mem" }
func (odd) String() string  { return "somewhere" }
