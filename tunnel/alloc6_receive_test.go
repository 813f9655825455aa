package tunnel

import (
	"encoding/binary"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	vswitch "github.com/switchyard-net/switchyard/switch"
)

// tcp6Segment builds a valid TCP/IPv6 segment (checksum complete) of the
// flow fd00:61::2:40000 → fd00:61::3:5201.
func tcp6Segment(seq uint32, payload int) []byte {
	const l3, l4 = header.EthernetMinimumSize, header.EthernetMinimumSize + header.IPv6MinimumSize
	b := make([]byte, l4+header.TCPMinimumSize+payload)
	copy(b, []byte{0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x86, 0xdd})
	ip := b[l3:l4]
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], uint16(header.TCPMinimumSize+payload))
	ip[6], ip[7] = uint8(header.TCPProtocolNumber), 64
	copy(ip[8:], []byte{0xfd, 0, 0, 0x61, 15: 2})
	copy(ip[24:], []byte{0xfd, 0, 0, 0x61, 15: 3})
	tcp := b[l4:]
	binary.BigEndian.PutUint16(tcp[0:], 40000)
	binary.BigEndian.PutUint16(tcp[2:], 5201)
	binary.BigEndian.PutUint32(tcp[4:], seq)
	binary.BigEndian.PutUint32(tcp[8:], 99)
	tcp[12], tcp[13] = 5<<4, 0x10
	binary.BigEndian.PutUint16(tcp[14:], 500)
	for i := range payload {
		tcp[20+i] = byte(seq) + byte(i)
	}
	in, _ := parseL4(b)
	binary.BigEndian.PutUint16(tcp[16:], ^checksum.Checksum(tcp, in.pseudoSum(b, len(tcp))))
	return b
}

// train6 is train for TCP/IPv6 segments.
func train6(tb testing.TB, s *Sealer, n, payload int) ([]byte, int) {
	var msg []byte
	size := 0
	for i := range n {
		d := encap(tb, s, tcp6Segment(uint32(1000+i*payload), payload))
		size = len(d)
		msg = append(msg, d...)
	}
	return msg, size
}

// countIngress counts the frames and IPv6 superframes it receives.
type countIngress struct{ frames, super6 int }

func (c *countIngress) Receive(f vswitch.Frame) {
	c.frames++
	if f.Offload.GSOType == vswitch.GSOTCPv6 {
		c.super6++
	}
}

// The receive path allocates nothing per datagram for IPv6 inner frames
// either: decapsulation, the checksum check by the IPv6 pseudo-header,
// learning and coalescing into TCP/IPv6 superframes, in both modes.
func TestReceiveIPv6DoesNotAllocate(t *testing.T) {
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
			got := &countIngress{}
			co.in = got
			const runs = 200
			msgs := make([][]byte, runs+1)
			sizes := make([]int, runs+1)
			for i := range msgs {
				msgs[i], sizes[i] = train6(t, s, 8, 1200)
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
				t.Fatalf("receiving a message of 8 IPv6 datagrams allocates %.1f times, want 0", allocs)
			}
			if st := p.Stats(); st.Drops != 0 {
				t.Fatalf("drops %v", st.DropsBy)
			}
			// Each message of 8 segments of one flow becomes one superframe.
			if got.super6 != runs+1 || got.frames != runs+1 {
				t.Fatalf("%d frames, %d of them TCP/IPv6 superframes, want %d of each", got.frames, got.super6, runs+1)
			}
		})
	}
}
