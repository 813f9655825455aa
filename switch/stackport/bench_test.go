package stackport

import (
	"net/netip"
	"runtime"
	"sync/atomic"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	vswitch "github.com/switchyard-net/switchyard/switch"
)

// counter is an Ingress that counts the frames the netstack sends.
type counter struct{ n atomic.Int64 }

func (c *counter) Receive(vswitch.Frame) { c.n.Add(1) }

// echoRequest is an ICMP echo request from 10.9.0.2 (peerMAC) to
// 10.9.0.1 (portMAC) with a 1-byte payload.
func echoRequest() []byte {
	const ipLen = header.IPv4MinimumSize + header.ICMPv4MinimumSize + 1
	b := make([]byte, header.EthernetMinimumSize+ipLen)
	header.Ethernet(b).Encode(&header.EthernetFields{
		SrcAddr: "\x02\x00\x00\x00\x00\x02", DstAddr: "\x02\x00\x00\x00\x00\x01", Type: header.IPv4ProtocolNumber,
	})
	ip := header.IPv4(b[header.EthernetMinimumSize:])
	ip.Encode(&header.IPv4Fields{
		TotalLength: ipLen, TTL: 64, Protocol: uint8(header.ICMPv4ProtocolNumber),
		SrcAddr: Addr(netip.MustParseAddr("10.9.0.2")), DstAddr: Addr(netip.MustParseAddr("10.9.0.1")),
	})
	ip.SetChecksum(^ip.CalculateChecksum())
	icmp := header.ICMPv4(ip.Payload())
	icmp.SetType(header.ICMPv4Echo)
	icmp.SetIdent(1)
	icmp.SetChecksum(^checksum.Checksum(icmp, 0))
	return b
}

// BenchmarkEcho measures one ICMP echo through the port per op: the
// request written as the switch writes it, the netstack's reply back to
// the switch. "inline" is a writer outside every netstack (a TAP's
// reader); "queued" is the path every frame took before inline delivery,
// through the delivery goroutine.
func BenchmarkEcho(b *testing.B) {
	for _, mode := range []string{"inline", "queued"} {
		b.Run(mode, func(b *testing.B) {
			c := &counter{}
			p := New(Config{Name: "gw", MAC: portMAC})
			s := NewStack()
			route, err := p.AddNIC(s, 1, netip.MustParsePrefix("10.9.0.1/24"))
			if err != nil {
				b.Fatal(err)
			}
			s.AddRoute(route)
			// Pin the peer's MAC so the reply needs no ARP.
			if err := s.AddStaticNeighbor(1, header.IPv4ProtocolNumber, Addr(netip.MustParseAddr("10.9.0.2")), "\x02\x00\x00\x00\x00\x02"); err != nil {
				b.Fatal(err)
			}
			p.Start(c)
			defer func() {
				p.Close()
				s.Close()
				s.Wait()
			}()
			if mode == "queued" {
				sending.Add(1) // as if this goroutine were in a send path
				defer sending.Add(-1)
			}
			frame := echoRequest()
			buf := make([]byte, len(frame))
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				copy(buf, frame) // the port may not keep it; the netstack reads a copy
				if err := p.Write(vswitch.Frame{Data: buf}); err != nil {
					b.Fatal(err)
				}
				for c.n.Load() < int64(i+1) {
					runtime.Gosched()
				}
			}
		})
	}
}
