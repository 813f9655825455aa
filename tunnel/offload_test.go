package tunnel_test

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/tunnel"
)

var featureSets = []tunnel.Features{
	0, // everything on
	tunnel.FeatureTSO,
	tunnel.FeatureGSO,
	tunnel.FeatureGRO,
	tunnel.FeatureBatch,
	tunnel.FeatureCoalesce,
	tunnel.FeatureGSO | tunnel.FeatureGRO | tunnel.FeatureBatch | tunnel.FeatureCoalesce | tunnel.FeatureTSO,
}

// A 64 KiB TCP superframe from a TAP crosses the tunnel with every
// combination of features, and what arrives, cut into segments, is exactly
// what the switch would have cut it into.
func TestPortSuperframes(t *testing.T) {
	for _, mode := range modes {
		for _, off := range featureSets {
			for _, v6 := range []bool{false, true} {
				t.Run(fmt.Sprintf("%v/disable=%v/v6=%v", mode, off, v6), func(t *testing.T) {
					a := newNode(t, 1, tunnel.Config{Mode: mode, Disable: off})
					b := newNode(t, 2, tunnel.Config{Mode: mode, Disable: off})
					mesh(t, a, b)
					mtu := a.tun.Info().MTU
					s := tcpSuper{dst: macN(2), src: macN(1), seq: 1000, ipID: 500, payload: 60000,
						srcIP: netip.MustParseAddr("10.0.0.1"), dstIP: netip.MustParseAddr("10.0.0.2")}
					hdr := 20 + 32
					if v6 {
						hdr = 40 + 32
						s.srcIP, s.dstIP = netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2")
					}
					s.mss = mtu - hdr
					f := s.frame()
					want := segments(t, f)
					orig := bytes.Clone(f.Data)
					a.local.InjectFrame(f)
					if !bytes.Equal(f.Data, orig) {
						t.Fatal("Write modified the frame it was given")
					}
					var got [][]byte
					waitFor(t, "the segments", func() bool {
						for _, fr := range b.local.Take() {
							if fr.Offload.IsGSO() && fr.Offload.GSOSize != uint16(s.mss) {
								t.Fatalf("superframe of GSO size %d, want %d", fr.Offload.GSOSize, s.mss)
							}
							got = append(got, segments(t, fr)...)
						}
						return len(got) >= len(want)
					})
					if len(got) != len(want) {
						t.Fatalf("%d segments arrived, want %d", len(got), len(want))
					}
					for i := range want {
						if !bytes.Equal(got[i], want[i]) {
							t.Fatalf("segment %d differs:\n got % x\nwant % x", i, got[i][:80], want[i][:80])
						}
					}
					// The sender goroutine counts after its sendmsg returns,
					// which can be after the receiver has delivered everything.
					waitFor(t, "the sender's counters", func() bool { return a.tun.Stats().TXDatagrams >= uint64(len(want)) })
					sa, sb := a.tun.Stats(), b.tun.Stats()
					t.Logf("sender: %d datagrams in %d syscalls (%d GSO); receiver: %d datagrams in %d batches (%d GRO messages), %d superframes",
						sa.TXDatagrams, sa.TXSyscalls, sa.TXGSO, sb.RXDatagrams, sb.RXBatches, sb.RXGRO, sb.Coalesced)
					if sa.Drops+sb.Drops != 0 {
						t.Fatalf("drops: sender %v, receiver %v", sa.DropsBy, sb.DropsBy)
					}
					feats := a.tun.Features()
					if feats&tunnel.FeatureTSO != 0 && sa.Segmented != 1 {
						t.Errorf("sender cut %d superframes, want 1", sa.Segmented)
					}
					if feats&tunnel.FeatureGSO != 0 && feats&tunnel.FeatureTSO != 0 && sa.TXGSO == 0 {
						t.Error("no UDP GSO send with GSO on")
					}
					if feats&tunnel.FeatureGSO == 0 && sa.TXGSO != 0 {
						t.Error("UDP GSO used while disabled")
					}
					if feats&tunnel.FeatureCoalesce == 0 && sb.Coalesced != 0 {
						t.Error("coalesced while disabled")
					}
				})
			}
		}
	}
}

// A frame with a partial checksum (a TAP's checksum offload) leaves the
// tunnel with a complete one, which a Linux vxlan peer needs.
func TestPortCompletesPartialChecksums(t *testing.T) {
	a, b := newNode(t, 1, tunnel.Config{}), newNode(t, 2, tunnel.Config{})
	mesh(t, a, b)
	s := tcpSuper{dst: macN(2), src: macN(1), seq: 1, mss: 1000, payload: 999,
		srcIP: netip.MustParseAddr("10.0.0.1"), dstIP: netip.MustParseAddr("10.0.0.2")}
	f := s.frame() // complete
	want := bytes.Clone(f.Data)
	l4 := 14 + 20
	tcp := header.TCP(f.Data[l4:])
	tcp.SetChecksum(header.PseudoHeaderChecksum(header.TCPProtocolNumber, header.IPv4(f.Data[14:]).SourceAddress(), header.IPv4(f.Data[14:]).DestinationAddress(), uint16(len(f.Data)-l4)))
	f.Offload = vswitch.Offload{Flags: vswitch.OffloadNeedsCsum, CsumStart: uint16(l4), CsumOffset: 16}
	partial := bytes.Clone(f.Data)
	a.local.InjectFrame(f)
	waitFrames(t, b.local, 1)
	got := b.local.Take()[0]
	if !bytes.Equal(got.Data, want) || got.Offload != (vswitch.Offload{}) {
		t.Fatalf("received % x (offload %+v), want the completed frame", got.Data[l4:l4+20], got.Offload)
	}
	if checksum.Checksum(got.Data[l4:], header.PseudoHeaderChecksum(header.TCPProtocolNumber, header.IPv4(got.Data[14:]).SourceAddress(), header.IPv4(got.Data[14:]).DestinationAddress(), uint16(len(got.Data)-l4))) != 0xffff {
		t.Fatal("received checksum does not verify")
	}
	if !bytes.Equal(f.Data, partial) {
		t.Fatal("Write completed the checksum in the caller's buffer")
	}
}

// A superframe cut into segments too big for the tunnel loses those
// segments, each counted, and Write says so; the segment that fits, and
// the next superframe, still go through intact.
func TestPortDropsSegmentsTooBig(t *testing.T) {
	for _, mode := range modes {
		t.Run(fmt.Sprint(mode), func(t *testing.T) {
			a, b := newNode(t, 1, tunnel.Config{Mode: mode}), newNode(t, 2, tunnel.Config{Mode: mode})
			mesh(t, a, b)
			mtu := a.tun.Info().MTU
			s := tcpSuper{dst: macN(2), src: macN(1), seq: 1000, ipID: 7,
				srcIP: netip.MustParseAddr("10.0.0.1"), dstIP: netip.MustParseAddr("10.0.0.2")}
			s.mss = mtu + 100 // every full segment is too big
			s.payload = 3*s.mss + 10
			big := s.frame()
			segs := segments(t, big)
			if err := a.tun.Write(big); err != tunnel.ErrFrame {
				t.Fatalf("Write of a superframe with oversized segments: %v, want ErrFrame", err)
			}
			if d := a.tun.Stats().DropsBy[tunnel.DropTooBig]; d != 3 {
				t.Fatalf("%d too-big drops, want 3", d)
			}
			s.mss, s.seq = mtu-52, 5000
			s.payload = 4 * s.mss
			good := s.frame()
			if err := a.tun.Write(good); err != nil {
				t.Fatal(err)
			}
			want := append(segs[3:], segments(t, good)...)
			var got [][]byte
			waitFor(t, "the segments that fit", func() bool {
				for _, fr := range b.local.Take() {
					got = append(got, segments(t, fr)...)
				}
				return len(got) >= len(want)
			})
			drain(t, b)
			for _, fr := range b.local.Take() {
				got = append(got, segments(t, fr)...)
			}
			if len(got) != len(want) {
				t.Fatalf("%d segments arrived, want %d", len(got), len(want))
			}
			for i := range want {
				if !bytes.Equal(got[i], want[i]) {
					t.Fatalf("segment %d differs from what was sent", i)
				}
			}
		})
	}
}
