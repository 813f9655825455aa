package tunnel_test

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/testing/porttest"
	"github.com/switchyard-net/switchyard/tunnel"
)

// node is one "host" of a loopback test: a switch, a tunnel port on
// 127.0.0.1 and an in-memory port standing for the local containers.
type node struct {
	sw    *vswitch.Switch
	tun   *tunnel.Port
	link  *vswitch.Link // the tunnel's link
	local *porttest.Port
}

// testKeyID and the key shared by the secure nodes of a test.
const testKeyID = 7

func loopbackConn(tb testing.TB) *net.UDPConn {
	tb.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// newNode builds a node; cfg's Conn, Logger and (secure) key fields are
// filled in when zero.
func newNode(tb testing.TB, id uint32, cfg tunnel.Config) *node {
	tb.Helper()
	return newNodeWith(tb, id, cfg, false)
}

// newNodeWith is newNode; with discard, the local port only counts what
// it gets (it allocates nothing), for allocation tests and benchmarks.
func newNodeWith(tb testing.TB, id uint32, cfg tunnel.Config, discard bool) *node {
	tb.Helper()
	if cfg.Conn == nil && cfg.PacketConn == nil {
		cfg.Conn = loopbackConn(tb)
	}
	if cfg.Logger == nil {
		cfg.Logger = zaptest.NewLogger(tb, zaptest.Level(zapcore.WarnLevel))
	}
	if cfg.Mode == tunnel.ModeSecure {
		if cfg.Key == (tunnel.Key{}) {
			cfg.Key, cfg.KeyID = testKey(9), testKeyID
		}
		if cfg.SenderID == 0 {
			cfg.SenderID = id
		}
	}
	if cfg.VNI == 0 {
		cfg.VNI = 42
	}
	if cfg.Name == "" {
		cfg.Name = "tun"
	}
	p, err := tunnel.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	sw := vswitch.New(vswitch.Config{Name: "n"})
	tb.Cleanup(func() { sw.Close() })
	l, err := sw.Attach(p, vswitch.AttachOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	local := porttest.New("local", 9000).WithOffloads(vswitch.OffloadCsum | vswitch.OffloadTSO4 | vswitch.OffloadTSO6)
	local.Discard = discard
	if _, err := sw.Attach(local, vswitch.AttachOptions{}); err != nil {
		tb.Fatal(err)
	}
	return &node{sw: sw, tun: p, link: l, local: local}
}

// mesh joins nodes to each other as peers.
func mesh(tb testing.TB, nodes ...*node) {
	tb.Helper()
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b {
				if err := a.tun.AddPeer(b.tun.LocalAddr()); err != nil {
					tb.Fatal(err)
				}
			}
		}
	}
}

func macN(n byte) vswitch.MAC { return vswitch.MAC{0x02, 0x42, 0, 0, 0, n} }

// rawFrame returns an Ethernet frame of the local experimental EtherType
// 0x88b5 with a payload of size bytes derived from tag.
func rawFrame(dst, src vswitch.MAC, tag byte, size int) []byte {
	b := make([]byte, 14+size)
	copy(b[0:6], dst[:])
	copy(b[6:12], src[:])
	binary.BigEndian.PutUint16(b[12:14], 0x88b5)
	for i := range size {
		b[14+i] = tag + byte(i)
	}
	return b
}

// waitFrames waits until p has been written at least n frames in total.
func waitFrames(tb testing.TB, p *porttest.Port, n uint64) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for p.Written() < n {
		if time.Now().After(deadline) {
			tb.Fatalf("port %s: %d frames written, want %d", p.Info().Name, p.Written(), n)
		}
		select {
		case <-p.Notify():
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// waitFor polls cond for up to 5 s.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// drain returns once each node's tunnel port has handed its switch
// everything that reached its socket before the call, for tests that then
// check that something did not arrive. See drainWith; the stranger is a
// socket on 127.0.0.99, which no test makes a peer.
func drain(tb testing.TB, nodes ...*node) {
	tb.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 99)})
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	for _, n := range nodes {
		drainWith(tb, n.tun, func(b []byte) error {
			_, err := c.WriteToUDPAddrPort(b, n.tun.LocalAddr())
			return err
		})
	}
}

// drainWith returns once p has handed its switch everything that reached
// its socket before the call. send sends a datagram to p from an address
// that is no peer of p's. Two such datagrams go out, the second only once
// the first was counted as DropUnknownPeer: by then the reader had taken
// the first's receive batch, so the second comes in a later batch, and
// the reader delivers all of one batch (flushing the coalescer) before it
// reads the next. Everything sent to p before the call is ahead of the
// first, as the kernel queues a datagram crossing loopback or a veth on
// the receiving socket before sendto returns. Each call adds 2 to p's
// DropUnknownPeer and Drops counts.
func drainWith(tb testing.TB, p *tunnel.Port, send func([]byte) error) {
	tb.Helper()
	for range 2 {
		want := p.Stats().DropsBy[tunnel.DropUnknownPeer] + 1
		if err := send([]byte("drain")); err != nil {
			tb.Fatal(err)
		}
		waitFor(tb, "a stranger's datagram to be dropped", func() bool {
			return p.Stats().DropsBy[tunnel.DropUnknownPeer] >= want
		})
	}
}

// tcpSuper describes a TCP/IPv4 superframe as a TAP with TSO hands it
// over: complete headers, a partial checksum, GSO metadata.
type tcpSuper struct {
	dst, src vswitch.MAC
	srcIP    netip.Addr
	dstIP    netip.Addr
	seq      uint32
	ipID     uint16
	mss      int
	payload  int
	v6       bool
}

// tcpOptsLen is the length of the TCP options used: timestamps, as Linux
// sends them (NOP, NOP, TS).
const tcpOptsLen = 12

// frame builds the superframe (GSO metadata set if the payload exceeds
// one segment) or, with payload ≤ mss, a single complete segment.
func (s tcpSuper) frame() vswitch.Frame {
	thl := header.TCPMinimumSize + tcpOptsLen
	ipl := header.IPv4MinimumSize
	et := header.IPv4ProtocolNumber
	if s.v6 {
		ipl, et = header.IPv6MinimumSize, header.IPv6ProtocolNumber
	}
	l3, l4 := 14, 14+ipl
	b := make([]byte, l4+thl+s.payload)
	copy(b[0:6], s.dst[:])
	copy(b[6:12], s.src[:])
	binary.BigEndian.PutUint16(b[12:14], uint16(et))
	src, dst := tcpip.AddrFromSlice(s.srcIP.AsSlice()), tcpip.AddrFromSlice(s.dstIP.AsSlice())
	l4len := thl + s.payload
	if s.v6 {
		header.IPv6(b[l3:]).Encode(&header.IPv6Fields{PayloadLength: uint16(l4len), TransportProtocol: header.TCPProtocolNumber, HopLimit: 64, SrcAddr: src, DstAddr: dst})
	} else {
		ip := header.IPv4(b[l3:])
		ip.Encode(&header.IPv4Fields{TotalLength: uint16(ipl + l4len), ID: s.ipID, Flags: header.IPv4FlagDontFragment, TTL: 64, Protocol: uint8(header.TCPProtocolNumber), SrcAddr: src, DstAddr: dst})
		ip.SetChecksum(^ip.CalculateChecksum())
	}
	tcp := header.TCP(b[l4:])
	tcp.Encode(&header.TCPFields{SrcPort: 40000, DstPort: 5201, SeqNum: s.seq, AckNum: 777, DataOffset: uint8(thl), Flags: header.TCPFlagAck | header.TCPFlagPsh, WindowSize: 502})
	opts := b[l4+20 : l4+thl]
	opts[0], opts[1], opts[2], opts[3] = 1, 1, 8, 10
	binary.BigEndian.PutUint32(opts[4:], 123456)
	binary.BigEndian.PutUint32(opts[8:], 654321)
	for i := range s.payload {
		b[l4+thl+i] = byte(i*7 + int(s.seq))
	}
	pseudo := header.PseudoHeaderChecksum(header.TCPProtocolNumber, src, dst, uint16(l4len))
	if s.payload <= s.mss {
		tcp.SetChecksum(^checksum.Checksum(b[l4:], pseudo))
		return vswitch.Frame{Data: b}
	}
	tcp.SetChecksum(pseudo)
	gso := vswitch.GSOTCPv4
	if s.v6 {
		gso = vswitch.GSOTCPv6
	}
	return vswitch.Frame{Data: b, Offload: vswitch.Offload{
		Flags: vswitch.OffloadNeedsCsum, GSOType: gso, HdrLen: uint16(l4 + thl),
		GSOSize: uint16(s.mss), CsumStart: uint16(l4), CsumOffset: 16,
	}}
}

// segments cuts f the way the switch would, into copies.
func segments(tb testing.TB, f vswitch.Frame) [][]byte {
	tb.Helper()
	if !f.Offload.IsGSO() {
		return [][]byte{append([]byte(nil), f.Data...)}
	}
	var out [][]byte
	scratch := make([]byte, len(f.Data))
	if !vswitch.SegmentFrame(f, scratch, func(s []byte) { out = append(out, append([]byte(nil), s...)) }) {
		tb.Fatal("SegmentFrame refused the frame")
	}
	return out
}
