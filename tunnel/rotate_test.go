package tunnel_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"net"
	"slices"
	"testing"
	"time"

	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/tunnel"
)

// The key ID is the documented hash, the same for the same key on every
// host, and different for different keys (for these two).
func TestKeyIDOf(t *testing.T) {
	k := testKey(40)
	sum := sha256.Sum256(append([]byte("switchyard tunnel key ID\x00"), k[:]...))
	if got, want := tunnel.KeyIDOf(k), binary.BigEndian.Uint16(sum[:2]); got != want {
		t.Fatalf("KeyIDOf = %#04x, want %#04x (first two bytes of SHA-256(label ‖ key))", got, want)
	}
	if tunnel.KeyIDOf(k) == tunnel.KeyIDOf(testKey(41)) {
		t.Fatal("two test keys share an ID; pick others")
	}
}

// secureNode returns a node sealing under key, announced as KeyIDOf(key).
func secureNode(tb testing.TB, id uint32, key tunnel.Key) *node {
	tb.Helper()
	return newNode(tb, id, tunnel.Config{Mode: tunnel.ModeSecure, Key: key, KeyID: tunnel.KeyIDOf(key)})
}

// pump sends frames from one node's containers to the other's until stop
// is closed, never more than inflight ahead of what the other has
// delivered, so that no socket buffer overflows and every frame is owed.
// It reports how many it sent on done. Bounded: at most 60 s and 2^26
// frames (an idle machine sends some 10^5 a second), and the test fails
// if it reaches either before stop is closed.
func pump(tb testing.TB, from, to *node, src, dst vswitch.MAC, stop <-chan struct{}, done chan<- uint64) {
	const inflight = 32
	base := to.local.Written()
	deadline := time.Now().Add(60 * time.Second)
	var sent uint64
	defer func() { done <- sent }()
	for {
		select {
		case <-stop:
			return
		default:
		}
		if sent == 1<<26 || time.Now().After(deadline) {
			tb.Errorf("pump %v→%v stopped after %d frames: limit reached before the test ended", src, dst, sent)
			return
		}
		for sent-(to.local.Written()-base) >= inflight {
			select {
			case <-to.local.Notify():
			case <-stop:
				return
			case <-time.After(time.Second):
				tb.Errorf("%d frames sent, %d delivered: stuck", sent, to.local.Written()-base)
				return
			}
			to.local.Take() // only counts matter
		}
		if err := from.local.Inject(rawFrame(dst, src, byte(sent), 64)); err != nil {
			tb.Error(err)
			return
		}
		sent++
	}
}

// Two hosts exchange frames without pause while first one, then the other
// rotates its key; the frames keep flowing in every phase, none is lost,
// none is refused, and both end with the new key alone.
func TestRotateWithoutLoss(t *testing.T) {
	const window = 2 * time.Second
	oldKey, newKey := testKey(50), testKey(51)
	oldID, newID := tunnel.KeyIDOf(oldKey), tunnel.KeyIDOf(newKey)
	a, b := secureNode(t, 1, oldKey), secureNode(t, 2, oldKey)
	mesh(t, a, b)

	stop := make(chan struct{})
	doneAB, doneBA := make(chan uint64, 1), make(chan uint64, 1)
	go pump(t, a, b, macN(1), macN(2), stop, doneAB)
	go pump(t, b, a, macN(2), macN(1), stop, doneBA)
	stopped := false
	stopPumps := func() (ab, ba uint64) {
		if !stopped {
			close(stop)
			stopped = true
		}
		return <-doneAB, <-doneBA
	}
	defer func() {
		if !stopped {
			stopPumps()
		}
	}()
	flowing := func(phase string) {
		t.Helper()
		ra, rb := a.local.Written(), b.local.Written()
		deadline := time.Now().Add(10 * time.Second)
		for a.local.Written() < ra+200 || b.local.Written() < rb+200 {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d frames to a and %d to b in 10 s, want 200 each; a: %+v; b: %+v",
					phase, a.local.Written()-ra, b.local.Written()-rb, a.tun.Stats().DropsBy, b.tun.Stats().DropsBy)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	flowing("before the rotation")
	startA := time.Now()
	if err := a.tun.Rotate(tunnel.Rotation{Key: newKey, KeyID: newID, Window: window}); err != nil {
		t.Fatal(err)
	}
	flowing("after a accepts the new key")
	if err := b.tun.Rotate(tunnel.Rotation{Key: newKey, KeyID: newID, Window: window}); err != nil {
		t.Fatal(err)
	}
	if late := time.Since(startA); late >= window {
		t.Fatalf("b rotated %v after a, not within the window of %v: the machine is too slow for this test", late, window)
	}
	waitFor(t, "a to seal under the new key", func() bool { return a.tun.Keys().SendID == newID })
	flowing("after a seals under the new key")
	waitFor(t, "both to drop the old key", func() bool {
		return a.tun.Keys().Rotation == nil && b.tun.Keys().Rotation == nil
	})
	flowing("after the rotation")

	ab, ba := stopPumps()
	waitFor(t, "every frame a sent to reach b", func() bool { return b.local.Written() >= ab })
	waitFor(t, "every frame b sent to reach a", func() bool { return a.local.Written() >= ba })
	if b.local.Written() != ab || a.local.Written() != ba {
		t.Errorf("delivered %d of %d frames a→b and %d of %d b→a", b.local.Written(), ab, a.local.Written(), ba)
	}
	for _, n := range []*node{a, b} {
		if st := n.tun.Stats(); st.Drops != 0 {
			t.Errorf("drops during the rotation: %v", st.DropsBy)
		}
		ks := n.tun.Keys()
		if ks.SendID != newID || len(ks.Keys) != 1 || ks.Keys[0].ID != newID {
			t.Errorf("after the rotation: sealing under %d, accepting %v; want key %d alone (old %d)", ks.SendID, ks.Keys, newID, oldID)
		}
		if ks.Keys[0].RXDatagrams == 0 {
			t.Error("nothing received under the new key")
		}
	}
	t.Logf("%d frames a→b, %d b→a, none lost", ab, ba)
}

// rogue is a peer of n's that seals datagrams itself, with a sender ID of
// its own, so that a test can send one datagram twice.
type rogue struct {
	conn *net.UDPConn
	to   *node
}

func newRogue(tb testing.TB, to *node) *rogue {
	tb.Helper()
	c := loopbackConn(tb)
	tb.Cleanup(func() { c.Close() })
	if err := to.tun.AddPeer(c.LocalAddr().(*net.UDPAddr).AddrPort()); err != nil {
		tb.Fatal(err)
	}
	return &rogue{conn: c, to: to}
}

// send sends d and waits until the port has counted it: delivered (one
// more frame to its containers) or dropped for reason want.
func (r *rogue) send(tb testing.TB, d []byte, want tunnel.DropReason, wantDelivered bool) {
	tb.Helper()
	frames, drops := r.to.local.Written(), r.to.tun.Stats().DropsBy[want]
	if _, err := r.conn.WriteToUDPAddrPort(d, r.to.tun.LocalAddr()); err != nil {
		tb.Fatal(err)
	}
	waitFor(tb, "the datagram to be counted", func() bool {
		return r.to.local.Written() > frames || r.to.tun.Stats().DropsBy[want] > drops
	})
	if got := r.to.local.Written() > frames; got != wantDelivered {
		tb.Fatalf("datagram delivered: %v, want %v (drops %v)", got, wantDelivered, r.to.tun.Stats().DropsBy)
	}
}

// During a rotation a datagram under either key is accepted once and its
// replay refused; once the keys are dropped, datagrams under them are
// refused and counted as unknown keys.
func TestRotateReplayAndDroppedKey(t *testing.T) {
	k0, k1, k2 := testKey(60), testKey(61), testKey(62)
	id0, id1, id2 := tunnel.KeyIDOf(k0), tunnel.KeyIDOf(k1), tunnel.KeyIDOf(k2)
	n := secureNode(t, 2, k0)
	r := newRogue(t, n)
	if err := n.tun.Rotate(tunnel.Rotation{Key: k1, KeyID: id1, Window: time.Hour}); err != nil {
		t.Fatal(err)
	}
	frame := rawFrame(macN(2), macN(9), 0, 64)
	for _, s := range []*tunnel.Sealer{mustSealer(t, k0, id0, 99, 1), mustSealer(t, k1, id1, 99, 1)} {
		d := seal(t, s, 42, frame)
		r.send(t, bytes.Clone(d), tunnel.DropReplay, true)
		r.send(t, d, tunnel.DropReplay, false)
	}
	if got := n.tun.Stats().DropsBy[tunnel.DropReplay]; got != 2 {
		t.Errorf("%d replays refused, want 2 (one per key)", got)
	}
	ks := n.tun.Keys()
	if ks.SendID != id0 || ks.Rotation == nil || ks.Rotation.KeyID != id1 || ks.Rotation.Key != (tunnel.Key{}) {
		t.Errorf("mid-rotation state %+v: want sealing under %d, rotating to %d, key not shown", ks, id0, id1)
	}
	if want := []tunnel.KeyStats{{ID: id0, RXDatagrams: 1}, {ID: id1, RXDatagrams: 1}}; !slices.Equal(sortKeys(ks.Keys), sortKeys(want)) {
		t.Errorf("keys %v, want %v", ks.Keys, want)
	}

	// A window of 0 replaces every key at once.
	if err := n.tun.Rotate(tunnel.Rotation{Key: k2, KeyID: id2}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*tunnel.Sealer{mustSealer(t, k0, id0, 99, 100), mustSealer(t, k1, id1, 99, 100)} {
		r.send(t, seal(t, s, 42, frame), tunnel.DropUnknownKey, false)
	}
	if got := n.tun.Stats().DropsBy[tunnel.DropUnknownKey]; got != 2 {
		t.Errorf("%d datagrams under dropped keys counted, want 2", got)
	}
	r.send(t, seal(t, mustSealer(t, k2, id2, 99, 1), 42, frame), tunnel.DropUnknownKey, true)
	if ks := n.tun.Keys(); ks.SendID != id2 || ks.Rotation != nil || len(ks.Keys) != 1 {
		t.Errorf("after a rotation with no window: %+v, want key %d alone", ks, id2)
	}
}

func sortKeys(ks []tunnel.KeyStats) []tunnel.KeyStats {
	ks = slices.Clone(ks)
	slices.SortFunc(ks, func(a, b tunnel.KeyStats) int { return int(a.ID) - int(b.ID) })
	return ks
}

// A rotation that started before a restart resumes in the phase its start
// time puts it in; what the port seals under reaches the peer.
func TestRotateResume(t *testing.T) {
	const window = time.Hour
	k0, k1 := testKey(70), testKey(71)
	id0, id1 := tunnel.KeyIDOf(k0), tunnel.KeyIDOf(k1)
	for _, tc := range []struct {
		name     string
		ago      time.Duration
		sendID   uint16
		accepted []uint16
	}{
		{"accepting", window / 2, id0, []uint16{id0, id1}},
		{"sealing", 3 * window / 2, id1, []uint16{id0, id1}},
		{"done", 2 * window, id1, []uint16{id1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := secureNode(t, 1, k0), secureNode(t, 2, k0)
			mesh(t, a, b)
			if err := b.tun.Rotate(tunnel.Rotation{Key: k1, KeyID: id1, Window: time.Nanosecond}); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "b to rotate", func() bool { return b.tun.Keys().Rotation == nil })
			// b accepts k1 alone now: a frame from a arrives only if a seals under k1.
			r := tunnel.Rotation{Key: k1, KeyID: id1, Start: time.Now().Add(-tc.ago), Window: window}
			if err := a.tun.Rotate(r); err != nil {
				t.Fatal(err)
			}
			ks := a.tun.Keys()
			var ids []uint16
			for _, k := range ks.Keys {
				ids = append(ids, k.ID)
			}
			slices.Sort(ids)
			want := slices.Sorted(slices.Values(tc.accepted))
			if ks.SendID != tc.sendID || !slices.Equal(ids, want) {
				t.Fatalf("sealing under %d, accepting %v; want %d and %v", ks.SendID, ids, tc.sendID, want)
			}
			a.local.Inject(rawFrame(macN(2), macN(1), 0, 64))
			reason := tunnel.DropUnknownKey
			waitFor(t, "a's frame to be delivered or refused", func() bool {
				return b.local.Written() > 0 || b.tun.Stats().DropsBy[reason] > 0
			})
			if got, want := b.local.Written() > 0, tc.sendID == id1; got != want {
				t.Errorf("frame delivered: %v, want %v", got, want)
			}
		})
	}
}

func TestRotateErrors(t *testing.T) {
	k0, k1 := testKey(80), testKey(81)
	n := secureNode(t, 1, k0)
	for _, tc := range []struct {
		name string
		r    tunnel.Rotation
		want error
	}{
		{"the key in use", tunnel.Rotation{Key: k0, KeyID: tunnel.KeyIDOf(k0)}, tunnel.ErrKeyID},
		{"another key under the ID in use", tunnel.Rotation{Key: k1, KeyID: tunnel.KeyIDOf(k0)}, tunnel.ErrKeyID},
		{"zero key", tunnel.Rotation{KeyID: 3}, nil},
		{"negative window", tunnel.Rotation{Key: k1, KeyID: 3, Window: -time.Second}, nil},
	} {
		err := n.tun.Rotate(tc.r)
		if err == nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want an error (%v)", tc.name, err, tc.want)
		}
	}
	if ks := n.tun.Keys(); ks.Rotation != nil || len(ks.Keys) != 1 {
		t.Errorf("refused rotations changed the keys: %+v", ks)
	}
	// Under way to k1 as ID 3, the port refuses another key as ID 3.
	if err := n.tun.Rotate(tunnel.Rotation{Key: k1, KeyID: 3, Window: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if err := n.tun.Rotate(tunnel.Rotation{Key: testKey(82), KeyID: 3, Window: time.Hour}); !errors.Is(err, tunnel.ErrKeyID) {
		t.Errorf("another key under an accepted ID: %v, want ErrKeyID", err)
	}

	plain := newNode(t, 2, tunnel.Config{})
	if err := plain.tun.Rotate(tunnel.Rotation{Key: k1, KeyID: 3}); !errors.Is(err, tunnel.ErrNotSealed) {
		t.Errorf("VXLAN port: %v, want ErrNotSealed", err)
	}
	if ks := plain.tun.Keys(); ks.Keys != nil {
		t.Errorf("VXLAN port has keys %+v", ks)
	}
	n.tun.Close()
	if err := n.tun.Rotate(tunnel.Rotation{Key: testKey(83), KeyID: 4}); !errors.Is(err, tunnel.ErrClosed) {
		t.Errorf("closed port: %v, want ErrClosed", err)
	}
}

// Sealing under a rotated key allocates nothing either.
func TestRotatedWriteDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("skipping: the race detector makes sync.Pool allocate")
	}
	k0, k1 := testKey(90), testKey(91)
	a := newNodeWith(t, 1, tunnel.Config{Mode: tunnel.ModeSecure, Key: k0, KeyID: tunnel.KeyIDOf(k0)}, true)
	b := newNodeWith(t, 2, tunnel.Config{Mode: tunnel.ModeSecure, Key: k0, KeyID: tunnel.KeyIDOf(k0)}, true)
	mesh(t, a, b)
	for _, n := range []*node{b, a} {
		if err := n.tun.Rotate(tunnel.Rotation{Key: k1, KeyID: tunnel.KeyIDOf(k1), Window: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.tun.Rotate(tunnel.Rotation{Key: k1, KeyID: tunnel.KeyIDOf(k1), Start: time.Now().Add(-90 * time.Minute), Window: time.Hour}); err != nil {
		t.Fatal(err)
	}
	f := vswitch.Frame{Data: rawFrame(macN(2), macN(1), 0, 1400)}
	_ = a.tun.Write(f)
	if allocs := testing.AllocsPerRun(200, func() { _ = a.tun.Write(f) }); allocs != 0 {
		t.Errorf("%.1f allocations per Write under the new key, want 0", allocs)
	}
	waitFor(t, "b to receive under the new key", func() bool {
		ks := b.tun.Keys().Keys
		return len(ks) == 2 && ks[slices.IndexFunc(ks, func(k tunnel.KeyStats) bool { return k.ID == tunnel.KeyIDOf(k1) })].RXDatagrams > 0
	})
}
