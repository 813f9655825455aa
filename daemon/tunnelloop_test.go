package daemon

import (
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/testing/attachtest"
	"github.com/switchyard-net/switchyard/tunnel"
)

// A network's tunnel is read by the network's loop, the one that reads
// its TAPs; with a negative Spin there is no loop and the tunnel reads
// with a goroutine of its own. Both receive what a peer sends.
func TestTunnelReadByTheNetworkLoop(t *testing.T) {
	for _, spin := range []time.Duration{0, -time.Nanosecond} {
		t.Run("spin="+spin.String(), func(t *testing.T) {
			e := &testEnv{t: t, dir: t.TempDir(), att: attachtest.New()}
			cfg := e.config()
			cfg.Spin = spin
			d, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { d.Close() })
			e.d = d
			peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer peer.Close()
			listen := "127.0.0.1:" + strconv.Itoa(freeUDPPort(t))
			e.createNetwork(api.NetworkCreate{Name: "tun", Subnet: "10.8.0.0/24", Tunnel: "vxlan", TunnelListen: listen,
				Peers: []string{peer.LocalAddr().String()}})
			d.mu.Lock()
			n := d.networks["tun"]
			d.mu.Unlock()
			if (n.loop == nil) != (spin < 0) {
				t.Fatalf("spin %v: network loop %v", spin, n.loop)
			}

			frame := make([]byte, tunnel.VXLANHeaderLen+14+46)
			copy(frame[tunnel.VXLANHeaderLen:], []byte{0x02, 0x42, 0, 0, 0, 9, 0x02, 0x42, 0, 0, 0, 8, 0x88, 0xb5})
			if err := tunnel.EncodeVXLAN(frame, n.rec.Tunnel.VNI); err != nil {
				t.Fatal(err)
			}
			if _, err := peer.WriteToUDPAddrPort(frame, netip.MustParseAddrPort(listen)); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(5 * time.Second)
			for n.tun.port.Stats().RXFrames == 0 {
				if time.Now().After(deadline) {
					t.Fatalf("the tunnel received nothing: %+v", n.tun.port.Stats())
				}
				time.Sleep(time.Millisecond)
			}
			if n.loop != nil {
				if st := n.loop.Stats(); st.Frames == 0 {
					t.Errorf("the tunnel received a frame, but the network's loop read none (%+v): the tunnel has a reader of its own", st)
				}
			}
			var ls *api.LoopStats
			for _, ns := range d.Stats().Networks {
				if ns.Network == "tun" {
					ls = ns.Loop
				}
			}
			switch {
			case (ls == nil) != (n.loop == nil):
				t.Errorf("spin %v: stats report the loop as %+v, though the network has a loop: %t", spin, ls, n.loop != nil)
			case ls != nil && ls.Frames == 0:
				t.Errorf("stats report a loop that read no frame (%+v), though the tunnel received one", ls)
			}
		})
	}
}
