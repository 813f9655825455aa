package stackport

import (
	"bytes"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// tcpFrame is an IPv4 (or IPv6) TCP segment from the port to its peer
// with flags and payload.
func tcpFrame(v6 bool, flags header.TCPFlags, payload string) []byte {
	ipLen, proto := header.IPv4MinimumSize, header.IPv4ProtocolNumber
	if v6 {
		ipLen, proto = header.IPv6MinimumSize, header.IPv6ProtocolNumber
	}
	eth := header.EthernetMinimumSize
	b := make([]byte, eth+ipLen+header.TCPMinimumSize+len(payload))
	header.Ethernet(b).Encode(&header.EthernetFields{SrcAddr: tcpip.LinkAddress(portMAC[:]), DstAddr: tcpip.LinkAddress(peerMAC[:]), Type: proto})
	tcpLen := header.TCPMinimumSize + len(payload)
	if v6 {
		header.IPv6(b[eth:]).Encode(&header.IPv6Fields{PayloadLength: uint16(tcpLen), TransportProtocol: header.TCPProtocolNumber, HopLimit: 64,
			SrcAddr: tcpip.AddrFrom16([16]byte{0xfd, 15: 1}), DstAddr: tcpip.AddrFrom16([16]byte{0xfd, 15: 2})})
	} else {
		header.IPv4(b[eth:]).Encode(&header.IPv4Fields{TotalLength: uint16(ipLen + tcpLen), TTL: 64, Protocol: uint8(header.TCPProtocolNumber),
			SrcAddr: tcpip.AddrFrom4([4]byte{10, 9, 0, 1}), DstAddr: tcpip.AddrFrom4([4]byte{10, 9, 0, 2})})
	}
	header.TCP(b[eth+ipLen:]).Encode(&header.TCPFields{SrcPort: 80, DstPort: 40000, SeqNum: 1, AckNum: 2, DataOffset: header.TCPMinimumSize, Flags: flags, WindowSize: 1000})
	copy(b[eth+ipLen+header.TCPMinimumSize:], payload)
	return b
}

// writeFrame sends frame b through the port's netstack side, as the
// netstack's WritePackets would, and reports whether it was taken.
func writeFrame(p *Port, b []byte) bool {
	var l stack.PacketBufferList
	l.PushBack(stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(b)}))
	defer l.DecRef()
	n, err := p.ep.WritePackets(l)
	return n == 1 && err == nil
}

// A SYN-ACK the netstack sends reaches the switch from the port's
// delivery goroutine, after WritePackets has returned: the netstack may
// hold the connection's lock while it sends it (gVisor's forwarder), and
// the switch's write of it must not run under that lock. Every other
// frame still goes to the switch on the netstack's goroutine, before
// WritePackets returns.
func TestSynAckSentAfterTheNetstackReturns(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		release := make(chan struct{})
		rec := &recorder{got: make(chan struct{}, 1), onFrame: func() { <-release }}
		p := New(Config{Name: "gw", MAC: portMAC})
		if err := p.Start(rec); err != nil {
			t.Fatal(err)
		}

		synAck := tcpFrame(v6, header.TCPFlagSyn|header.TCPFlagAck, "")
		returned := make(chan bool)
		go func() { returned <- writeFrame(p, synAck) }()
		select {
		case ok := <-returned:
			if !ok {
				t.Fatalf("v6=%v: the SYN-ACK was refused", v6)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("v6=%v: WritePackets of a SYN-ACK waited for the switch to take it", v6)
		}
		close(release) // the switch takes it now
		select {
		case <-rec.got:
		case <-time.After(10 * time.Second):
			t.Fatalf("v6=%v: the SYN-ACK never reached the switch", v6)
		}
		rec.mu.Lock()
		if len(rec.frames) != 1 || !bytes.Equal(rec.frames[0], synAck) {
			t.Errorf("v6=%v: the switch got %d frames, want the SYN-ACK unchanged", v6, len(rec.frames))
		}
		rec.mu.Unlock()

		// Data, a SYN and a bare ACK go out before WritePackets returns.
		tcpAt := header.EthernetMinimumSize + header.IPv4MinimumSize
		if v6 {
			tcpAt = header.EthernetMinimumSize + header.IPv6MinimumSize
		}
		for _, f := range [][]byte{
			tcpFrame(v6, header.TCPFlagAck|header.TCPFlagPsh, "data"),
			tcpFrame(v6, header.TCPFlagSyn, ""),
			tcpFrame(v6, header.TCPFlagAck, ""),
		} {
			before := rec.count()
			if !writeFrame(p, f) || rec.count() != before+1 {
				t.Errorf("v6=%v: frame with TCP flags %s did not reach the switch on the netstack's goroutine", v6, header.TCP(f[tcpAt:]).Flags())
			}
		}
		p.Close()
	}
}

// isSynAck reads only what it can: short and foreign frames are not
// SYN-ACKs.
func TestIsSynAck(t *testing.T) {
	full := tcpFrame(false, header.TCPFlagSyn|header.TCPFlagAck, "")
	for _, tt := range []struct {
		name string
		b    []byte
		want bool
	}{
		{"IPv4 SYN-ACK", full, true},
		{"IPv6 SYN-ACK", tcpFrame(true, header.TCPFlagSyn|header.TCPFlagAck, ""), true},
		{"SYN", tcpFrame(false, header.TCPFlagSyn, ""), false},
		{"ACK", tcpFrame(false, header.TCPFlagAck, ""), false},
		{"cut in the TCP header", full[:len(full)-10], false},
		{"cut in the IP header", full[:20], false},
		{"empty", nil, false},
		{"ARP", arpRequest(), false},
	} {
		if got := isSynAck(tt.b); got != tt.want {
			t.Errorf("%s: isSynAck = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// isSynAck never reads past the frame, and says yes only to a frame whose
// TCP header, where the IP header puts it, has SYN and ACK.
func FuzzIsSynAck(f *testing.F) {
	f.Add(tcpFrame(false, header.TCPFlagSyn|header.TCPFlagAck, ""))
	f.Add(tcpFrame(true, header.TCPFlagSyn|header.TCPFlagAck, "x"))
	f.Add(tcpFrame(false, header.TCPFlagAck, "data"))
	f.Add(arpRequest())
	f.Fuzz(func(t *testing.T, b []byte) {
		if !isSynAck(b) {
			return
		}
		at := header.EthernetMinimumSize + header.IPv6MinimumSize
		if b[12] == 0x08 {
			at = header.EthernetMinimumSize + int(header.IPv4(b[header.EthernetMinimumSize:]).HeaderLength())
		}
		if fl := header.TCP(b[at:]).Flags(); !fl.Contains(header.TCPFlagSyn | header.TCPFlagAck) {
			t.Fatalf("isSynAck said yes to TCP flags %s", fl)
		}
	})
}
