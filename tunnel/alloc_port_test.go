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
