package vswitch_test

import (
	"bytes"
	"context"
	"io"
	"net/netip"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/testing/porttest"
	"github.com/switchyard-net/switchyard/testing/vnettest"
)

var router = &vswitch.Router{
	MAC:  vswitch.MAC{0x02, 0x42, 10, 9, 0, 1},
	IPv4: netip.MustParseAddr("10.9.0.1"),
	IPv6: netip.MustParseAddr("fd00::1"),
}

// Two switches joined by a link that carries less than the hosts' MTU (a
// tunnel): TCP between the hosts works only if the switches tell the
// senders, with ICMP, what fits.
func TestPathMTUDiscoveryAcrossSmallerLink(t *testing.T) {
	for _, c := range []struct{ fam, a, b, dst string }{
		{"IPv4", "10.9.0.2/24", "10.9.0.3/24", "10.9.0.3:80"},
		// IPv6 has no fragmentation on the path: without the switch's
		// packet too big, the transfer stalls.
		{"IPv6", "fd00::2/64", "fd00::3/64", "[fd00::3]:80"},
	} {
		t.Run(c.fam, func(t *testing.T) { pmtuDiscovery(t, c.a, c.b, c.dst) })
	}
}

func pmtuDiscovery(t *testing.T, addrA, addrB, dst string) {
	sw1 := vswitch.New(vswitch.Config{Router: router})
	sw2 := vswitch.New(vswitch.Config{Router: router})
	t.Cleanup(func() { sw1.Close(); sw2.Close() })
	p1, p2 := porttest.Pipe("tunnel1", "tunnel2", 1400)
	if _, err := sw1.Attach(p1, vswitch.AttachOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := sw2.Attach(p2, vswitch.AttachOptions{}); err != nil {
		t.Fatal(err)
	}
	a, err := vnettest.NewHost(sw1, vnettest.HostConfig{Name: "a", Addr: netip.MustParsePrefix(addrA)})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := vnettest.NewHost(sw2, vnettest.HostConfig{Name: "b", Addr: netip.MustParsePrefix(addrB)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	l, err := b.ListenTCP(80)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	payload := bytes.Repeat([]byte("switchyard pmtu "), 64<<10) // 1 MiB
	got := make(chan []byte, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		data, _ := io.ReadAll(c)
		got <- data
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := a.DialTCP(ctx, netip.MustParseAddrPort(dst))
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write(payload); err != nil {
		t.Fatal(err)
	}
	c.Close()
	select {
	case data := <-got:
		if !bytes.Equal(data, payload) {
			t.Fatalf("received %d bytes, want the %d sent", len(data), len(payload))
		}
	case <-ctx.Done():
		t.Fatal("transfer across the smaller link did not complete: PMTU discovery failed")
	}
	if sent := sw1.Stats().ICMPSent; sent == 0 {
		t.Error("switch sent no ICMP errors, yet the transfer needed them")
	}
}

func TestTooBigICMPFrames(t *testing.T) {
	sw := vswitch.New(vswitch.Config{Router: router})
	defer sw.Close()
	src := porttest.New("src", 9000)
	small := porttest.New("small", 1400)
	sw.Attach(src, vswitch.AttachOptions{})
	sw.Attach(small, vswitch.AttachOptions{})
	dstMAC := vswitch.MAC{2, 0x42, 10, 9, 0, 3}
	small.Inject(frame(vswitch.Broadcast, dstMAC, 60)) // learn the destination behind the small port
	src.Take()

	// IPv4 TCP, 1500 bytes of IP.
	v4 := tcpSuperframe(false, 1460, 1460, header.TCPFlagAck)
	v4.Offload = vswitch.Offload{}
	copy(v4.Data[0:6], dstMAC[:])
	src.InjectFrame(v4)
	// IPv6 TCP.
	v6 := tcpSuperframe(true, 1440, 1440, header.TCPFlagAck)
	v6.Offload = vswitch.Offload{}
	copy(v6.Data[0:6], dstMAC[:])
	src.InjectFrame(v6)

	if n := len(small.Take()); n != 0 {
		t.Fatalf("%d oversize frames reached the small port", n)
	}
	errs := src.Take()
	if len(errs) != 2 {
		t.Fatalf("sender got %d ICMP errors, want 2", len(errs))
	}
	e4 := errs[0].Data
	if vswitch.MAC(e4[0:6]) != vswitch.MAC(v4.Data[6:12]) || vswitch.MAC(e4[6:12]) != router.MAC {
		t.Errorf("ICMPv4 error has wrong MACs")
	}
	ip := header.IPv4(e4[14:])
	if !ip.IsValid(len(e4)-14) || !ip.IsChecksumValid() || ip.SourceAddress().String() != "10.9.0.1" || ip.DestinationAddress().String() != "10.240.0.2" {
		t.Fatalf("ICMPv4 error IP header invalid: src %s dst %s", ip.SourceAddress(), ip.DestinationAddress())
	}
	icmp := header.ICMPv4(ip.Payload())
	if icmp.Type() != header.ICMPv4DstUnreachable || icmp.Code() != header.ICMPv4FragmentationNeeded || icmp.MTU() != 1400 {
		t.Errorf("ICMPv4 type %d code %d mtu %d, want 3/4/1400", icmp.Type(), icmp.Code(), icmp.MTU())
	}
	if checksum.Checksum(icmp, 0) != 0xffff {
		t.Error("ICMPv4 checksum invalid")
	}
	if !bytes.Equal(icmp.Payload(), v4.Data[14:14+28]) {
		t.Error("ICMPv4 error does not quote the IP header and 8 bytes of the packet")
	}

	e6 := errs[1].Data
	ip6 := header.IPv6(e6[14:])
	if !ip6.IsValid(len(e6)-14) || ip6.SourceAddress().String() != "fd00::1" {
		t.Fatalf("ICMPv6 error IP header invalid")
	}
	icmp6 := header.ICMPv6(ip6.Payload())
	if icmp6.Type() != header.ICMPv6PacketTooBig || icmp6.MTU() != 1400 {
		t.Errorf("ICMPv6 type %d mtu %d, want packet too big / 1400", icmp6.Type(), icmp6.MTU())
	}
	pseudo := header.PseudoHeaderChecksum(header.ICMPv6ProtocolNumber, ip6.SourceAddress(), ip6.DestinationAddress(), uint16(len(icmp6)))
	if checksum.Checksum(icmp6, pseudo) != 0xffff {
		t.Error("ICMPv6 checksum invalid")
	}
	if len(e6)-14 > 1280 {
		t.Errorf("ICMPv6 error is %d bytes of IP, over the 1280-byte minimum MTU", len(e6)-14)
	}
	if st := sw.Stats(); st.ICMPSent != 2 {
		t.Errorf("ICMPSent = %d, want 2", st.ICMPSent)
	}
}

// Floods are never answered (one error per destination would spam) and
// nothing answers an ICMP error with another.
func TestTooBigNoErrorForFloods(t *testing.T) {
	sw := vswitch.New(vswitch.Config{Router: router})
	defer sw.Close()
	src := porttest.New("src", 9000)
	small := porttest.New("small", 1400)
	sw.Attach(src, vswitch.AttachOptions{})
	sw.Attach(small, vswitch.AttachOptions{})
	big := tcpSuperframe(false, 1460, 1460, header.TCPFlagAck)
	big.Offload = vswitch.Offload{}
	copy(big.Data[0:6], vswitch.Broadcast[:])
	src.InjectFrame(big)
	if n := len(src.Take()); n != 0 {
		t.Fatalf("a flooded frame drew %d ICMP errors", n)
	}
}
