package vswitch_test

import (
	"testing"

	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/testing/porttest"
)

// knownUnicastPair returns a switch with two discarding ports whose MACs
// have been learned, and the frame that goes from the first to the second.
func knownUnicastPair(tb testing.TB, size int) (*vswitch.Switch, *porttest.Port, *porttest.Port, []byte) {
	sw := vswitch.New(vswitch.Config{})
	a, b := porttest.New("a", 9000), porttest.New("b", 9000)
	a.Discard, b.Discard = true, true
	if _, err := sw.Attach(a, vswitch.AttachOptions{}); err != nil {
		tb.Fatal(err)
	}
	if _, err := sw.Attach(b, vswitch.AttachOptions{}); err != nil {
		tb.Fatal(err)
	}
	b.Inject(frame(vswitch.Broadcast, mac(2), 60))
	a.Inject(frame(vswitch.Broadcast, mac(1), 60))
	return sw, a, b, frame(mac(2), mac(1), size)
}

// The steady-state forwarding path (known source, known destination) must
// not allocate: at millions of frames a second any allocation shows.
func TestKnownUnicastDoesNotAllocate(t *testing.T) {
	sw, a, b, fr := knownUnicastPair(t, 1514)
	defer sw.Close()
	before := b.Written()
	allocs := testing.AllocsPerRun(1000, func() { a.Inject(fr) })
	if allocs != 0 {
		t.Fatalf("forwarding a known-unicast frame allocates %.1f times per frame, want 0", allocs)
	}
	if b.Written()-before < 1000 {
		t.Fatalf("only %d frames forwarded during the run", b.Written()-before)
	}
}

// Flooding (ARP, unknown unicast) must not allocate either.
func TestFloodDoesNotAllocate(t *testing.T) {
	sw, a, _, _ := knownUnicastPair(t, 60)
	defer sw.Close()
	bc := frame(vswitch.Broadcast, mac(1), 60)
	if allocs := testing.AllocsPerRun(1000, func() { a.Inject(bc) }); allocs != 0 {
		t.Fatalf("flooding allocates %.1f times per frame, want 0", allocs)
	}
}
