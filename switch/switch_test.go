package vswitch_test

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/testing/porttest"
)

func mac(b byte) vswitch.MAC { return vswitch.MAC{0x02, 0x42, 0, 0, 0, b} }

// frame builds an Ethernet frame of total length n (at least 14) with an
// IPv4 EtherType and a payload of a repeated byte.
func frame(dst, src vswitch.MAC, n int) []byte {
	b := make([]byte, n)
	copy(b[0:6], dst[:])
	copy(b[6:12], src[:])
	b[12], b[13] = 0x08, 0x00
	for i := 14; i < n; i++ {
		b[i] = byte(i)
	}
	return b
}

type fixture struct {
	t     *testing.T
	sw    *vswitch.Switch
	ports []*porttest.Port
	links []*vswitch.Link
	clock *fakeClock
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// newFixture builds a switch with n in-memory ports named p0..pn-1.
func newFixture(t *testing.T, cfg vswitch.Config, n int, opts ...vswitch.AttachOptions) *fixture {
	t.Helper()
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	cfg.Now = clock.Now
	cfg.Logger = zaptest.NewLogger(t)
	sw := vswitch.New(cfg)
	t.Cleanup(func() { sw.Close() })
	f := &fixture{t: t, sw: sw, clock: clock}
	for i := 0; i < n; i++ {
		p := porttest.New("p"+string(rune('0'+i)), 0)
		var o vswitch.AttachOptions
		if i < len(opts) {
			o = opts[i]
		}
		l, err := sw.Attach(p, o)
		if err != nil {
			t.Fatalf("attach p%d: %v", i, err)
		}
		f.ports = append(f.ports, p)
		f.links = append(f.links, l)
	}
	return f
}

func (f *fixture) inject(port int, b []byte) {
	f.t.Helper()
	if err := f.ports[port].Inject(b); err != nil {
		f.t.Fatalf("inject on p%d: %v", port, err)
	}
}

// got returns, per port, how many frames it was sent since the last call.
func (f *fixture) got() []int {
	out := make([]int, len(f.ports))
	for i, p := range f.ports {
		out[i] = len(p.Take())
	}
	return out
}

func (f *fixture) expect(want ...int) {
	f.t.Helper()
	got := f.got()
	for i := range want {
		if got[i] != want[i] {
			f.t.Fatalf("frames sent per port = %v, want %v", got, want)
		}
	}
}

func TestFloodUnknownUnicastNotBackToIngress(t *testing.T) {
	f := newFixture(t, vswitch.Config{}, 4)
	f.inject(0, frame(mac(9), mac(1), 60))
	f.expect(0, 1, 1, 1)
}

func TestFloodBroadcastAndMulticast(t *testing.T) {
	f := newFixture(t, vswitch.Config{}, 3)
	f.inject(1, frame(vswitch.Broadcast, mac(1), 60))
	f.expect(1, 0, 1)
	f.inject(2, frame(vswitch.MAC{0x01, 0x00, 0x5e, 0, 0, 1}, mac(2), 60)) // IPv4 multicast
	f.expect(1, 1, 0)
	f.inject(0, frame(vswitch.MAC{0x33, 0x33, 0, 0, 0, 1}, mac(3), 60)) // IPv6 multicast
	f.expect(0, 1, 1)
}

func TestKnownUnicastGoesToOnePort(t *testing.T) {
	f := newFixture(t, vswitch.Config{}, 4)
	f.inject(2, frame(vswitch.Broadcast, mac(2), 60)) // learn mac(2) on p2
	f.got()
	f.inject(0, frame(mac(2), mac(1), 60))
	f.expect(0, 0, 1, 0)
	// The reply is known too: mac(1) was learned on p0.
	f.inject(2, frame(mac(1), mac(2), 60))
	f.expect(1, 0, 0, 0)

	st := f.links[2].Stats()
	if st.RX.Frames != 2 || st.TX.Frames != 1 || st.TX.Bytes != 60 || st.RX.Bytes != 120 {
		t.Errorf("p2 counters rx=%d/%dB tx=%d/%dB, want rx=2/120B tx=1/60B",
			st.RX.Frames, st.RX.Bytes, st.TX.Frames, st.TX.Bytes)
	}
}

func TestFrameContentUntouched(t *testing.T) {
	f := newFixture(t, vswitch.Config{}, 2)
	in := frame(mac(2), mac(1), 1514)
	want := append([]byte(nil), in...)
	f.inject(0, in)
	sent := f.ports[1].Sent()
	if len(sent) != 1 || !bytes.Equal(sent[0].Data, want) {
		t.Fatal("forwarded frame differs from the injected one")
	}
}

func TestMACMove(t *testing.T) {
	f := newFixture(t, vswitch.Config{}, 3)
	f.inject(1, frame(vswitch.Broadcast, mac(5), 60))
	f.got()
	f.inject(0, frame(mac(5), mac(1), 60))
	f.expect(0, 1, 0)
	// mac(5) moves to p2 (a VM migrated, a container re-attached).
	f.inject(2, frame(vswitch.Broadcast, mac(5), 60))
	f.got()
	f.inject(0, frame(mac(5), mac(1), 60))
	f.expect(0, 0, 1)
	if st := f.sw.Stats(); st.FDBMoves != 1 {
		t.Errorf("FDBMoves = %d, want 1", st.FDBMoves)
	}
}

func TestAgingFloodsAgain(t *testing.T) {
	f := newFixture(t, vswitch.Config{Aging: 10 * time.Second}, 3)
	f.inject(1, frame(vswitch.Broadcast, mac(5), 60))
	f.got()
	f.inject(0, frame(mac(5), mac(1), 60))
	f.expect(0, 1, 0)

	f.clock.Advance(11 * time.Second)
	f.sw.RefreshClock()
	f.inject(0, frame(mac(5), mac(1), 60))
	f.expect(0, 1, 1) // aged out: unknown again, flooded
	if n := f.sw.Sweep(); n != 1 {
		t.Errorf("after sweep %d entries remain, want 1 (mac(1), just refreshed)", n)
	}
}

// A full table learns no new MAC but still forwards frames from it: a
// flood of random MACs must not blackhole the ports that come later.
func TestFDBFullForwardsUnlearned(t *testing.T) {
	f := newFixture(t, vswitch.Config{MaxMACs: 2}, 2)
	f.inject(0, frame(vswitch.Broadcast, mac(1), 60))
	f.inject(0, frame(vswitch.Broadcast, mac(2), 60))
	f.got()
	// A flood of new source MACs: none learned, all forwarded.
	for i := 10; i < 200; i++ {
		f.inject(0, frame(vswitch.Broadcast, mac(byte(i)), 60))
	}
	f.expect(0, 190)
	st := f.sw.Stats()
	if st.FDBEntries != 2 {
		t.Fatalf("FDBEntries = %d, want 2 (capped)", st.FDBEntries)
	}
	if st.FDBFull != 190 {
		t.Errorf("FDBFull = %d, want 190", st.FDBFull)
	}
	if d := f.links[0].Stats().RX.Drops; d != 0 {
		t.Errorf("%d drops, want 0: a full table forwards", d)
	}
	// A newcomer behind p1 is not learned either, but its frames get
	// through: to a known MAC, and to an unlearned one (flooded).
	f.inject(1, frame(mac(2), mac(99), 60))
	f.expect(1, 0)
	f.inject(1, frame(mac(50), mac(99), 60))
	f.expect(1, 0)
}

func TestIsolation(t *testing.T) {
	iso := vswitch.AttachOptions{Isolated: true}
	// p0, p1 are endpoints with icc=false; p2 is the gateway.
	f := newFixture(t, vswitch.Config{}, 3, iso, iso, vswitch.AttachOptions{})
	gw := mac(0xfe)
	f.inject(2, frame(vswitch.Broadcast, gw, 60)) // gateway ARP
	f.expect(1, 1, 0)
	f.inject(0, frame(vswitch.Broadcast, mac(1), 60)) // endpoint ARP: only the gateway hears it
	f.expect(0, 0, 1)
	f.inject(1, frame(vswitch.Broadcast, mac(2), 60))
	f.expect(0, 0, 1)

	f.inject(0, frame(mac(2), mac(1), 60)) // endpoint to endpoint: blocked
	f.expect(0, 0, 0)
	if d := f.links[0].Stats().RX.DropsBy[vswitch.DropIsolated]; d != 1 {
		t.Errorf("isolated drops on p0 = %d, want 1", d)
	}
	f.inject(0, frame(gw, mac(1), 60)) // endpoint to gateway: allowed
	f.expect(0, 0, 1)
	f.inject(2, frame(mac(2), gw, 60)) // gateway to endpoint: allowed
	f.expect(0, 1, 0)
}

func TestMalformedFramesDroppedAndCounted(t *testing.T) {
	f := newFixture(t, vswitch.Config{}, 2)
	f.inject(0, []byte{1, 2, 3})                                     // runt
	f.inject(0, frame(mac(2), vswitch.MAC{0x01, 0, 0, 0, 0, 1}, 60)) // group source
	f.inject(0, frame(mac(2), vswitch.MAC{}, 60))                    // zero source
	f.inject(0, nil)
	f.expect(0, 0)
	if d := f.links[0].Stats().RX.DropsBy[vswitch.DropMalformed]; d != 4 {
		t.Errorf("malformed drops = %d, want 4", d)
	}
	// The switch still forwards good frames afterwards.
	f.inject(0, frame(vswitch.Broadcast, mac(1), 60))
	f.expect(0, 1)
}

func TestMTU(t *testing.T) {
	sw := vswitch.New(vswitch.Config{Logger: zaptest.NewLogger(t)})
	defer sw.Close()
	big := porttest.New("big", 9000)
	small := porttest.New("small", 1500)
	if _, err := sw.Attach(big, vswitch.AttachOptions{}); err != nil {
		t.Fatal(err)
	}
	ls, err := sw.Attach(small, vswitch.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// 9014 bytes fit the 9000 port but not the 1500 one: dropped on egress.
	if err := big.Inject(frame(vswitch.Broadcast, mac(1), 9014)); err != nil {
		t.Fatal(err)
	}
	if n := len(small.Take()); n != 0 {
		t.Fatalf("oversize frame reached the MTU 1500 port")
	}
	if d := ls.Stats().TX.DropsBy[vswitch.DropOversize]; d != 1 {
		t.Errorf("egress oversize drops = %d, want 1", d)
	}
	// Too big for the ingress port's own MTU: dropped on ingress.
	if err := small.Inject(frame(vswitch.Broadcast, mac(2), 1600)); err != nil {
		t.Fatal(err)
	}
	if d := ls.Stats().RX.DropsBy[vswitch.DropOversize]; d != 1 {
		t.Errorf("ingress oversize drops = %d, want 1", d)
	}
	if n := len(big.Take()); n != 0 {
		t.Errorf("big port got %d frames, want 0", n)
	}
	// A full-size frame with a VLAN tag still fits.
	if err := small.Inject(frame(vswitch.Broadcast, mac(2), 1518)); err != nil {
		t.Fatal(err)
	}
	if n := len(big.Take()); n != 1 {
		t.Errorf("1518-byte frame from the 1500 port: big got %d, want 1", n)
	}
}

func TestHairpinDropped(t *testing.T) {
	f := newFixture(t, vswitch.Config{}, 2)
	f.inject(0, frame(vswitch.Broadcast, mac(1), 60))
	f.inject(0, frame(vswitch.Broadcast, mac(2), 60)) // two MACs behind p0
	f.got()
	f.inject(0, frame(mac(2), mac(1), 60))
	f.expect(0, 0)
	if d := f.links[0].Stats().RX.DropsBy[vswitch.DropHairpin]; d != 1 {
		t.Errorf("hairpin drops = %d, want 1", d)
	}
}

func TestLockMAC(t *testing.T) {
	f := newFixture(t, vswitch.Config{}, 2, vswitch.AttachOptions{LockMAC: mac(1)})
	f.inject(0, frame(vswitch.Broadcast, mac(66), 60))
	f.expect(0, 0)
	if d := f.links[0].Stats().RX.DropsBy[vswitch.DropSpoofed]; d != 1 {
		t.Errorf("spoofed drops = %d, want 1", d)
	}
	f.inject(0, frame(vswitch.Broadcast, mac(1), 60))
	f.expect(0, 1)
}

// DenyMAC: a tunnel refuses frames from the (anycast) gateway MAC, which
// stays learned on the local gateway's port.
func TestDenyMAC(t *testing.T) {
	gw := mac(1)
	f := newFixture(t, vswitch.Config{}, 2, vswitch.AttachOptions{}, vswitch.AttachOptions{DenyMAC: gw})
	f.inject(0, frame(vswitch.Broadcast, gw, 60)) // the local gateway
	f.expect(0, 1)
	f.inject(1, frame(vswitch.Broadcast, gw, 60)) // a remote gateway, through the tunnel
	f.expect(0, 0)
	if d := f.links[1].Stats().RX.DropsBy[vswitch.DropSpoofed]; d != 1 {
		t.Errorf("spoofed drops = %d, want 1", d)
	}
	f.inject(1, frame(gw, mac(7), 60)) // a remote host to the gateway: still the local one
	f.expect(1, 0)
}

func TestDetach(t *testing.T) {
	f := newFixture(t, vswitch.Config{}, 3)
	f.inject(2, frame(vswitch.Broadcast, mac(3), 60))
	f.got()
	f.sw.Detach(f.links[2])
	if !f.ports[2].Closed() {
		t.Error("Detach did not close the port")
	}
	f.inject(0, frame(mac(3), mac(1), 60))
	f.expect(0, 1, 0) // mac(3) forgotten: flooded to the remaining port only
	if len(f.sw.Links()) != 2 {
		t.Errorf("%d links after detach, want 2", len(f.sw.Links()))
	}
	f.sw.Detach(f.links[2]) // twice is harmless
}

func TestAttachDuplicateName(t *testing.T) {
	sw := vswitch.New(vswitch.Config{})
	defer sw.Close()
	if _, err := sw.Attach(porttest.New("x", 0), vswitch.AttachOptions{}); err != nil {
		t.Fatal(err)
	}
	p := porttest.New("x", 0)
	if _, err := sw.Attach(p, vswitch.AttachOptions{}); err == nil {
		t.Fatal("second port named x attached")
	}
	if !p.Closed() {
		t.Error("refused port was not closed")
	}
}

func TestWriteErrorCounted(t *testing.T) {
	sw := vswitch.New(vswitch.Config{})
	defer sw.Close()
	a := porttest.New("a", 0)
	b := porttest.New("b", 0)
	b.WriteErr = errors.New("device gone")
	sw.Attach(a, vswitch.AttachOptions{})
	lb, _ := sw.Attach(b, vswitch.AttachOptions{})
	a.Inject(frame(vswitch.Broadcast, mac(1), 60))
	if d := lb.Stats().TX.DropsBy[vswitch.DropWrite]; d != 1 {
		t.Errorf("write drops = %d, want 1", d)
	}
}

func TestCapture(t *testing.T) {
	f := newFixture(t, vswitch.Config{}, 2)
	var dirs []vswitch.Direction
	f.links[1].SetCapture(func(d vswitch.Direction, fr vswitch.Frame) { dirs = append(dirs, d) })
	f.inject(0, frame(vswitch.Broadcast, mac(1), 60))
	f.inject(1, frame(mac(1), mac(2), 60))
	if len(dirs) != 2 || dirs[0] != vswitch.DirTX || dirs[1] != vswitch.DirRX {
		t.Fatalf("captured directions %v, want [TX RX]", dirs)
	}
	f.links[1].SetCapture(nil)
	f.inject(0, frame(vswitch.Broadcast, mac(1), 60))
	if len(dirs) != 2 {
		t.Fatal("capture still running after SetCapture(nil)")
	}
}
