package stackport

import (
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
)

// The stacks recover TCP losses with SACK, not RACK (see NewStack: with
// RACK a sender could stall for good after a tail-loss probe).
func TestStackRecoversLossesWithSACKNotRACK(t *testing.T) {
	s := NewStack()
	defer s.Destroy()
	var sack tcpip.TCPSACKEnabled
	if err := s.TransportProtocolOption(tcp.ProtocolNumber, &sack); err != nil || !bool(sack) {
		t.Errorf("SACK %v (%v), want on", sack, err)
	}
	var rec tcpip.TCPRecovery
	if err := s.TransportProtocolOption(tcp.ProtocolNumber, &rec); err != nil {
		t.Fatal(err)
	}
	if rec&tcpip.TCPRACKLossDetection != 0 {
		t.Errorf("TCP recovery %#x: RACK loss detection is on", rec)
	}
}
