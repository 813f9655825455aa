package nat

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// sameModuloZero reports whether a and b are equal, allowing 16-bit words
// at even offsets to differ between 0x0000 and 0xffff: the two forms of
// one's complement zero, which a checksum may take either of after an
// incremental update.
func sameModuloZero(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i += 2 {
		if i+1 == len(a) {
			return a[i] == b[i]
		}
		x, y := binary.BigEndian.Uint16(a[i:]), binary.BigEndian.Uint16(b[i:])
		if x != y && !((x == 0 || x == 0xffff) && (y == 0 || y == 0xffff)) {
			return false
		}
	}
	return true
}

// quote returns the quoted packet of ICMP error b.
func quote(b []byte) []byte { return b[ipHeaderLen(b)+8:] }

// TestRelatedICMPErrors: errors about hairpinned flows, from either end,
// about UDP, TCP and echo, quoting whole packets or only the first bytes,
// are translated back so that their receiver finds the packet it sent,
// byte for byte, with valid checksums all through.
func TestRelatedICMPErrors(t *testing.T) {
	router := netip.MustParseAddr("172.18.0.254")
	type setup struct {
		a, dialed, b, gw netip.Addr
		sent, left       []byte // a's first packet, and as it left
	}
	open := func(t *testing.T, tb *Table, proto uint8, v6 bool) setup {
		s := setup{a: a4, dialed: host4, b: b4, gw: gw4}
		if v6 {
			s = setup{a: a6, dialed: host6, b: b6, gw: gw6}
		}
		switch proto {
		case protoUDP:
			s.sent = udpDgram(ap(s.a, 50000), ap(s.dialed, 5353), bytes.Repeat([]byte("q"), 100), false)
		case protoTCP:
			s.sent = tcpSeg(ap(s.a, 40000), ap(s.dialed, 8080), syn, 1, 0, nil)
		default:
			s.sent = echo(s.a, s.dialed, true, 9, 1)
		}
		s.left = bytes.Clone(s.sent)
		mustVerdict(t, tb, s.left, 0, Translated)
		return s
	}
	unreach := func(v6 bool) (uint8, uint8) {
		if v6 {
			return uint8(header.ICMPv6DstUnreachable), uint8(header.ICMPv6PortUnreachable)
		}
		return uint8(header.ICMPv4DstUnreachable), uint8(header.ICMPv4PortUnreachable)
	}
	for _, tc := range []struct {
		name  string
		proto uint8
		v6    bool
		n     int  // bytes quoted
		mtu   bool // frag needed / packet too big, with an MTU to keep
	}{
		{"udp port unreachable", protoUDP, false, 1000, false},
		{"udp port unreachable, 8 bytes quoted", protoUDP, false, 28, false},
		{"tcp frag needed", protoTCP, false, 1000, true},
		{"tcp frag needed, 8 bytes quoted", protoTCP, false, 28, true},
		{"echo host unreachable", protoICMPv4, false, 1000, false},
		{"v6 udp port unreachable", protoUDP, true, 1000, false},
		{"v6 tcp packet too big", protoTCP, true, 1000, true},
		{"v6 tcp packet too big, 8 bytes quoted", protoTCP, true, 48, true},
		{"v6 echo unreachable", protoICMPv6, true, 1000, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ms := testMappings()
			if tc.proto == protoICMPv4 || tc.proto == protoICMPv6 {
				ms = append(ms, PortMapping{Proto: ICMP, Target: ap(b4, 0)}, PortMapping{Proto: ICMP, Target: ap(b6, 0)})
			}
			tb := newTestTable(t, testConfig(), ms)
			s := open(t, tb, tc.proto, tc.v6)
			typ, code := unreach(tc.v6)
			rest := uint32(0)
			if tc.mtu && tc.v6 {
				typ, code, rest = uint8(header.ICMPv6PacketTooBig), 0, 1280
			} else if tc.mtu {
				typ, code, rest = uint8(header.ICMPv4DstUnreachable), uint8(header.ICMPv4FragmentationNeeded), 1400
			}

			// b complains to the gateway about what it received.
			e := icmpError(s.b, s.gw, typ, code, rest, s.left, tc.n)
			mustVerdict(t, tb, e, 0, Translated)
			if src, dst := srcDst(e); src != s.dialed || dst != s.a {
				t.Fatalf("error left as %v → %v, want %v → %v", src, dst, s.dialed, s.a)
			}
			want := s.sent[:min(tc.n, len(s.sent))]
			if q := quote(e); !sameModuloZero(q, want) {
				t.Fatalf("quoted packet not restored:\n got % x\nwant % x", q, want)
			}
			m := e[ipHeaderLen(e):]
			if m[0] != typ || m[1] != code || binary.BigEndian.Uint32(m[4:]) != rest {
				t.Fatalf("type %d code %d rest %d changed to %d %d %d", typ, code, rest, m[0], m[1], binary.BigEndian.Uint32(m[4:]))
			}
			if q := quote(e); !tc.v6 && !header.IPv4(q).IsChecksumValid() {
				t.Fatal("quoted IPv4 header checksum invalid")
			}

			// A router on the path complains: its address is kept.
			e = icmpError(router, s.gw, typ, code, rest, s.left, tc.n)
			if tc.v6 {
				e = icmpError(netip.MustParseAddr("fd00:18::fe"), s.gw, typ, code, rest, s.left, tc.n)
			}
			rsrc, _ := srcDst(e)
			mustVerdict(t, tb, e, 0, Translated)
			if src, dst := srcDst(e); src != rsrc || dst != s.a {
				t.Fatalf("router's error left as %v → %v, want %v → %v", src, dst, rsrc, s.a)
			}

			// An error quoting a flow nobody tracks is the netstack's.
			other := bytes.Clone(s.left)
			binary.BigEndian.PutUint16(other[ipHeaderLen(other):], 1) // another source port/id
			mustVerdict(t, tb, icmpError(s.b, s.gw, typ, code, rest, other, tc.n), 0, Pass)
			// So is one not addressed to the quoted packet's sender.
			mustVerdict(t, tb, icmpError(s.b, s.dialed, typ, code, rest, s.left, tc.n), 0, Pass)
			// So is one whose quote is cut inside the transport header.
			mustVerdict(t, tb, icmpError(s.b, s.gw, typ, code, rest, s.left, ipHeaderLen(s.left)+7), 0, Pass)

			if st := tb.Stats(); st.Related != 2 || st.TranslatedReply != 2 {
				t.Errorf("Stats = %+v, want 2 related, 2 translated toward a", st)
			}
		})
	}
}

// TestRelatedFromInitiator: a complains about b's reply (a's socket closed
// meanwhile). The error goes to b, from the gateway, quoting the reply as
// b sent it.
func TestRelatedFromInitiator(t *testing.T) {
	tb := newTestTable(t, testConfig(), testMappings())
	aEnd, pub, bEnd := ap(a4, 50000), ap(host4, 5353), ap(b4, 53)
	q := udpDgram(aEnd, pub, []byte("query"), false)
	mustVerdict(t, tb, q, 0, Translated)
	masq := flowOf(t, q).src
	sent := udpDgram(bEnd, masq, []byte("late answer"), false)
	left := bytes.Clone(sent)
	mustVerdict(t, tb, left, 0, Translated)

	e := icmpError(a4, host4, uint8(header.ICMPv4DstUnreachable), uint8(header.ICMPv4PortUnreachable), 0, left, 1000)
	mustVerdict(t, tb, e, 0, Translated)
	if src, dst := srcDst(e); src != gw4 || dst != b4 {
		t.Fatalf("error left as %v → %v, want %v → %v", src, dst, gw4, b4)
	}
	if !sameModuloZero(quote(e), sent) {
		t.Fatalf("quote not restored:\n got % x\nwant % x", quote(e), sent)
	}
	if st := tb.Stats(); st.Related != 1 || st.TranslatedOrig != 2 {
		t.Errorf("Stats = %+v, want 1 related, 2 translated from a", st)
	}
}

// TestRelatedPartial: an ICMPv6 error whose checksum is left partial has
// only its pseudo-header part adjusted; completing it gives a valid
// checksum.
func TestRelatedPartial(t *testing.T) {
	tb := newTestTable(t, testConfig(), testMappings())
	left := udpDgram(ap(a6, 50000), ap(gw6, 5353), []byte("q"), false)
	mustVerdict(t, tb, left, 0, Translated)
	e := icmpError(b6, gw6, uint8(header.ICMPv6DstUnreachable), 4, 0, left, 1000)
	makePartial(e)
	if v := tb.ProcessPartial(e, 0); v != Translated {
		t.Fatalf("ProcessPartial = %v", v)
	}
	completePartial(e)
	checksumsValid(t, e)
}
