package stackport

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	vswitch "github.com/switchyard-net/switchyard/switch"
)

// recorder is an Ingress that keeps copies of the frames the netstack
// sends, and runs onFrame (if set) on the netstack's goroutine for each.
type recorder struct {
	mu      sync.Mutex
	frames  [][]byte
	got     chan struct{}
	onFrame func()
}

func (r *recorder) Receive(f vswitch.Frame) {
	r.mu.Lock()
	r.frames = append(r.frames, append([]byte(nil), f.Data...))
	r.mu.Unlock()
	if r.onFrame != nil {
		r.onFrame()
	}
	select {
	case r.got <- struct{}{}:
	default:
	}
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.frames)
}

var (
	portMAC = vswitch.MAC{0x02, 0, 0, 0, 0, 1}
	peerMAC = vswitch.MAC{0x02, 0, 0, 0, 0, 2}
)

// arpRequest asks, from 10.9.0.2 at peerMAC, who has 10.9.0.1.
func arpRequest() []byte {
	b := make([]byte, header.EthernetMinimumSize+header.ARPSize)
	header.Ethernet(b).Encode(&header.EthernetFields{
		SrcAddr: "\x02\x00\x00\x00\x00\x02", DstAddr: header.EthernetBroadcastAddress, Type: header.ARPProtocolNumber,
	})
	a := header.ARP(b[header.EthernetMinimumSize:])
	a.SetIPv4OverEthernet()
	a.SetOp(header.ARPRequest)
	copy(a.HardwareAddressSender(), peerMAC[:])
	copy(a.ProtocolAddressSender(), []byte{10, 9, 0, 2})
	copy(a.ProtocolAddressTarget(), []byte{10, 9, 0, 1})
	return b
}

// newTestPort is a Port with a netstack at 10.9.0.1/24, started with r.
func newTestPort(t *testing.T, r *recorder) *Port {
	t.Helper()
	p := New(Config{Name: "gw", MAC: portMAC})
	s := NewStack()
	route, err := p.AddNIC(s, 1, netip.MustParsePrefix("10.9.0.1/24"))
	if err != nil {
		t.Fatal(err)
	}
	s.AddRoute(route)
	if err := p.Start(r); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Close()
		s.Close()
		s.Wait()
	})
	return p
}

// A frame written from a goroutine outside any netstack is delivered on
// that goroutine: the netstack's answer has reached the switch when Write
// returns.
func TestWriteDeliversInline(t *testing.T) {
	r := &recorder{got: make(chan struct{}, 1)}
	p := newTestPort(t, r)
	if err := p.Write(vswitch.Frame{Data: arpRequest()}); err != nil {
		t.Fatal(err)
	}
	if n := r.count(); n != 1 {
		t.Fatalf("%d frames from the netstack when Write returned, want the ARP reply already", n)
	}
	if got := p.Inlined(); got != 1 {
		t.Errorf("Inlined() = %d, want 1", got)
	}
	if a := header.ARP(r.frames[0][header.EthernetMinimumSize:]); a.Op() != header.ARPReply {
		t.Errorf("the netstack sent op %d, want an ARP reply", a.Op())
	}
}

// A frame written by a goroutine that is inside a netstack's send path
// (here: the switch forwarding the netstack's own reply back to it) is
// queued, not delivered inline, so it cannot re-enter the netstack's
// locks; it still arrives.
func TestWriteFromSendPathIsQueued(t *testing.T) {
	r := &recorder{got: make(chan struct{}, 4)}
	var p *Port
	var once sync.Once
	r.onFrame = func() {
		once.Do(func() {
			if err := p.Write(vswitch.Frame{Data: arpRequest()}); err != nil {
				t.Errorf("write from the send path: %v", err)
			}
		})
	}
	p = newTestPort(t, r)
	if err := p.Write(vswitch.Frame{Data: arpRequest()}); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(10 * time.Second)
	for r.count() < 2 {
		select {
		case <-r.got:
		case <-deadline:
			t.Fatalf("%d replies, want 2: the queued request was never delivered", r.count())
		}
	}
	if got := p.Inlined(); got != 1 {
		t.Errorf("Inlined() = %d, want 1 (the first request only)", got)
	}
}

// Nothing reaches the netstack after Close: a Write then is refused.
func TestWriteAfterCloseRefused(t *testing.T) {
	r := &recorder{got: make(chan struct{}, 1)}
	p := newTestPort(t, r)
	p.Close()
	if err := p.Write(vswitch.Frame{Data: arpRequest()}); err != ErrClosed {
		t.Errorf("Write after Close = %v, want ErrClosed", err)
	}
	if n := r.count(); n != 0 {
		t.Errorf("%d frames from the netstack after Close, want none", n)
	}
}

// While some goroutine is in a netstack's send path, a frame that is not
// Direct is queued; a Direct one (from a reader that holds no lock) is
// still delivered inline.
func TestDirectFrameInlineWhileSending(t *testing.T) {
	r := &recorder{got: make(chan struct{}, 4)}
	p := newTestPort(t, r)
	sending.Add(1) // another goroutine is inside a send path
	defer sending.Add(-1)
	if err := p.Write(vswitch.Frame{Data: arpRequest(), Direct: true}); err != nil {
		t.Fatal(err)
	}
	if n, in := r.count(), p.Inlined(); n != 1 || in != 1 {
		t.Fatalf("after a Direct frame: %d replies, %d inlined; want 1 and 1", n, in)
	}
	if err := p.Write(vswitch.Frame{Data: arpRequest()}); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(10 * time.Second)
	for r.count() < 2 {
		select {
		case <-r.got:
		case <-deadline:
			t.Fatal("the queued frame was never delivered")
		}
	}
	if in := p.Inlined(); in != 1 {
		t.Errorf("Inlined() = %d after a frame that is not Direct, want it still 1", in)
	}
}
