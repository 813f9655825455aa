package tunnel_test

import (
	"net/netip"
	"testing"

	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/tunnel"
)

// Sending allocates nothing per frame: a known unicast frame, a flooded
// one (two peers) and a 64 KiB superframe cut into 44 datagrams. The
// receiving nodes run in the same process, so their readers, switches
// and ports are measured too: the whole pipeline is allocation-free.
func TestWriteDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("skipping: the race detector makes sync.Pool allocate")
	}
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			a := newNodeWith(t, 1, tunnel.Config{Mode: mode}, true)
			b := newNodeWith(t, 2, tunnel.Config{Mode: mode}, true)
			c := newNodeWith(t, 3, tunnel.Config{Mode: mode}, true)
			mesh(t, a, b, c)
			b.local.Inject(rawFrame(vswitch.Broadcast, macN(2), 0, 60))
			waitFor(t, "a to learn b's MAC", func() bool { return len(a.tun.MACs()) == 1 })
			s := tcpSuper{dst: macN(2), src: macN(1), mss: a.tun.Info().MTU - 52, payload: 65000,
				srcIP: netip.MustParseAddr("10.0.0.1"), dstIP: netip.MustParseAddr("10.0.0.2")}
			for _, tc := range []struct {
				name string
				f    vswitch.Frame
			}{
				{"unicast", vswitch.Frame{Data: rawFrame(macN(2), macN(1), 0, 1400)}},
				{"flood", vswitch.Frame{Data: rawFrame(vswitch.Broadcast, macN(1), 0, 1400)}},
				{"superframe", s.frame()},
			} {
				if err := a.tun.Write(tc.f); err != nil { // warm the pools
					t.Fatal(err)
				}
				allocs := testing.AllocsPerRun(200, func() { _ = a.tun.Write(tc.f) })
				if allocs != 0 {
					t.Errorf("%s: %.1f allocations per Write, want 0", tc.name, allocs)
				}
			}
			if st := a.tun.Stats(); st.Drops != 0 {
				t.Errorf("drops %v", st.DropsBy)
			}
		})
	}
}

// IPv6 inside the overlay sends as IPv4 does, without allocating: a
// complete TCP/IPv6 segment and a 64 KiB TCP/IPv6 superframe, which the
// port cuts by its IPv6 headers (payload length, no IP ID) into 45
// datagrams. The datagram counter proves each Write sent them all, and
// the receiving node must get IPv6 frames.
func TestWriteIPv6DoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("skipping: the race detector makes sync.Pool allocate")
	}
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			a := newNodeWith(t, 1, tunnel.Config{Mode: mode}, true)
			b := newNodeWith(t, 2, tunnel.Config{Mode: mode}, true)
			mesh(t, a, b)
			b.local.Inject(rawFrame(vswitch.Broadcast, macN(2), 0, 60))
			waitFor(t, "a to learn b's MAC", func() bool { return len(a.tun.MACs()) == 1 })
			mss := a.tun.Info().MTU - 72 // IPv6 40 + TCP 20 + timestamps 12
			s := tcpSuper{dst: macN(2), src: macN(1), mss: mss, v6: true,
				srcIP: netip.MustParseAddr("fd00:61::2"), dstIP: netip.MustParseAddr("fd00:61::3")}
			one, super := s, s
			one.payload, super.payload = mss, 65000
			const runs = 200
			for _, tc := range []struct {
				name      string
				f         vswitch.Frame
				datagrams uint64
			}{
				{"segment", one.frame(), 1},
				{"superframe", super.frame(), uint64((65000 + mss - 1) / mss)},
			} {
				rx0 := b.local.Written()
				tx0 := accounted(a.tun.Stats())
				if err := a.tun.Write(tc.f); err != nil { // warm the pools
					t.Fatal(err)
				}
				allocs := testing.AllocsPerRun(runs, func() { _ = a.tun.Write(tc.f) })
				if allocs != 0 {
					t.Errorf("%s: %.1f allocations per Write, want 0", tc.name, allocs)
				}
				// The sender goroutine counts what it sent after Write
				// returns. One warm-up Write, AllocsPerRun's own, and runs;
				// on a loaded machine some may be dropped rather than
				// block the switch (DropQueueFull, DropSend), and counted.
				want := (runs + 2) * tc.datagrams
				waitFor(t, tc.name+" datagrams counted", func() bool { return accounted(a.tun.Stats())-tx0 >= want })
				if got := accounted(a.tun.Stats()) - tx0; got != want {
					t.Errorf("%s: %d datagrams sent or dropped, want %d", tc.name, got, want)
				}
				waitFrames(t, b.local, rx0+1)
			}
			st := a.tun.Stats()
			if other := st.Drops - st.DropsBy[tunnel.DropSend] - st.DropsBy[tunnel.DropQueueFull]; other != 0 {
				t.Errorf("drops %v", st.DropsBy)
			}
		})
	}
}

// accounted is what a sending port has done with its datagrams: sent, or
// dropped because the socket or the sender's queue was full.
func accounted(s tunnel.Stats) uint64 {
	return s.TXDatagrams + s.DropsBy[tunnel.DropSend] + s.DropsBy[tunnel.DropQueueFull]
}
