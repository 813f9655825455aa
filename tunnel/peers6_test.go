package tunnel

import (
	"net/netip"
	"testing"
)

// A received datagram's source has no zone; a link-local peer was added
// with one. The lookup finds it by address (and port, or address alone
// for a sender that varies its port), for IPv6 global and IPv4 peers as
// before, without allocating; a stranger is not found.
func TestPeerLookupIPv6(t *testing.T) {
	ll := &peer{addr: netip.MustParseAddrPort("[fe80::2%eth0]:4789")}
	gl := &peer{addr: netip.MustParseAddrPort("[fd00::2]:4789")}
	v4 := &peer{addr: netip.MustParseAddrPort("10.0.0.2:4789")}
	s := newPeerSet([]*peer{ll, gl, v4})
	for _, tc := range []struct {
		src  string
		want *peer
	}{
		{"[fe80::2]:4789", ll},
		{"[fe80::2]:40000", ll},
		{"[fd00::2]:4789", gl},
		{"[fd00::2]:51000", gl},
		{"10.0.0.2:4789", v4},
		{"[fe80::3]:4789", nil},
		{"[fd00::3]:4789", nil},
	} {
		if got := s.lookup(netip.MustParseAddrPort(tc.src)); got != tc.want {
			t.Errorf("lookup(%s) = %v, want %v", tc.src, peerName(got), peerName(tc.want))
		}
	}
	src := netip.MustParseAddrPort("[fe80::2]:40000")
	if allocs := testing.AllocsPerRun(200, func() { _ = s.lookup(src) }); allocs != 0 {
		t.Errorf("lookup allocates %.1f times, want 0", allocs)
	}
}

func peerName(p *peer) string {
	if p == nil {
		return "no peer"
	}
	return p.addr.String()
}
