package tap_test

import (
	"fmt"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/switchyard-net/switchyard/internal/evloop"
	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/tap"
	"github.com/switchyard-net/switchyard/testing/netnstest"
)

func newLoop(t *testing.T, spin time.Duration) *evloop.Loop {
	t.Helper()
	// Contention off: the tests count wake-ups, which a loaded machine
	// (CI runs packages side by side) would otherwise raise by stopping
	// the spin.
	l, err := evloop.New(evloop.Config{Spin: spin, BufLen: tap.LoopBufLen, Contention: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func openLooped(t *testing.T, ns *netnstest.NS, addr string, offload bool, l *evloop.Loop, onGone func(error)) *tap.Port {
	t.Helper()
	return openWith(t, ns, addr, offload, func(c *tap.Config) { c.Loop, c.OnGone = l, onGone })
}

// Two TAPs read by one loop carry a ping and a bulk transfer, with and
// without offload: the loop's shared buffer and the per-port budget lose
// and corrupt nothing.
func TestLoopTwoNamespacesThroughSwitch(t *testing.T) {
	for _, offload := range []bool{false, true} {
		t.Run(fmt.Sprintf("offload=%v", offload), func(t *testing.T) {
			a, b := netnstest.New(t), netnstest.New(t)
			l := newLoop(t, 50*time.Microsecond)
			sw := vswitch.New(vswitch.Config{Logger: zaptest.NewLogger(t)})
			t.Cleanup(func() { sw.Close() })
			for _, p := range []*tap.Port{openLooped(t, a, "10.77.0.2/24", offload, l, nil), openLooped(t, b, "10.77.0.3/24", offload, l, nil)} {
				if _, err := sw.Attach(p, vswitch.AttachOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			if err := a.Ping("10.77.0.3", 2); err != nil {
				t.Fatal(err)
			}
			sum, _ := netnstest.Transfer(t, a, b, "10.77.0.3:9000", 16<<20)
			t.Logf("16 MiB transferred, sha256 %x; loop %+v", sum[:6], l.Stats())
			if st := l.Stats(); st.Frames < 100 {
				t.Errorf("the loop read %d frames, want the transfer's", st.Frames)
			}
		})
	}
}

// The point of the loop: an answer that comes back on the other TAP
// while the loop still spins after forwarding the request is read
// without a wake-up. With a spin longer than the ping interval, fifty
// round trips cost a handful of wake-ups, not a hundred.
func TestLoopCatchesTheAnswerOnTheOtherTAP(t *testing.T) {
	a, b := netnstest.New(t), netnstest.New(t)
	l := newLoop(t, 2*time.Second)
	sw := vswitch.New(vswitch.Config{Logger: zaptest.NewLogger(t)})
	t.Cleanup(func() { sw.Close() })
	for _, p := range []*tap.Port{openLooped(t, a, "10.77.0.2/24", true, l, nil), openLooped(t, b, "10.77.0.3/24", true, l, nil)} {
		sw.Attach(p, vswitch.AttachOptions{})
	}
	if err := a.Ping("10.77.0.3", 1); err != nil { // ARP and neighbour entries
		t.Fatal(err)
	}
	before := l.Stats()
	a.MustRun("ping", "-c", "50", "-i", "0.01", "-W", "1", "-q", "10.77.0.3")
	after := l.Stats()
	frames, wakeups := after.Frames-before.Frames, after.Wakeups-before.Wakeups
	t.Logf("50 round trips: %d frames, %d wake-ups of the loop", frames, wakeups)
	if frames < 100 {
		t.Fatalf("%d frames for 50 echo round trips, want ≥ 100", frames)
	}
	if wakeups > 10 {
		t.Errorf("%d wake-ups for 50 round trips 10 ms apart with a 2 s spin, want ≤ 10", wakeups)
	}
}

// A device deleted under a looped port is reported through OnGone, the
// loop forgets it, and the other port's traffic goes on; closing the gone
// port afterwards does not hang.
func TestLoopDeviceDeletedCallsOnGone(t *testing.T) {
	a, b, c := netnstest.New(t), netnstest.New(t), netnstest.New(t)
	l := newLoop(t, 50*time.Microsecond)
	sw := vswitch.New(vswitch.Config{})
	t.Cleanup(func() { sw.Close() })
	gone := make(chan error, 1)
	pa := openLooped(t, a, "10.77.0.2/24", true, l, func(err error) { gone <- err })
	la, _ := sw.Attach(pa, vswitch.AttachOptions{})
	sw.Attach(openLooped(t, b, "10.77.0.3/24", true, l, nil), vswitch.AttachOptions{})
	sw.Attach(openLooped(t, c, "10.77.0.4/24", true, l, nil), vswitch.AttachOptions{})
	a.MustRun("ip", "link", "del", "eth0")
	select {
	case err := <-gone:
		t.Logf("OnGone: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("OnGone not called after the device was deleted")
	}
	if err := b.Ping("10.77.0.4", 2); err != nil {
		t.Fatalf("after another port's device went away: %v", err)
	}
	sw.Detach(la)
	if err := c.Ping("10.77.0.3", 1); err != nil {
		t.Fatalf("after detaching the gone port: %v", err)
	}
}
