package tunnel_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/switchyard-net/switchyard/tunnel"
)

// refSeal builds a secure datagram from the layout documented in
// secure.go, independently of Seal.
func refSeal(t testing.TB, key tunnel.Key, keyID uint16, sender uint32, counter uint64, vni uint32, frame []byte) []byte {
	t.Helper()
	hdr := []byte{1, 1}
	hdr = binary.BigEndian.AppendUint16(hdr, keyID)
	hdr = binary.BigEndian.AppendUint32(hdr, sender)
	hdr = binary.BigEndian.AppendUint64(hdr, counter)
	plain := []byte{0x08, 0, 0, 0, byte(vni >> 16), byte(vni >> 8), byte(vni), 0}
	plain = append(plain, frame...)
	aead, err := chacha20poly1305.New(key[:])
	if err != nil {
		t.Fatal(err)
	}
	nonce := append(binary.BigEndian.AppendUint32(nil, sender), hdr[8:16]...)
	return aead.Seal(bytes.Clone(hdr), nonce, plain, hdr)
}

// wantInner is the plaintext Open returns for frame on vni.
func wantInner(vni uint32, frame []byte) []byte {
	b := make([]byte, tunnel.VXLANHeaderLen, tunnel.VXLANHeaderLen+len(frame))
	if err := tunnel.EncodeVXLAN(b, vni); err != nil {
		panic(err)
	}
	return append(b, frame...)
}

func TestSealMatchesDocumentedLayout(t *testing.T) {
	key := testKey(1)
	frame := baseFlow().frame()
	s := mustSealer(t, key, 0x0102, 0xa0b0c0d0, 0x1122334455667788)
	got := seal(t, s, 42, frame)
	want := refSeal(t, key, 0x0102, 0xa0b0c0d0, 0x1122334455667788, 42, frame)
	if !bytes.Equal(got, want) {
		t.Fatalf("Seal differs from the documented layout:\n got % x\nwant % x", got[:32], want[:32])
	}
	wantHdr := []byte{1, 1, 0x01, 0x02, 0xa0, 0xb0, 0xc0, 0xd0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88}
	if !bytes.Equal(got[:16], wantHdr) {
		t.Fatalf("header % x, want % x", got[:16], wantHdr)
	}
	if len(got) != tunnel.SecureHeadroom+len(frame)+tunnel.TagLen {
		t.Fatalf("datagram of %d bytes for a %d-byte frame", len(got), len(frame))
	}
	if s.Next() != 0x1122334455667789 {
		t.Fatalf("counter after one Seal: %#x", s.Next())
	}
}

func TestSealInPlace(t *testing.T) {
	frame := baseFlow().frame()
	buf := make([]byte, 2048)
	copy(buf[tunnel.SecureHeadroom:], frame)
	s := mustSealer(t, testKey(1), 1, 2, 0)
	d, err := s.Seal(buf[:tunnel.SecureHeadroom+len(frame)], 7)
	if err != nil {
		t.Fatal(err)
	}
	if &d[0] != &buf[0] {
		t.Fatal("Seal did not return a view of the caller's buffer")
	}
	o := mustOpener(t, 9, map[uint16]tunnel.Key{1: testKey(1)})
	inner, _, err := o.Open(d)
	if err != nil {
		t.Fatal(err)
	}
	if &inner[0] != &buf[tunnel.SecureHeaderLen] {
		t.Fatal("Open did not decrypt in place")
	}
}

func TestSealOpenRoundTrip(t *testing.T) {
	key := testKey(3)
	s := mustSealer(t, key, 5, 0x01020304, 1)
	o := mustOpener(t, 99, map[uint16]tunnel.Key{5: key})
	for _, size := range []int{14, 60, 1514, 9014} {
		fl := baseFlow()
		fl.payload = size - 14 - 20 - 4
		frame := fl.frame()[:size]
		for _, vni := range []uint32{0, 42, tunnel.MaxVNI} {
			d := seal(t, s, vni, frame)
			if size > 14 && bytes.Contains(d, frame[14:]) {
				t.Fatalf("%d-byte frame: the payload is visible in the datagram", size)
			}
			inner, sender, err := o.Open(d)
			if err != nil {
				t.Fatalf("Open of a %d-byte frame on vni %d: %v", size, vni, err)
			}
			if sender != 0x01020304 {
				t.Fatalf("sender %#x, want 0x01020304", sender)
			}
			gotVNI, gotFrame, err := tunnel.DecodeVXLAN(inner)
			if err != nil || gotVNI != vni || !bytes.Equal(gotFrame, frame) {
				t.Fatalf("%d-byte frame on vni %d: decoded vni %d, frame equal %v, err %v",
					size, vni, gotVNI, bytes.Equal(gotFrame, frame), err)
			}
		}
	}
}

func TestSealErrors(t *testing.T) {
	s := mustSealer(t, testKey(1), 1, 2, 0)
	for _, tc := range []struct {
		name    string
		pkt     []byte
		vni     uint32
		wantErr error
	}{
		{"no headroom", make([]byte, tunnel.EthHeaderLen, 100), 1, tunnel.ErrShortBuffer},
		{"frame shorter than Ethernet", make([]byte, tunnel.SecureHeadroom+13, 100), 1, tunnel.ErrShortBuffer},
		{"no room for the tag", make([]byte, 60, 75), 1, tunnel.ErrShortBuffer},
		{"VNI too large", make([]byte, 60, 100), tunnel.MaxVNI + 1, tunnel.ErrVNIRange},
	} {
		before := s.Next()
		_, err := s.Seal(tc.pkt, tc.vni)
		if !errors.Is(err, tc.wantErr) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.wantErr)
		}
		if s.Next() != before {
			t.Errorf("%s: a failed Seal used a counter", tc.name)
		}
	}
}

// Flipping any single bit of a datagram must make Open refuse it: the
// version and type bytes with their own errors, every other bit with
// ErrAuth (the header is authenticated as associated data and nonce).
func TestOpenRejectsEveryBitFlip(t *testing.T) {
	key := testKey(4)
	const keyID, sender = 0x0100, 0x0a000001
	s := mustSealer(t, key, keyID, sender, 12345)
	d := seal(t, s, 42, baseFlow().frame())
	// Hold the key under every key ID one bit away, so that a flipped key
	// ID reaches authentication instead of stopping at ErrUnknownKey.
	keys := map[uint16]tunnel.Key{keyID: key}
	for i := range 16 {
		keys[keyID^1<<i] = key
	}
	for bit := range len(d) * 8 {
		o := mustOpener(t, 0xffffffff, keys)
		b := bytes.Clone(d)
		b[bit/8] ^= 1 << (bit % 8)
		inner, _, err := o.Open(b)
		want := tunnel.ErrAuth
		switch bit / 8 {
		case 0:
			want = tunnel.ErrVersion
		case 1:
			want = tunnel.ErrType
		}
		if err != want || inner != nil {
			t.Fatalf("bit %d (byte %d) flipped: err %v, inner %d bytes; want %v", bit, bit/8, err, len(inner), want)
		}
	}
	o := mustOpener(t, 0xffffffff, keys)
	if _, _, err := o.Open(bytes.Clone(d)); err != nil {
		t.Fatalf("unmodified datagram: %v", err)
	}
}

func TestOpenReplay(t *testing.T) {
	key := testKey(5)
	s := mustSealer(t, key, 1, 7, 100)
	o := mustOpener(t, 8, map[uint16]tunnel.Key{1: key})
	d1 := seal(t, s, 1, baseFlow().frame())
	d2 := seal(t, s, 1, baseFlow().frame())
	// A forgery of a counter not yet seen, so that it reaches the AEAD.
	// (A forgery of a seen counter is refused as a replay, before any
	// cryptography.)
	forged := seal(t, s, 1, baseFlow().frame())
	forged[len(forged)-1] ^= 1

	counts := map[error]int{}
	deliver := func(d []byte) {
		_, _, err := o.Open(bytes.Clone(d))
		counts[err]++
	}
	deliver(d2)     // newest first
	deliver(d1)     // older, within the window: accepted
	deliver(d1)     // replay
	deliver(d2)     // replay
	deliver(forged) // forged: fails before it can touch the window
	deliver(forged)
	if counts[nil] != 2 || counts[tunnel.ErrReplay] != 2 || counts[tunnel.ErrAuth] != 2 || len(counts) != 3 {
		t.Fatalf("outcomes %v; want 2 accepted, 2 ErrReplay, 2 ErrAuth", counts)
	}
	if errors.Is(tunnel.ErrReplay, tunnel.ErrAuth) || errors.Is(tunnel.ErrAuth, tunnel.ErrReplay) {
		t.Fatal("ErrReplay and ErrAuth cannot be told apart")
	}
	// A forged datagram with a fresh counter must not advance the window
	// and lock out the real one.
	real := seal(t, s, 1, baseFlow().frame())
	fake := bytes.Clone(real)
	binary.BigEndian.PutUint64(fake[8:16], 1<<62)
	if _, _, err := o.Open(fake); err != tunnel.ErrAuth {
		t.Fatalf("forged far-future counter: %v, want ErrAuth", err)
	}
	if _, _, err := o.Open(real); err != nil {
		t.Fatalf("real datagram after a forged far-future one: %v", err)
	}
}

func TestOpenTruncated(t *testing.T) {
	key := testKey(6)
	s := mustSealer(t, key, 1, 2, 0)
	d := seal(t, s, 1, make([]byte, tunnel.EthHeaderLen))
	minLen := tunnel.SecureHeadroom + tunnel.EthHeaderLen + tunnel.TagLen
	if len(d) != minLen {
		t.Fatalf("minimal datagram is %d bytes, want %d", len(d), minLen)
	}
	o := mustOpener(t, 3, map[uint16]tunnel.Key{1: key})
	for n := range minLen {
		if _, _, err := o.Open(bytes.Clone(d[:n])); err != tunnel.ErrTruncated {
			t.Errorf("Open of the first %d bytes: %v, want ErrTruncated", n, err)
		}
	}
	// Long enough, but cut: the tag no longer matches.
	big := seal(t, s, 1, baseFlow().frame())
	for _, n := range []int{minLen, len(big) - 1, len(big) - tunnel.TagLen} {
		if _, _, err := o.Open(bytes.Clone(big[:n])); err != tunnel.ErrAuth {
			t.Errorf("Open of a datagram cut to %d of %d bytes: %v, want ErrAuth", n, len(big), err)
		}
	}
}

func TestOpenHeaderErrors(t *testing.T) {
	key := testKey(7)
	s := mustSealer(t, key, 1, 2, 0)
	o := mustOpener(t, 3, map[uint16]tunnel.Key{1: key})
	d := seal(t, s, 1, baseFlow().frame())

	wrongVersion := bytes.Clone(d)
	wrongVersion[0] = 2
	// A plain VXLAN datagram sent to a secure port.
	vx := make([]byte, tunnel.VXLANHeaderLen+100)
	if err := tunnel.EncodeVXLAN(vx, 1); err != nil {
		t.Fatal(err)
	}
	wrongType := bytes.Clone(d)
	wrongType[1] = 2
	unknownKey := bytes.Clone(d)
	unknownKey[3] = 9
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"version 2", wrongVersion, tunnel.ErrVersion},
		{"VXLAN datagram", vx, tunnel.ErrVersion},
		{"type 2", wrongType, tunnel.ErrType},
		{"unknown key ID", unknownKey, tunnel.ErrUnknownKey},
	} {
		if _, _, err := o.Open(tc.b); err != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestOpenWrongKey(t *testing.T) {
	s := mustSealer(t, testKey(8), 1, 2, 0)
	o := mustOpener(t, 3, map[uint16]tunnel.Key{1: testKey(9)})
	if _, _, err := o.Open(seal(t, s, 1, baseFlow().frame())); err != tunnel.ErrAuth {
		t.Fatalf("datagram sealed with another key under the same ID: %v, want ErrAuth", err)
	}
	if o.ReplayWindows() != 0 {
		t.Fatal("a datagram that failed authentication created a replay window")
	}
}

func TestOpenReflected(t *testing.T) {
	key := testKey(10)
	s := mustSealer(t, key, 1, 77, 0)
	o := mustOpener(t, 77, map[uint16]tunnel.Key{1: key})
	if _, _, err := o.Open(seal(t, s, 1, baseFlow().frame())); err != tunnel.ErrReflected {
		t.Fatalf("datagram carrying our own sender ID: %v, want ErrReflected", err)
	}
}

func TestCounterExhaustion(t *testing.T) {
	key := testKey(11)
	s := mustSealer(t, key, 1, 2, tunnel.CounterLimit-2)
	o := mustOpener(t, 3, map[uint16]tunnel.Key{1: key})
	for range 2 {
		if _, _, err := o.Open(seal(t, s, 1, baseFlow().frame())); err != nil {
			t.Fatalf("one of the last two counters: %v", err)
		}
	}
	for range 10000 {
		if _, err := s.Seal(packet(baseFlow().frame()), 1); err != tunnel.ErrCounterExhausted {
			t.Fatalf("Seal past CounterLimit: %v, want ErrCounterExhausted", err)
		}
	}
	if s.Next() != tunnel.CounterLimit {
		t.Fatalf("refused Seals moved the counter to %#x", s.Next())
	}
	// A datagram that claims a counter at the limit is refused before
	// decryption, even if it authenticates.
	d := refSeal(t, key, 1, 2, tunnel.CounterLimit, 1, baseFlow().frame())
	if _, _, err := o.Open(d); err != tunnel.ErrReplay {
		t.Fatalf("authentic datagram with counter CounterLimit: %v, want ErrReplay", err)
	}
}

// A sender that restarts with NewSealer continues above its old counters,
// so the receiver keeps accepting it without being told.
func TestSenderRestart(t *testing.T) {
	key := testKey(12)
	o := mustOpener(t, 3, map[uint16]tunnel.Key{1: key})
	first, err := tunnel.NewSealer(key, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	if now := uint64(time.Now().UnixNano()); first.Next() > now || now-first.Next() > uint64(time.Minute) {
		t.Fatalf("NewSealer's first counter %d is not the clock (%d)", first.Next(), now)
	}
	for range 1000 {
		if _, _, err := o.Open(seal(t, first, 1, baseFlow().frame())); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Millisecond)
	second, err := tunnel.NewSealer(key, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	if second.Next() <= first.Next() {
		t.Fatalf("restarted sender starts at %d, not above %d", second.Next(), first.Next())
	}
	if _, _, err := o.Open(seal(t, second, 1, baseFlow().frame())); err != nil {
		t.Fatalf("first datagram after restart: %v", err)
	}
}

// Two keys at once, then the old one removed: how a key is rolled over.
func TestKeyRotation(t *testing.T) {
	oldKey, newKey := testKey(13), testKey(14)
	oldS := mustSealer(t, oldKey, 1, 2, 0)
	newS := mustSealer(t, newKey, 2, 2, 0)
	o := mustOpener(t, 3, map[uint16]tunnel.Key{1: oldKey})
	if _, _, err := o.Open(seal(t, newS, 1, baseFlow().frame())); err != tunnel.ErrUnknownKey {
		t.Fatalf("new key before SetKey: %v, want ErrUnknownKey", err)
	}
	if err := o.SetKey(2, newKey); err != nil {
		t.Fatal(err)
	}
	// Counters are per key: both start at 0 and both are accepted.
	for _, s := range []*tunnel.Sealer{oldS, newS, oldS, newS} {
		if _, _, err := o.Open(seal(t, s, 1, baseFlow().frame())); err != nil {
			t.Fatalf("key %d during rollover: %v", s.KeyID(), err)
		}
	}
	if o.ReplayWindows() != 2 {
		t.Fatalf("%d replay windows, want one per (key, sender) = 2", o.ReplayWindows())
	}
	o.RemoveKey(1)
	if _, _, err := o.Open(seal(t, oldS, 1, baseFlow().frame())); err != tunnel.ErrUnknownKey {
		t.Fatalf("removed key: %v, want ErrUnknownKey", err)
	}
	if o.ReplayWindows() != 1 {
		t.Fatalf("RemoveKey left %d replay windows, want 1", o.ReplayWindows())
	}
}

// Setting the same key again must not reset its replay windows: that would
// let every recorded datagram be replayed once more.
func TestSetSameKeyKeepsWindows(t *testing.T) {
	key := testKey(15)
	s := mustSealer(t, key, 1, 2, 0)
	o := mustOpener(t, 3, map[uint16]tunnel.Key{1: key})
	d := seal(t, s, 1, baseFlow().frame())
	if _, _, err := o.Open(bytes.Clone(d)); err != nil {
		t.Fatal(err)
	}
	if err := o.SetKey(1, key); err != nil {
		t.Fatal(err)
	}
	if _, _, err := o.Open(bytes.Clone(d)); err != tunnel.ErrReplay {
		t.Fatalf("replay after SetKey of the same key: %v, want ErrReplay", err)
	}
	// A different key under the same ID is a new counter space.
	if err := o.SetKey(1, testKey(16)); err != nil {
		t.Fatal(err)
	}
	if o.ReplayWindows() != 0 {
		t.Fatal("a new key under an old ID kept the old key's replay windows")
	}
	o.Forget(2)
}

func TestForget(t *testing.T) {
	key := testKey(17)
	o := mustOpener(t, 3, map[uint16]tunnel.Key{1: key})
	for _, sender := range []uint32{10, 11} {
		if _, _, err := o.Open(seal(t, mustSealer(t, key, 1, sender, 0), 1, baseFlow().frame())); err != nil {
			t.Fatal(err)
		}
	}
	o.Forget(10)
	if o.ReplayWindows() != 1 {
		t.Fatalf("Forget(10) left %d windows, want 1", o.ReplayWindows())
	}
}

// Several writers share one Sealer and several readers one Opener, as the
// Port's goroutines will: every counter is used once, and every datagram,
// delivered to two readers, is accepted exactly once.
func TestSecureConcurrent(t *testing.T) {
	key := testKey(18)
	s := mustSealer(t, key, 1, 2, 0)
	o := mustOpener(t, 3, map[uint16]tunnel.Key{1: key})
	const writers, each = 4, 500
	out := make([][][]byte, writers)
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for w := range writers {
		wg.Go(func() {
			for range each {
				d, err := s.Seal(packet(baseFlow().frame()), 1)
				if err != nil {
					errs[w] = err
					return
				}
				out[w] = append(out[w], d)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var all [][]byte
	counters := map[uint64]bool{}
	for _, ds := range out {
		for _, d := range ds {
			c := binary.BigEndian.Uint64(d[8:16])
			if counters[c] {
				t.Fatalf("counter %d used twice", c)
			}
			counters[c] = true
			all = append(all, d)
		}
	}
	var mu sync.Mutex
	outcomes := map[error]int{}
	for r := range 2 {
		wg.Go(func() {
			for i := range all {
				d := all[i]
				if r == 1 {
					d = all[len(all)-1-i]
				}
				_, _, err := o.Open(bytes.Clone(d))
				mu.Lock()
				outcomes[err]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if outcomes[nil] != len(all) || outcomes[tunnel.ErrReplay] != len(all) {
		t.Fatalf("outcomes %v for %d datagrams delivered twice; want each accepted once", outcomes, len(all))
	}
}

// The same datagram reaching several readers at the same moment (a
// duplicated packet, a replay racing the original): all of them may pass
// the window's Check while one is decrypting, but only one may be given
// the frame.
func TestOpenSameDatagramConcurrently(t *testing.T) {
	key := testKey(20)
	s := mustSealer(t, key, 1, 2, 0)
	o := mustOpener(t, 3, map[uint16]tunnel.Key{1: key})
	if _, _, err := o.Open(seal(t, s, 1, baseFlow().frame())); err != nil {
		t.Fatal(err) // create the sender's window first: Check is then in play
	}
	const readers = 8
	frame := benchFrame(9014) // slow to decrypt: widens the race
	for i := range 200 {
		d := seal(t, s, 1, frame)
		var start, done sync.WaitGroup
		start.Add(1)
		var mu sync.Mutex
		outcomes := map[error]int{}
		for range readers {
			b := bytes.Clone(d)
			done.Go(func() {
				start.Wait()
				_, _, err := o.Open(b)
				mu.Lock()
				outcomes[err]++
				mu.Unlock()
			})
		}
		start.Done()
		done.Wait()
		if outcomes[nil] != 1 || outcomes[tunnel.ErrReplay] != readers-1 {
			t.Fatalf("datagram %d opened by %d readers at once: outcomes %v, want exactly one accepted", i, readers, outcomes)
		}
	}
}

func TestSecureDoesNotAllocate(t *testing.T) {
	key := testKey(19)
	s := mustSealer(t, key, 1, 2, 0)
	o := mustOpener(t, 3, map[uint16]tunnel.Key{1: key})
	frame := baseFlow().frame()
	buf := packet(frame)

	allocs := testing.AllocsPerRun(1000, func() {
		copy(buf[tunnel.SecureHeadroom:], frame)
		if _, err := s.Seal(buf, 42); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Seal allocates %.1f times per frame, want 0", allocs)
	}

	const runs = 1000
	ds := make([][]byte, runs+1) // AllocsPerRun makes one warm-up call
	for i := range ds {
		ds[i] = seal(t, s, 42, frame)
	}
	i := 0
	allocs = testing.AllocsPerRun(runs, func() {
		if _, _, err := o.Open(ds[i]); err != nil {
			t.Fatal(err)
		}
		i++
	})
	if allocs != 0 {
		t.Errorf("Open allocates %.1f times per frame, want 0", allocs)
	}

	// Refusing costs nothing either: a flood of junk must not feed the GC.
	replayed := seal(t, s, 42, frame)
	if _, _, err := o.Open(bytes.Clone(replayed)); err != nil {
		t.Fatal(err)
	}
	forged := seal(t, s, 42, frame)
	junk := bytes.Clone(forged)
	allocs = testing.AllocsPerRun(runs, func() {
		copy(junk, forged)
		junk[30] ^= 1
		if _, _, err := o.Open(junk); err != tunnel.ErrAuth {
			t.Fatal(err)
		}
		copy(junk, replayed)
		if _, _, err := o.Open(junk); err != tunnel.ErrReplay {
			t.Fatal(err)
		}
		if _, _, err := o.Open(junk[:20]); err != tunnel.ErrTruncated {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("refusing datagrams allocates %.1f times, want 0", allocs)
	}
}
