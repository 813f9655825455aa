package tunnel

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"

	vswitch "github.com/switchyard-net/switchyard/switch"
)

// In-package tests of the receive path, without a socket: a datagram goes
// straight into receiveMessage, as the reader hands it over.

var (
	fuzzPeer = netip.MustParseAddrPort("10.213.0.2:4789")
	fuzzKey  = Key{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32}
)

const (
	fuzzVNI    = 42
	fuzzSelf   = 1
	fuzzSender = 2
	fuzzKeyID  = 3
)

// recorder is an Ingress that keeps copies of what it receives.
type recorder struct{ frames []vswitch.Frame }

func (r *recorder) Receive(f vswitch.Frame) {
	r.frames = append(r.frames, vswitch.Frame{Data: bytes.Clone(f.Data), Offload: f.Offload})
}

// socketless returns a Port without a socket, with fuzzPeer as its peer.
func socketless(tb testing.TB, mode Mode) *Port {
	tb.Helper()
	cfg := Config{Mode: mode, VNI: fuzzVNI}
	if mode == ModeSecure {
		cfg.Key, cfg.KeyID, cfg.SenderID = fuzzKey, fuzzKeyID, fuzzSelf
	}
	p, err := newPortState(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	if err := p.AddPeer(fuzzPeer); err != nil {
		tb.Fatal(err)
	}
	return p
}

// tcpSegment builds a valid TCP/IPv4 segment (checksums complete).
func tcpSegment(seq uint32, id uint16, payload int, flags byte) []byte {
	return tcpSegmentWith(seq, id, payload, flags, nil)
}

// tcpSegmentWith is tcpSegment with the headers changed by mutate before
// the checksums are computed.
func tcpSegmentWith(seq uint32, id uint16, payload int, flags byte, mutate func(b []byte)) []byte {
	b := make([]byte, 14+20+20+payload)
	copy(b, []byte{0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00})
	ip := b[14:34]
	ip[0], ip[8], ip[9] = 0x45, 64, 6
	binary.BigEndian.PutUint16(ip[2:], uint16(20+20+payload))
	binary.BigEndian.PutUint16(ip[4:], id)
	ip[6] = 0x40
	copy(ip[12:], []byte{10, 240, 0, 2, 10, 240, 0, 3})
	binary.BigEndian.PutUint16(ip[10:], ^checksum.Checksum(ip, 0))
	tcp := b[34:]
	binary.BigEndian.PutUint16(tcp[0:], 40000)
	binary.BigEndian.PutUint16(tcp[2:], 5201)
	binary.BigEndian.PutUint32(tcp[4:], seq)
	binary.BigEndian.PutUint32(tcp[8:], 99)
	tcp[12], tcp[13] = 5<<4, flags
	binary.BigEndian.PutUint16(tcp[14:], 500)
	for i := range payload {
		tcp[20+i] = byte(seq) + byte(i)
	}
	if mutate != nil {
		mutate(b)
	}
	binary.BigEndian.PutUint16(ip[10:], 0)
	binary.BigEndian.PutUint16(ip[10:], ^checksum.Checksum(ip, 0))
	in, _ := parseL4(b)
	binary.BigEndian.PutUint16(tcp[16:], ^checksum.Checksum(tcp, in.pseudoSum(b, len(tcp))))
	return b
}

// encap wraps frame as the mode's datagram.
func encap(tb testing.TB, s *Sealer, frame []byte) []byte {
	if s == nil {
		d := make([]byte, VXLANHeaderLen+len(frame))
		_ = EncodeVXLAN(d, fuzzVNI)
		copy(d[VXLANHeaderLen:], frame)
		return d
	}
	buf := make([]byte, SecureHeadroom+len(frame), SecureHeadroom+len(frame)+TagLen)
	copy(buf[SecureHeadroom:], frame)
	d, err := s.Seal(buf, fuzzVNI)
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

// train is a GRO-merged message: n TCP segments of one flow, each
// encapsulated, back to back; it returns the message and the segment size.
func train(tb testing.TB, s *Sealer, n, payload int) ([]byte, int) {
	return trainWith(tb, s, n, payload, -1, nil)
}

// trainWith is train with segment k's headers changed by mutate.
func trainWith(tb testing.TB, s *Sealer, n, payload, k int, mutate func(b []byte)) ([]byte, int) {
	var msg []byte
	size := 0
	for i := range n {
		var m func([]byte)
		if i == k {
			m = mutate
		}
		d := encap(tb, s, tcpSegmentWith(uint32(1000+i*payload), uint16(7+i), payload, 0x10, m))
		size = len(d)
		msg = append(msg, d...)
	}
	return msg, size
}

// unmergeable changes one header field of a segment so that it must not be
// merged with its neighbours (each breaks exact re-segmentation).
var unmergeable = map[string]func(b []byte){
	"ip id":     func(b []byte) { b[14+5] += 3 },
	"tos":       func(b []byte) { b[14+1] = 0x10 },
	"ttl":       func(b []byte) { b[14+8] = 63 },
	"df":        func(b []byte) { b[14+6] = 0 },
	"seq":       func(b []byte) { b[34+7] += 1 },
	"ack":       func(b []byte) { b[34+11] += 1 },
	"window":    func(b []byte) { b[34+15] += 1 },
	"cwr":       func(b []byte) { b[34+13] |= 0x80 },
	"fin":       func(b []byte) { b[34+13] |= 0x01 },
	"urg":       func(b []byte) { b[34+13] |= 0x20; b[34+19] = 1 },
	"mac":       func(b []byte) { b[11] = 7 },
	"ip csum":   func(b []byte) {}, // replaced below: a bad IPv4 header checksum
	"psh first": func(b []byte) { b[34+13] |= 0x08 },
}

// FuzzPortReceive feeds arbitrary messages into the receive path of a
// plain and of a secure port and checks that it never panics and that
// what reaches the switch is exactly what a reference decapsulation of
// the same datagrams yields: the inner frames, one by one, or merged into
// superframes that cut back into exactly those frames.
func FuzzPortReceive(f *testing.F) {
	seal := func() *Sealer {
		s, err := NewSealerAt(fuzzKey, fuzzKeyID, fuzzSender, 100)
		if err != nil {
			f.Fatal(err)
		}
		return s
	}
	bcast := append(bytes.Repeat([]byte{0xff}, 6), 0x02, 0, 0, 0, 0, 9, 0x88, 0xb5, 1, 2, 3)
	for _, secure := range []bool{false, true} {
		var s *Sealer
		if secure {
			s = seal()
		}
		f.Add(secure, uint16(0), encap(f, s, bcast))
		f.Add(secure, uint16(0), encap(f, s, tcpSegment(1, 1, 100, 0x18)))
		msg, size := train(f, s, 5, 1000)
		f.Add(secure, uint16(size), msg)
		f.Add(secure, uint16(size), append(msg, encap(f, s, tcpSegment(6000, 12, 10, 0x18))...))
		f.Add(secure, uint16(size-1), msg)
		for name, m := range unmergeable {
			for _, k := range []int{0, 1, 3} {
				if name == "ip csum" {
					msg, size := train(f, s, 4, 900)
					if s == nil { // sealed datagrams cannot be damaged after sealing
						msg[size*k+VXLANHeaderLen+14+11] ^= 0x40
					}
					f.Add(secure, uint16(size), msg)
					continue
				}
				msg, size := trainWith(f, s, 4, 900, k, m)
				f.Add(secure, uint16(size), msg)
			}
		}
		big := tcpSegment(1, 1, 20000, 0x10)
		f.Add(secure, uint16(0), encap(f, s, big))
		f.Add(secure, uint16(0), encap(f, s, bcast)[:10])
	}
	f.Add(false, uint16(0), []byte{})
	f.Add(false, uint16(3), []byte{0x08, 0, 0, 0, 0, 0, 42, 0, 1, 2, 3})
	wrongVNI := encap(f, nil, bcast)
	wrongVNI[6] = 43
	f.Add(false, uint16(0), wrongVNI)

	ports := map[bool]*Port{false: socketless(f, ModeVXLAN), true: socketless(f, ModeSecure)}
	cos := map[bool]*coalescer{}
	for secure, p := range ports {
		cos[secure] = newCoalescer(&p.ctr, true, !secure)
	}

	f.Fuzz(func(t *testing.T, secure bool, segSize uint16, data []byte) {
		p, co := ports[secure], cos[secure]
		var ref *Opener
		if secure {
			// Fresh replay windows for the port and for the reference, which
			// then see the same datagrams in the same order.
			p.opener = NewOpener(fuzzSelf)
			ref = NewOpener(fuzzSelf)
			for _, o := range []*Opener{p.opener, ref} {
				if err := o.SetKey(fuzzKeyID, fuzzKey); err != nil {
					t.Fatal(err)
				}
			}
		}
		want := reference(p, ref, data, int(segSize))

		rec := &recorder{}
		co.in = rec
		p.receiveMessage(co, fuzzPeer, bytes.Clone(data), int(segSize))
		co.flush()

		got := map[string]int{}
		n := 0
		for _, fr := range rec.frames {
			if len(fr.Data) < vswitch.EthHeaderLen {
				t.Fatalf("a %d-byte frame reached the switch", len(fr.Data))
			}
			if !fr.Offload.IsGSO() {
				if len(fr.Data) > p.maxFrame {
					t.Fatalf("a %d-byte frame beyond the MTU reached the switch without GSO metadata", len(fr.Data))
				}
				got[string(fr.Data)]++
				n++
				continue
			}
			if w := want[atomKey(fr)]; w > 0 { // a superframe received whole
				got[atomKey(fr)]++
				n++
				continue
			}
			scratch := make([]byte, len(fr.Data))
			if !vswitch.SegmentFrame(fr, scratch, func(seg []byte) { got[string(seg)]++; n++ }) {
				t.Fatalf("a superframe that cannot be cut reached the switch: %+v", fr.Offload)
			}
		}
		total := 0
		for k, c := range want {
			total += c
			if got[k] != c {
				t.Fatalf("the switch got a frame %d times, want %d (of %d frames, %d expected):\n% x", got[k], c, n, total, []byte(k)[:min(len(k), 64)])
			}
		}
		if n != total {
			t.Fatalf("the switch got %d frames, want %d", n, total)
		}
	})
}

// atomKey names a superframe received whole: its bytes and metadata.
func atomKey(f vswitch.Frame) string {
	return fmt.Sprintf("%x/%+v", f.Data, f.Offload)
}

// reference decapsulates a message the plain way and returns the frames
// the switch should get, as a multiset.
func reference(p *Port, o *Opener, data []byte, segSize int) map[string]int {
	want := map[string]int{}
	if segSize <= 0 || segSize >= len(data) {
		segSize = max(len(data), 1)
	}
	for off := 0; off < max(len(data), 1); off += segSize {
		d := bytes.Clone(data[off:min(off+segSize, len(data))])
		if o != nil {
			inner, _, err := o.Open(d)
			if err != nil {
				continue
			}
			d = inner
		}
		if len(d) < 22 || d[0]&0x08 == 0 || uint32(d[4])<<16|uint32(d[5])<<8|uint32(d[6]) != fuzzVNI {
			continue
		}
		frame := d[8:]
		if len(frame) > p.maxFrame {
			if sf, ok := superframe(frame, p.mtu); ok {
				want[atomKey(vswitch.Frame{Data: frame, Offload: sf})]++
			}
			continue
		}
		if o == nil {
			if in, ok := parseL4(frame); ok {
				checkTransport(frame, in)
			}
		}
		want[string(frame)]++
	}
	return want
}

// The receive path allocates nothing per datagram: decapsulation,
// learning, coalescing and delivery, in both modes.
func TestReceiveDoesNotAllocate(t *testing.T) {
	for _, mode := range []Mode{ModeVXLAN, ModeSecure} {
		t.Run(mode.String(), func(t *testing.T) {
			p := socketless(t, mode)
			var s *Sealer
			if mode == ModeSecure {
				var err error
				if s, err = NewSealerAt(fuzzKey, fuzzKeyID, fuzzSender, 1); err != nil {
					t.Fatal(err)
				}
			}
			co := newCoalescer(&p.ctr, true, mode == ModeVXLAN)
			co.in = discard{}
			const runs = 200
			msgs := make([][]byte, runs+1)
			sizes := make([]int, runs+1)
			for i := range msgs {
				msgs[i], sizes[i] = train(t, s, 8, 1200)
			}
			buf := make([]byte, len(msgs[0]))
			i := 0
			allocs := testing.AllocsPerRun(runs, func() {
				copy(buf, msgs[i])
				p.receiveMessage(co, fuzzPeer, buf, sizes[i])
				co.flush()
				i++
			})
			if allocs != 0 {
				t.Fatalf("receiving a message of 8 datagrams allocates %.1f times, want 0", allocs)
			}
			if st := p.Stats(); st.Drops != 0 || st.Coalesced == 0 {
				t.Fatalf("drops %v, %d superframes: the run did not exercise the path", st.DropsBy, st.Coalesced)
			}
		})
	}
}

type discard struct{}

func (discard) Receive(vswitch.Frame) {}
