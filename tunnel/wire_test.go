package tunnel_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/switchyard-net/switchyard/tunnel"
)

// The header the Linux kernel sends for VNI 42 (as seen with tcpdump -X on
// a vxlan device "id 42").
func TestEncodeVXLANKnownBytes(t *testing.T) {
	for _, tc := range []struct {
		vni  uint32
		want []byte
	}{
		{42, []byte{0x08, 0, 0, 0, 0x00, 0x00, 0x2a, 0}},
		{0, []byte{0x08, 0, 0, 0, 0, 0, 0, 0}},
		{0x123456, []byte{0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0}},
		{tunnel.MaxVNI, []byte{0x08, 0, 0, 0, 0xff, 0xff, 0xff, 0}},
	} {
		got := bytes.Repeat([]byte{0xee}, 10)
		if err := tunnel.EncodeVXLAN(got, tc.vni); err != nil {
			t.Fatalf("EncodeVXLAN(vni %d): %v", tc.vni, err)
		}
		if !bytes.Equal(got[:8], tc.want) {
			t.Errorf("EncodeVXLAN(vni %d) = % x, want % x", tc.vni, got[:8], tc.want)
		}
		if got[8] != 0xee || got[9] != 0xee {
			t.Errorf("EncodeVXLAN(vni %d) wrote past the 8-byte header: % x", tc.vni, got)
		}
	}
}

func TestVXLANRoundTrip(t *testing.T) {
	frame := baseFlow().frame()
	for _, vni := range []uint32{0, 1, 42, 4096, 0xabcdef, tunnel.MaxVNI} {
		buf := make([]byte, tunnel.VXLANHeaderLen+len(frame))
		copy(buf[tunnel.VXLANHeaderLen:], frame)
		if err := tunnel.EncodeVXLAN(buf, vni); err != nil {
			t.Fatal(err)
		}
		gotVNI, inner, err := tunnel.DecodeVXLAN(buf)
		if err != nil {
			t.Fatalf("DecodeVXLAN of encoded vni %d: %v", vni, err)
		}
		if gotVNI != vni || !bytes.Equal(inner, frame) {
			t.Fatalf("round trip of vni %d: got vni %d, frame equal %v", vni, gotVNI, bytes.Equal(inner, frame))
		}
		if &inner[0] != &buf[tunnel.VXLANHeaderLen] {
			t.Fatal("DecodeVXLAN copied the inner frame instead of returning a view")
		}
	}
}

func TestVXLANView(t *testing.T) {
	b := make([]byte, 30)
	if tunnel.VXLAN(b).IsValid() {
		t.Fatal("IsValid with the I flag clear")
	}
	if tunnel.VXLAN(b[:7]).IsValid() {
		t.Fatal("IsValid on 7 bytes")
	}
	b[0] = 0x08
	v := tunnel.VXLAN(b)
	if !v.IsValid() {
		t.Fatal("!IsValid with the I flag set")
	}
	v.SetVNI(0x0a0b0c)
	if v.VNI() != 0x0a0b0c || b[4] != 0x0a || b[5] != 0x0b || b[6] != 0x0c {
		t.Fatalf("SetVNI(0x0a0b0c): VNI() = %#x, bytes % x", v.VNI(), b[:8])
	}
	if b[0] != 0x08 || b[3] != 0 || b[7] != 0 {
		t.Fatalf("SetVNI touched flags or reserved bytes: % x", b[:8])
	}
	if len(v.Payload()) != 22 || &v.Payload()[0] != &b[8] {
		t.Fatal("Payload is not the view after the header")
	}
}

func TestDecodeVXLANRejects(t *testing.T) {
	good := make([]byte, tunnel.VXLANHeaderLen+tunnel.EthHeaderLen)
	if err := tunnel.EncodeVXLAN(good, 7); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tunnel.DecodeVXLAN(good); err != nil {
		t.Fatalf("header + bare Ethernet header: %v", err)
	}
	for n := range len(good) {
		if _, _, err := tunnel.DecodeVXLAN(good[:n]); err != tunnel.ErrTruncated {
			t.Errorf("DecodeVXLAN of %d bytes: err %v, want ErrTruncated", n, err)
		}
	}
	noI := bytes.Clone(good)
	noI[0] = 0
	if _, _, err := tunnel.DecodeVXLAN(noI); err != tunnel.ErrVNIFlag {
		t.Errorf("I flag clear: err %v, want ErrVNIFlag", err)
	}
	noI[0] = 0xf7 // every flag except I
	if _, _, err := tunnel.DecodeVXLAN(noI); err != tunnel.ErrVNIFlag {
		t.Errorf("all flags but I: err %v, want ErrVNIFlag", err)
	}
}

// RFC 7348: reserved fields "MUST be ignored on receipt".
func TestDecodeVXLANIgnoresReserved(t *testing.T) {
	b := make([]byte, tunnel.VXLANHeaderLen+tunnel.EthHeaderLen)
	b[0] = 0xff
	b[1], b[2], b[3] = 0xff, 0xff, 0xff
	b[4], b[5], b[6] = 0x00, 0x01, 0x02
	b[7] = 0xff
	vni, inner, err := tunnel.DecodeVXLAN(b)
	if err != nil || vni != 0x000102 || len(inner) != tunnel.EthHeaderLen {
		t.Fatalf("reserved bits set: vni %#x, %d inner bytes, err %v; want 0x102, 14, nil", vni, len(inner), err)
	}
}

func TestEncodeVXLANErrors(t *testing.T) {
	err := tunnel.EncodeVXLAN(make([]byte, 8), tunnel.MaxVNI+1)
	if !errors.Is(err, tunnel.ErrVNIRange) || !bytes.Contains([]byte(err.Error()), []byte("16777216")) {
		t.Errorf("VNI 2^24: err %v, want ErrVNIRange naming the VNI", err)
	}
	err = tunnel.EncodeVXLAN(make([]byte, 7), 1)
	if !errors.Is(err, tunnel.ErrShortBuffer) || !bytes.Contains([]byte(err.Error()), []byte("7-byte")) {
		t.Errorf("7-byte buffer: err %v, want ErrShortBuffer naming the length", err)
	}
}

func TestMTUFor(t *testing.T) {
	for _, tc := range []struct{ link, want int }{{1500, 1450}, {9000, 8950}, {1280, 1230}, {50, 0}, {20, 0}} {
		if got := tunnel.MTUFor(tc.link); got != tc.want {
			t.Errorf("MTUFor(%d) = %d, want %d", tc.link, got, tc.want)
		}
	}
	if tunnel.Overhead != 20+8+8+14 {
		t.Errorf("Overhead = %d", tunnel.Overhead)
	}
	if got := tunnel.SecureMTUFor(1500); got != 1418 {
		t.Errorf("SecureMTUFor(1500) = %d, want 1418", got)
	}
}

func TestSourcePortStable(t *testing.T) {
	fl := baseFlow()
	p := tunnel.SourcePort(fl.frame(), 0, 0)
	for range 3 {
		if q := tunnel.SourcePort(fl.frame(), 0, 0); q != p {
			t.Fatalf("same frame: port %d then %d", p, q)
		}
	}
	// Fields outside the flow identity must not move the flow.
	same := []func(*flow){
		func(f *flow) { f.ttl = 3 },
		func(f *flow) { f.ipID = 999 },
		func(f *flow) { f.payload = 1000 },
	}
	for i, change := range same {
		f := baseFlow()
		change(&f)
		if q := tunnel.SourcePort(f.frame(), 0, 0); q != p {
			t.Errorf("non-flow change %d moved the flow from port %d to %d", i, p, q)
		}
	}
}

// randFlow returns a random flow (IPv4 or IPv6, TCP or UDP).
func randFlow(r *rand.Rand) flow {
	f := baseFlow()
	for i := range 6 {
		f.dst[i], f.src[i] = byte(r.Uint32()), byte(r.Uint32())
	}
	f.v6 = r.IntN(2) == 0
	if f.v6 {
		var a, b [16]byte
		for i := range 16 {
			a[i], b[i] = byte(r.Uint32()), byte(r.Uint32())
		}
		f.srcIP, f.dstIP = netip.AddrFrom16(a), netip.AddrFrom16(b)
	} else {
		f.srcIP = netip.AddrFrom4([4]byte{10, byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())})
		f.dstIP = netip.AddrFrom4([4]byte{10, byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())})
	}
	f.proto = []byte{6, 17}[r.IntN(2)]
	f.sport, f.dport = uint16(r.Uint32()), uint16(r.Uint32())
	return f
}

// Every field of the flow identity must feed the hash: changing it moves
// the flow to another port, except for the rare collision.
func TestSourcePortUsesEveryFlowField(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	fields := map[string]func(*flow){
		"dst MAC":  func(f *flow) { f.dst[5] ^= 1 },
		"src MAC":  func(f *flow) { f.src[0] ^= 0x80 },
		"src IP":   func(f *flow) { f.srcIP = f.srcIP.Next() },
		"dst IP":   func(f *flow) { f.dstIP = f.dstIP.Prev() },
		"protocol": func(f *flow) { f.proto = 23 - f.proto }, // 6 ↔ 17
		"src port": func(f *flow) { f.sport++ },
		"dst port": func(f *flow) { f.dport ^= 0x100 },
		"VLAN":     func(f *flow) { f.vlan = f.vlan%4000 + 1 },
	}
	const trials = 200
	for name, change := range fields {
		moved := 0
		for range trials {
			f := randFlow(r)
			f2 := f
			change(&f2)
			if tunnel.SourcePort(f.frame(), 0, 0) != tunnel.SourcePort(f2.frame(), 0, 0) {
				moved++
			}
		}
		if moved < trials-3 {
			t.Errorf("changing the %s moved only %d of %d flows to another port", name, moved, trials)
		}
	}
}

// Distinct flows must spread evenly over the range (chi-square test over
// 64 buckets) and stay inside it.
func TestSourcePortSpread(t *testing.T) {
	const flows, buckets = 32000, 64
	r := rand.New(rand.NewPCG(3, 4))
	var count [buckets]int
	f := baseFlow()
	distinct := map[uint16]bool{}
	for i := range flows {
		if i%2 == 0 {
			f = randFlow(r)
		} else {
			f.sport++ // neighbouring flows must not land on neighbouring ports
		}
		p := tunnel.SourcePort(f.frame(), 0, 0)
		if p < tunnel.SourcePortMin || p > tunnel.SourcePortMax {
			t.Fatalf("port %d outside the default range %d–%d", p, tunnel.SourcePortMin, tunnel.SourcePortMax)
		}
		distinct[p] = true
		count[int(p-tunnel.SourcePortMin)*buckets/(tunnel.SourcePortMax-tunnel.SourcePortMin+1)]++
	}
	exp := float64(flows) / buckets
	chi2 := 0.0
	for _, c := range count {
		chi2 += (float64(c) - exp) * (float64(c) - exp) / exp
	}
	// 63 degrees of freedom: p = 0.001 at 103.4.
	if chi2 > 103.4 {
		t.Errorf("chi-square %.1f over %d buckets: flows are not spread evenly: %v", chi2, buckets, count)
	}
	// 32000 random flows over 28232 ports: about 19700 distinct expected.
	if len(distinct) < 18500 {
		t.Errorf("%d flows got only %d distinct ports", flows, len(distinct))
	}
}

func TestSourcePortRange(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, rg := range [][2]uint16{{1000, 1003}, {1, 65535}, {50000, 50000}, {60000, 65535}} {
		seen := map[uint16]bool{}
		for range 2000 {
			p := tunnel.SourcePort(randFlow(r).frame(), rg[0], rg[1])
			if p < rg[0] || p > rg[1] {
				t.Fatalf("SourcePort in [%d,%d] returned %d", rg[0], rg[1], p)
			}
			seen[p] = true
		}
		if want := min(int(rg[1]-rg[0])+1, 4); len(seen) < want {
			t.Errorf("range [%d,%d]: only %d distinct ports, want ≥ %d (both ends reachable)", rg[0], rg[1], len(seen), want)
		}
	}
	fr := baseFlow().frame()
	def := tunnel.SourcePort(fr, 0, 0)
	if got := tunnel.SourcePort(fr, 100, 50); got != def {
		t.Errorf("hi < lo: got %d, want the default-range port %d", got, def)
	}
	if got := tunnel.SourcePort(fr, tunnel.SourcePortMin, tunnel.SourcePortMax); got != def {
		t.Errorf("explicit default range: got %d, want %d", got, def)
	}
	for _, short := range [][]byte{nil, {1}, make([]byte, 13)} {
		if p := tunnel.SourcePort(short, 0, 0); p < tunnel.SourcePortMin || p > tunnel.SourcePortMax {
			t.Errorf("%d-byte frame: port %d outside the default range", len(short), p)
		}
	}
}

// All fragments of an IPv4 datagram carry the same flow, ports or not.
func TestSourcePortFragments(t *testing.T) {
	first := baseFlow()
	first.proto, first.moreFrags = 17, true
	later := first
	later.fragOffset, later.moreFrags = 185, false
	later.sport, later.dport = 0x1234, 0x5678 // payload bytes, not ports
	if a, b := tunnel.SourcePort(first.frame(), 0, 0), tunnel.SourcePort(later.frame(), 0, 0); a != b {
		t.Errorf("first fragment on port %d, later fragment on %d", a, b)
	}
}

func TestWireDoesNotAllocate(t *testing.T) {
	frame := baseFlow().frame()
	buf := make([]byte, tunnel.VXLANHeaderLen+len(frame))
	copy(buf[tunnel.VXLANHeaderLen:], frame)
	var sink uint32
	allocs := testing.AllocsPerRun(1000, func() {
		if err := tunnel.EncodeVXLAN(buf, 42); err != nil {
			t.Fatal(err)
		}
		vni, inner, err := tunnel.DecodeVXLAN(buf)
		if err != nil {
			t.Fatal(err)
		}
		sink += vni + uint32(len(inner)) + uint32(tunnel.SourcePort(inner, 0, 0))
		if _, _, err := tunnel.DecodeVXLAN(buf[:5]); err == nil {
			t.Fatal("short datagram accepted")
		}
	})
	if allocs != 0 {
		t.Fatalf("EncodeVXLAN+DecodeVXLAN+SourcePort allocate %.1f times per frame, want 0", allocs)
	}
	_ = sink
}
