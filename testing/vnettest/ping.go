package vnettest

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// ping sends one echo request through a netstack ICMP "ping socket" and
// waits for the reply.
func ping(ctx context.Context, s *stack.Stack, proto tcpip.NetworkProtocolNumber, dst netip.Addr) (time.Duration, error) {
	transport, echo, reply := icmp.ProtocolNumber4, uint8(header.ICMPv4Echo), uint8(header.ICMPv4EchoReply)
	if proto != ipv4.ProtocolNumber {
		transport, echo, reply = icmp.ProtocolNumber6, uint8(header.ICMPv6EchoRequest), uint8(header.ICMPv6EchoReply)
	}
	var wq waiter.Queue
	ep, terr := s.NewEndpoint(transport, proto, &wq)
	if terr != nil {
		return 0, fmt.Errorf("ping %s: open ICMP endpoint: %s", dst, terr)
	}
	defer ep.Close()
	we, readable := waiter.NewChannelEntry(waiter.ReadableEvents)
	wq.EventRegister(&we)
	defer wq.EventUnregister(&we)

	if terr := ep.Connect(tcpip.FullAddress{Addr: addrOf(dst)}); terr != nil {
		return 0, fmt.Errorf("ping %s: %s", dst, terr)
	}
	req := make([]byte, 8+32)
	req[0] = echo // code, checksum and identifier are filled in by the endpoint
	req[7] = 1    // sequence 1
	copy(req[8:], "switchyard vnettest ping payload")
	clk := s.Clock() // the World's, virtual under VirtualTime
	start := clk.NowMonotonic()
	if _, terr := ep.Write(bytes.NewReader(req), tcpip.WriteOptions{}); terr != nil {
		return 0, fmt.Errorf("ping %s: send: %s", dst, terr)
	}
	for {
		var buf bytes.Buffer
		_, terr := ep.Read(&buf, tcpip.ReadOptions{})
		if _, wouldBlock := terr.(*tcpip.ErrWouldBlock); wouldBlock {
			select {
			case <-readable:
				continue
			case <-ctx.Done():
				return 0, fmt.Errorf("ping %s: %w", dst, ErrPingTimeout)
			}
		}
		if terr != nil {
			return 0, fmt.Errorf("ping %s: receive: %s", dst, terr)
		}
		b := buf.Bytes()
		if len(b) >= 8 && b[0] == reply && bytes.Equal(b[8:], req[8:]) {
			return clk.NowMonotonic().Sub(start), nil
		}
	}
}
