package gwfuzz_test

import (
	"bytes"
	"encoding/binary"
	"testing"

	"go.uber.org/goleak"

	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/testing/vnettest"
)

// TestMain fails the package's tests if any goroutine outlives them.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// frameSeed wraps frames in vnettest.SplitFrames' format.
func frameSeed(frames ...[]byte) []byte {
	var b []byte
	for _, f := range frames {
		b = binary.BigEndian.AppendUint16(b, uint16(len(f)))
		b = append(b, f...)
	}
	return b
}

// synTo is an Ethernet/IPv4/TCP SYN from host a (10.0.0.3) to dstMAC,
// dst:port.
func synTo(dstMAC vswitch.MAC, dst [4]byte, port uint16) []byte {
	f := make([]byte, 14+20+20)
	copy(f, dstMAC[:])
	copy(f[6:], []byte{0x02, 0x42, 10, 0, 0, 3, 0x08, 0x00})
	ip := f[14:]
	ip[0], ip[8], ip[9] = 0x45, 64, 6
	binary.BigEndian.PutUint16(ip[2:], 40)
	copy(ip[12:], []byte{10, 0, 0, 3})
	copy(ip[16:], dst[:])
	tcp := ip[20:]
	binary.BigEndian.PutUint16(tcp[0:], 40000)
	binary.BigEndian.PutUint16(tcp[2:], port)
	tcp[12], tcp[13] = 5<<4, 0x02
	return f
}

// Frames the fuzzer makes go from a host through the switch to
// Switchyard's real gateway (ARP, ICMP, TCP and UDP to its netstack,
// DHCP, egress to an uplink network) and to another host; the network
// must survive them all.
func FuzzThroughGateway(f *testing.F) {
	w := vnettest.New(f, vnettest.Seed(1))
	inet := w.NewNetwork("inet", "203.0.113.0/24")
	lan := w.NewNetwork("lan", "10.0.0.0/24")
	lan.NewGateway(vnettest.GatewayConfig{Uplink: inet, DHCP: true})
	a, _ := lan.NewHost("a"), lan.NewHost("b")
	gwMAC := vnettest.DockerMAC(lan.GatewayAddr())
	junk := make([]byte, 60)
	copy(junk, gwMAC[:])
	f.Add(frameSeed(synTo(gwMAC, lan.GatewayAddr().As4(), 80), junk, bytes.Repeat([]byte{0xff}, 42)))
	f.Add(frameSeed(synTo(gwMAC, [4]byte{203, 0, 113, 9}, 443))) // egress
	f.Fuzz(func(t *testing.T, data []byte) { vnettest.FuzzFrames(t, a, data) })
}
