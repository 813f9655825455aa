//go:build linux

package tunnel_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/testing/netnstest"
	"github.com/switchyard-net/switchyard/tunnel"
)

// transferSize is what the cross-host transfers send: 100 MB.
const transferSize = 100 << 20

// Two hosts, one container each: ping both ways and 100 MB of TCP with
// equal checksums at both ends, through a plain and a secure tunnel.
func TestTwoHostsTransfer(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			u := newUnderlay(t)
			a, b := u.syHost(hostOpts{mode: mode}), u.syHost(hostOpts{mode: mode})
			peerWith(t, a, b)
			mtu := a.tun.Info().MTU
			ca, cb := a.container(t, "10.240.0.2", mtu), b.container(t, "10.240.0.3", mtu)

			if err := ca.ns.Ping(cb.addr(), 2); err != nil {
				t.Fatal(err)
			}
			if err := cb.ns.Ping(ca.addr(), 2); err != nil {
				t.Fatal(err)
			}
			sum, d := transfer(t, ca, cb, 5201)
			t.Logf("%d MB a→b in %v (%.2f Gbit/s), sha256 %x", transferSize>>20, d, float64(transferSize)*8/d.Seconds()/1e9, sum[:6])
			sum, d = transfer(t, cb, ca, 5202)
			t.Logf("%d MB b→a in %v (%.2f Gbit/s), sha256 %x", transferSize>>20, d, float64(transferSize)*8/d.Seconds()/1e9, sum[:6])
			logTunnel(t, "a", a.tun)
			logTunnel(t, "b", b.tun)

			sa, sb := a.tun.Stats(), b.tun.Stats()
			if sa.RXBytes < transferSize/50 || sb.RXBytes < transferSize {
				t.Errorf("tunnels received %d and %d bytes; want at least the transfer through b", sa.RXBytes, sb.RXBytes)
			}
			for _, s := range []tunnel.Stats{sa, sb} {
				// Overload drops (the kernel's, or a send queue the sender
				// goroutine did not drain within txWait on a loaded machine)
				// are TCP's to recover from; the transfer's hash says it did.
				bad := s.Drops - s.DropsBy[tunnel.DropSend] - s.DropsBy[tunnel.DropQueueFull]
				if bad != 0 {
					t.Errorf("unexpected drops %v", s.DropsBy)
				}
			}
			if a.tun.Features()&tunnel.FeatureTSO != 0 && sa.Segmented == 0 {
				t.Error("no superframe reached the tunnel: TSO from the TAP is not in use")
			}
			if b.tun.Features()&tunnel.FeatureCoalesce != 0 && sb.Coalesced == 0 {
				t.Error("the receiver built no superframe")
			}
		})
	}
}

// transfer runs netnstest.Transfer from container c to a server in s.
func transfer(t *testing.T, c, s *container, port int) ([32]byte, time.Duration) {
	t.Helper()
	return netnstest.Transfer(t, c.ns, s.ns, fmt.Sprintf("%s:%d", s.addr(), port), transferSize)
}
