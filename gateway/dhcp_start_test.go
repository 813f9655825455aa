package gateway_test

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/switchyard-net/switchyard/gateway"
	"github.com/switchyard-net/switchyard/nat"
	vswitch "github.com/switchyard-net/switchyard/switch"
)

// floodPort is a port double whose test drives its ingress by hand.
type floodPort struct {
	mu sync.Mutex
	in vswitch.Ingress
}

func (p *floodPort) Info() vswitch.PortInfo { return vswitch.PortInfo{Name: "flood", Kind: "mem"} }
func (p *floodPort) Start(in vswitch.Ingress) error {
	p.mu.Lock()
	p.in = in
	p.mu.Unlock()
	return nil
}
func (p *floodPort) Write(vswitch.Frame) error { return nil }
func (p *floodPort) Close() error              { return nil }

// noLeases is a DHCP allocator that never has an address to give.
type noLeases struct{}

func (noLeases) Lease(vswitch.MAC, string, netip.Addr) (netip.Addr, error) {
	return netip.Addr{}, errNoLease
}
func (noLeases) Release(vswitch.MAC, netip.Addr) {}

var errNoLease = &leaseError{}

type leaseError struct{}

func (*leaseError) Error() string { return "no lease" }

// A client that broadcasts while the gateway starts must not race with
// New: the switch's goroutine (here the flooding port's) runs intercept,
// which reads the DHCP server, as soon as the gateway's port is attached,
// so New sets the server before it attaches the port. Run with -race.
func TestNewWithDHCPUnderBroadcastLoad(t *testing.T) {
	log := zaptest.NewLogger(t)
	sw, in := floodingSwitch(t, log)

	// An IPv4 UDP broadcast from 0.0.0.0:68 to 255.255.255.255:67: not a
	// neighbor query, so intercept goes on to ask the DHCP server.
	frame := make([]byte, 14+20+8+16)
	copy(frame[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(frame[6:12], []byte{0x02, 0, 0, 0, 0, 0x99})
	frame[12], frame[13] = 0x08, 0x00
	ip := frame[14:]
	ip[0], ip[3], ip[8], ip[9] = 0x45, byte(len(ip)), 64, 17
	copy(ip[16:20], []byte{255, 255, 255, 255})
	udp := ip[20:]
	udp[1], udp[3], udp[5] = 68, 67, byte(len(udp))

	defer flood(in, frame)()

	gw, err := gateway.New(sw, gateway.Config{
		Network: "load", Subnet: netip.MustParsePrefix("10.241.0.0/24"), Addr: netip.MustParseAddr("10.241.0.1"),
		MAC: vswitch.MAC{0x02, 0x42, 10, 241, 0, 1}, Logger: log,
		DHCP: &gateway.DHCPConfig{Allocator: noLeases{}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	// Wait until the flooding goroutine has handed the gateway frames
	// after New returned, so that it has read the DHCP server at least
	// once with nothing ordering that read after New's write.
	waitFrames(t, gw, 100)
}

// flood hands the switch copies of frame through in, from a goroutine of
// its own, until the function it returns is called (bounded: 30 s, 10
// million frames).
func flood(in vswitch.Ingress, frame []byte) (stop func()) {
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, len(frame))
		deadline := time.Now().Add(30 * time.Second)
		for i := 0; i < 10_000_000 && time.Now().Before(deadline); i++ {
			select {
			case <-quit:
				return
			default:
			}
			copy(buf, frame)
			in.Receive(vswitch.Frame{Data: buf})
		}
	}()
	return func() { close(quit); <-done }
}

// Frames to the gateway's own MAC while New runs must not race with the
// ping proxy and the hairpin NAT, which start sets after the port is
// attached: intercept drops such frames until the gateway is up. Here a
// container pings 127.0.0.1 (refused by egress: nothing leaves) through
// the gateway as it starts. Run with -race.
func TestNewWithPingsToTheGatewayMAC(t *testing.T) {
	log := zaptest.NewLogger(t)
	sw, in := floodingSwitch(t, log)

	gwMAC := vswitch.MAC{0x02, 0x42, 10, 242, 0, 1}
	frame := make([]byte, 14+20+8)
	copy(frame[0:6], gwMAC[:])
	copy(frame[6:12], []byte{0x02, 0, 0, 0, 0, 0x98})
	frame[12], frame[13] = 0x08, 0x00
	ip := frame[14:]
	ip[0], ip[3], ip[8], ip[9] = 0x45, byte(len(ip)), 64, 1
	copy(ip[12:16], []byte{10, 242, 0, 5})
	copy(ip[16:20], []byte{127, 0, 0, 1})
	ip[20] = 8 // echo request
	defer flood(in, frame)()

	table, err := nat.NewTable(nat.Config{
		Network: "load", Subnet: netip.MustParsePrefix("10.242.0.0/24"), Gateway: netip.MustParseAddr("10.242.0.1"),
	})
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(sw, gateway.Config{
		Network: "load", Subnet: netip.MustParsePrefix("10.242.0.0/24"), Addr: netip.MustParseAddr("10.242.0.1"),
		MAC: gwMAC, Logger: log, NAT: table,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	waitFrames(t, gw, 100)
}

// floodingSwitch is a switch with one port, a floodPort, whose ingress
// it returns for flood.
func floodingSwitch(t *testing.T, log *zap.Logger) (*vswitch.Switch, vswitch.Ingress) {
	t.Helper()
	sw := vswitch.New(vswitch.Config{Name: "load", Logger: log})
	t.Cleanup(func() { sw.Close() })
	client := &floodPort{}
	if _, err := sw.Attach(client, vswitch.AttachOptions{}); err != nil {
		t.Fatal(err)
	}
	client.mu.Lock()
	defer client.mu.Unlock()
	return sw, client.in
}

// waitFrames waits (at most 10 s) until the gateway has taken n more
// frames from the switch than when it is called.
func waitFrames(t *testing.T, gw *gateway.Gateway, n uint64) {
	t.Helper()
	base := gw.Link().Stats().TX.Frames
	deadline := time.Now().Add(10 * time.Second)
	for gw.Link().Stats().TX.Frames < base+n {
		if time.Now().After(deadline) {
			t.Fatalf("the gateway took %d frames in 10s, want %d", gw.Link().Stats().TX.Frames-base, n)
		}
		time.Sleep(time.Millisecond)
	}
}
