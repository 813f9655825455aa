package vnettest_test

import (
	"bytes"
	"encoding/binary"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/switchyard-net/switchyard/testing/vnettest"
)

// refSplit is SplitFrames written the slow, obvious way.
func refSplit(data []byte) [][]byte {
	var out [][]byte
	i := 0
	for i+2 <= len(data) {
		n := (int(data[i])<<8 | int(data[i+1])) % (vnettest.MaxFrame + 1)
		i += 2
		end := i + n
		if end > len(data) {
			end = len(data)
		}
		out = append(out, data[i:end])
		i = end
	}
	return out
}

func FuzzSplitFrames(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0})
	f.Add([]byte{0, 3, 'a', 'b', 'c', 0, 0, 0xff, 0xff, 'x'})
	f.Add([]byte{0x05, 0xeb, 1, 2}) // 1515 % 1515 = 0
	f.Fuzz(func(t *testing.T, data []byte) {
		got, want := vnettest.SplitFrames(data), refSplit(data)
		if len(got) != len(want) {
			t.Fatalf("%d frames, reference %d", len(got), len(want))
		}
		for i := range got {
			if !bytes.Equal(got[i], want[i]) || len(got[i]) > vnettest.MaxFrame {
				t.Fatalf("frame %d: %x, reference %x", i, got[i], want[i])
			}
			if cap(got[i]) != len(got[i]) {
				t.Fatalf("frame %d has room to grow into the next: cap %d, len %d", i, cap(got[i]), len(got[i]))
			}
		}
	})
}

// telnetFilter is "code under test": a stage that drops IPv4 TCP segments
// to port 23 and passes everything else.
var telnetDropped atomic.Uint64

var telnetFilter = vnettest.StageFunc(func(_ *vnettest.StageContext, p vnettest.Packet, emit func(vnettest.Packet)) {
	f := p.Data
	if len(f) >= 14+20 && binary.BigEndian.Uint16(f[12:]) == 0x0800 && f[14]>>4 == 4 && f[14+9] == 6 {
		ihl := int(f[14]&0xf) * 4
		if ihl >= 20 && len(f) >= 14+ihl+4 && binary.BigEndian.Uint16(f[14+ihl+2:]) == 23 {
			telnetDropped.Add(1)
			return
		}
	}
	emit(p)
})

// frameSeed wraps frames in SplitFrames' format.
func frameSeed(frames ...[]byte) []byte {
	var b []byte
	for _, f := range frames {
		b = binary.BigEndian.AppendUint16(b, uint16(len(f)))
		b = append(b, f...)
	}
	return b
}

// synTo23 is an Ethernet/IPv4/TCP SYN from 10.0.0.2 to 10.0.0.3:23.
func synTo23() []byte {
	f := make([]byte, 14+20+20)
	copy(f, []byte{0x02, 0x42, 10, 0, 0, 3, 0x02, 0x42, 10, 0, 0, 2, 0x08, 0x00})
	ip := f[14:]
	ip[0], ip[8], ip[9] = 0x45, 64, 6
	binary.BigEndian.PutUint16(ip[2:], 40)
	copy(ip[12:], []byte{10, 0, 0, 2, 10, 0, 0, 3})
	tcp := ip[20:]
	binary.BigEndian.PutUint16(tcp[0:], 40000)
	binary.BigEndian.PutUint16(tcp[2:], 23)
	tcp[12], tcp[13] = 5<<4, 0x02
	return f
}

// Frames the fuzzer makes cross a user's stage between two hosts; the
// network must survive them all.
func FuzzThroughStage(f *testing.F) {
	w := vnettest.New(f)
	lan := w.NewNetwork("lan", "10.0.0.0/24")
	a, _ := lan.NewHost("a"), lan.NewHost("b")
	if err := a.Wire().SetStages(vnettest.Up, telnetFilter); err != nil {
		f.Fatal(err)
	}
	f.Add(frameSeed(synTo23()))
	f.Add(frameSeed(synTo23()[:30], []byte("garbage")))
	f.Add(frameSeed(make([]byte, 60), bytes.Repeat([]byte{0xff}, 1514)))
	f.Fuzz(func(t *testing.T, data []byte) { vnettest.FuzzFrames(t, a, data) })
}

// The seed with a SYN to port 23 really meets the filter.
func TestFuzzSeedMeetsTheFilter(t *testing.T) {
	w := vnettest.New(t)
	lan := w.NewNetwork("lan", "10.0.0.0/24")
	a, _ := lan.NewHost("a"), lan.NewHost("b")
	if err := a.Wire().SetStages(vnettest.Up, telnetFilter); err != nil {
		t.Fatal(err)
	}
	before := telnetDropped.Load()
	vnettest.FuzzFrames(t, a, frameSeed(synTo23()))
	if telnetDropped.Load() != before+1 {
		t.Fatalf("the filter dropped %d SYNs to port 23, want 1", telnetDropped.Load()-before)
	}
}

// FuzzFrames fails when the network stops carrying frames.
func TestFuzzFramesFindsAStuckNetwork(t *testing.T) {
	f := newFake(t)
	defer f.end()
	w := vnettest.New(f, vnettest.Seed(99))
	lan := w.NewNetwork("lan", "10.0.0.0/24")
	a, _ := lan.NewHost("a"), lan.NewHost("b")
	// A "filter" with a bug: the first frame it sees wedges it shut.
	var wedged atomic.Bool
	buggy := vnettest.StageFunc(func(_ *vnettest.StageContext, p vnettest.Packet, emit func(vnettest.Packet)) {
		if wedged.Swap(true) {
			return
		}
		emit(p)
	})
	if err := a.Wire().SetStages(vnettest.Up, buggy); err != nil {
		t.Fatal(err)
	}
	if !try(func() { vnettest.FuzzFrames(f, a, frameSeed(make([]byte, 60))) }) {
		t.Fatal("FuzzFrames passed a network that carries nothing")
	}
	if want := "a broadcast from a no longer reaches b: the network is stuck (seed 99)"; !strings.Contains(f.errors(), want) {
		t.Fatalf("failure %q, want %q", f.errors(), want)
	}
}

// Duplicating stages keep the wires' counters adding up: In + Added =
// Out + Dropped once drained.
func TestFuzzFramesCountsDuplicates(t *testing.T) {
	w := vnettest.New(t)
	lan := w.NewNetwork("lan", "10.0.0.0/24")
	a, b := lan.NewHost("a"), lan.NewHost("b")
	if err := a.Wire().SetStages(vnettest.Up, vnettest.Duplicate(1)); err != nil {
		t.Fatal(err)
	}
	if err := b.Wire().SetStages(vnettest.Down, vnettest.Duplicate(0.5), vnettest.Loss(0.3)); err != nil {
		t.Fatal(err)
	}
	vnettest.FuzzFrames(t, a, frameSeed(synTo23(), make([]byte, 60), []byte{1, 2, 3}))
	if s := a.Wire().Stats(vnettest.Up); s.Added == 0 {
		t.Fatalf("a's Up stages duplicated nothing: %+v", s)
	}
}

// A stage that panics on a fuzz input fails that input's test, not the
// test the World was made with (a *testing.F must not be used inside the
// fuzz target).
func TestFuzzFramesReportsPanicsToTheInput(t *testing.T) {
	outer := newFake(t)
	defer outer.end()
	w := vnettest.New(outer)
	lan := w.NewNetwork("lan", "10.0.0.0/24")
	a, _ := lan.NewHost("a"), lan.NewHost("b")
	boom := vnettest.StageFunc(func(_ *vnettest.StageContext, p vnettest.Packet, emit func(vnettest.Packet)) {
		if len(p.Data) == 61 {
			panic("bad frame")
		}
		emit(p)
	})
	if err := a.Wire().SetStages(vnettest.Up, boom); err != nil {
		t.Fatal(err)
	}
	input := newFake(t)
	vnettest.FuzzFrames(input, a, frameSeed(make([]byte, 61)))
	if want := "stage StageFunc panicked: bad frame"; !strings.Contains(input.errors(), want) {
		t.Fatalf("input's failures %q, want %q", input.errors(), want)
	}
	if outer.Failed() {
		t.Fatalf("the World's own test failed too: %q", outer.errors())
	}
}
