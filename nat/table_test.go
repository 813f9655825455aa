package nat

import (
	"net/netip"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/header"
)

func TestCandidate(t *testing.T) {
	tb := newTestTable(t, testConfig(), testMappings())
	for _, dst := range []netip.Addr{gw4, host4} {
		if !tb.Candidate(tcpSeg(ap(a4, 40000), ap(dst, 8080), header.TCPFlagSyn, 1, 0, nil)) {
			t.Errorf("a packet to %s is not a candidate", dst)
		}
	}
	egress := tcpSeg(ap(a4, 40000), ap(netip.MustParseAddr("198.51.100.1"), 443), header.TCPFlagSyn, 1, 0, nil)
	if tb.Candidate(egress) {
		t.Error("an egress packet is a candidate")
	}
	if tb.Process(egress, 0) != Pass {
		t.Error("Process did not pass what Candidate rejected")
	}
	internal := testConfig()
	internal.Internal = true
	if newTestTable(t, internal, nil).Candidate(tcpSeg(ap(a4, 40000), ap(gw4, 8080), header.TCPFlagSyn, 1, 0, nil)) {
		t.Error("an internal network's table has candidates")
	}
}
