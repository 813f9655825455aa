package tunnel_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/tunnel"
)

var modes = []tunnel.Mode{tunnel.ModeVXLAN, tunnel.ModeSecure}

// A broadcast crosses the tunnel; the reply, to a MAC the far tunnel has
// learned, goes back to that one peer only.
func TestPortCarriesFramesAndLearns(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			a := newNode(t, 1, tunnel.Config{Mode: mode})
			b := newNode(t, 2, tunnel.Config{Mode: mode})
			mesh(t, a, b)

			bc := rawFrame(vswitch.Broadcast, macN(1), 1, 100)
			if err := a.local.Inject(bc); err != nil {
				t.Fatal(err)
			}
			waitFrames(t, b.local, 1)
			if got := b.local.Take()[0].Data; !bytes.Equal(got, bc) {
				t.Fatalf("b received % x, want % x", got, bc)
			}
			macs := b.tun.MACs()
			if len(macs) != 1 || macs[0].MAC != macN(1) || macs[0].Peer != a.tun.LocalAddr() {
				t.Fatalf("b learned %+v, want %v behind %v", macs, macN(1), a.tun.LocalAddr())
			}

			reply := rawFrame(macN(1), macN(2), 2, 1400)
			b.local.Inject(reply)
			waitFrames(t, a.local, 1)
			if got := a.local.Take()[0].Data; !bytes.Equal(got, reply) {
				t.Fatal("a received a different reply")
			}
			ps := b.tun.Peers()
			if len(ps) != 1 || ps[0].TXFrames != 1 || ps[0].TXBytes != uint64(len(reply)) || ps[0].RXFrames != 1 || ps[0].MACs != 1 || ps[0].LastSeen.IsZero() {
				t.Errorf("b's peer stats %+v, want 1 frame each way, %d bytes out, 1 MAC, seen", ps, len(reply))
			}
			if s := a.tun.Stats(); s.Drops != 0 || s.RXFrames != 1 || s.TXFrames != 1 {
				t.Errorf("a's stats %+v, want 1 frame each way and no drops", s)
			}
		})
	}
}

// Three hosts: a learned unicast MAC goes to its peer only, an unknown one
// to all, and what comes from one peer never goes to another (the switch
// does not send a frame back out of the port it came in on).
func TestPortUnicastFloodAndSplitHorizon(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			a, b, c := newNode(t, 1, tunnel.Config{Mode: mode}), newNode(t, 2, tunnel.Config{Mode: mode}), newNode(t, 3, tunnel.Config{Mode: mode})
			mesh(t, a, b, c)

			// c announces MAC 3: a and b learn it behind c.
			c.local.Inject(rawFrame(vswitch.Broadcast, macN(3), 0, 60))
			waitFrames(t, a.local, 1)
			waitFrames(t, b.local, 1)
			drain(t, a, b) // their forwarding of it is done and counted
			for _, n := range []*node{a, b, c} {
				if s := n.tun.Stats(); s.TXFrames+s.RXFrames > 2 {
					t.Fatalf("a broadcast from c made %d frames on one tunnel: forwarded between peers", s.TXFrames+s.RXFrames)
				}
			}
			if a.tun.Stats().TXFrames != 0 || b.tun.Stats().TXFrames != 0 || c.tun.Stats().TXFrames != 2 {
				t.Fatalf("tx frames a=%d b=%d c=%d, want 0 0 2 (head-end replication, split horizon)",
					a.tun.Stats().TXFrames, b.tun.Stats().TXFrames, c.tun.Stats().TXFrames)
			}

			// a to MAC 3: c only. (Had it gone to b too, b's switch would
			// drop it as a hairpin, so b's tunnel is what must not see it.)
			bRX := b.tun.Stats().RXFrames
			a.local.Inject(rawFrame(macN(3), macN(1), 1, 60))
			waitFrames(t, c.local, 1)
			drain(t, b)
			if n := b.tun.Stats().RXFrames - bRX; n != 0 || b.local.Written() != 1 {
				t.Fatalf("b's tunnel received %d frames and b saw %d, want 0 and only the broadcast: a unicast to a learned MAC was flooded", n, b.local.Written())
			}
			// a to an unknown MAC: both.
			a.local.Inject(rawFrame(macN(99), macN(1), 2, 60))
			waitFrames(t, b.local, 2)
			waitFrames(t, c.local, 2)
			drain(t, b, c)
			if got := a.tun.Stats().TXFrames; got != 3 {
				t.Fatalf("a sent %d frames, want 3 (1 unicast + 2 flooded)", got)
			}
			for _, n := range []*node{b, c} {
				if s := n.tun.Stats(); s.TXFrames != map[*node]uint64{b: 0, c: 2}[n] {
					t.Fatalf("a peer forwarded a frame from another peer: tx %d", s.TXFrames)
				}
			}
		})
	}
}

// A MAC that moves from behind one peer to another is relearned there.
func TestPortMACMoves(t *testing.T) {
	a, b, c := newNode(t, 1, tunnel.Config{}), newNode(t, 2, tunnel.Config{}), newNode(t, 3, tunnel.Config{})
	mesh(t, a, b, c)
	b.local.Inject(rawFrame(vswitch.Broadcast, macN(7), 0, 60))
	waitFrames(t, a.local, 1)
	c.local.Inject(rawFrame(vswitch.Broadcast, macN(7), 0, 60))
	waitFrames(t, a.local, 2)
	waitFrames(t, b.local, 1) // c's broadcast reached b too
	macs := a.tun.MACs()
	if len(macs) != 1 || macs[0].Peer != c.tun.LocalAddr() {
		t.Fatalf("a's MACs %+v, want %v behind c (%v)", macs, macN(7), c.tun.LocalAddr())
	}
	if s := a.tun.Stats(); s.MACMoves != 1 {
		t.Errorf("MACMoves %d, want 1", s.MACMoves)
	}
	for _, ps := range a.tun.Peers() {
		want := map[netip.AddrPort]int{b.tun.LocalAddr(): 0, c.tun.LocalAddr(): 1}[ps.Addr]
		if ps.MACs != want {
			t.Errorf("peer %v holds %d MACs, want %d", ps.Addr, ps.MACs, want)
		}
	}
	before, bRX := b.local.Written(), b.tun.Stats().RXFrames
	a.local.Inject(rawFrame(macN(7), macN(1), 0, 60))
	waitFrames(t, c.local, 1)
	drain(t, b)
	if b.local.Written() != before || b.tun.Stats().RXFrames != bRX {
		t.Error("the frame to the moved MAC still went to its old peer")
	}
}

// Learned MACs age out; frames to them are flooded again.
func TestPortMACAging(t *testing.T) {
	a := newNode(t, 1, tunnel.Config{Aging: 150 * time.Millisecond})
	b := newNode(t, 2, tunnel.Config{})
	mesh(t, a, b)
	b.local.Inject(rawFrame(vswitch.Broadcast, macN(2), 0, 60))
	waitFrames(t, a.local, 1)
	if len(a.tun.MACs()) != 1 {
		t.Fatal("MAC not learned")
	}
	waitFor(t, "the MAC to age out", func() bool { return a.tun.Stats().MACs == 0 })
	if len(a.tun.MACs()) != 0 || a.tun.Peers()[0].MACs != 0 {
		t.Fatal("aged MAC still listed")
	}
}

// Datagrams with another VNI, from unknown senders and malformed ones are
// counted by reason and never reach the switch.
func TestPortDropsBadDatagrams(t *testing.T) {
	a := newNode(t, 1, tunnel.Config{})
	other := newNode(t, 2, tunnel.Config{VNI: 43})
	mesh(t, a, other)
	other.local.Inject(rawFrame(vswitch.Broadcast, macN(2), 0, 60))
	waitFor(t, "a VNI mismatch", func() bool { return a.tun.Stats().DropsBy[tunnel.DropVNIMismatch] == 1 })

	// From an address that is no peer, then from one that is. Peers are
	// recognised by IP address (a Linux vxlan device varies its source
	// port), so the stranger needs another loopback address.
	raw, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	good := make([]byte, 8, 100)
	tunnel.EncodeVXLAN(good, 42)
	good = append(good, rawFrame(vswitch.Broadcast, macN(5), 0, 60)...)
	send := func(b []byte) {
		t.Helper()
		if _, err := raw.WriteToUDPAddrPort(b, a.tun.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	send(good)
	waitFor(t, "an unknown-peer drop", func() bool { return a.tun.Stats().DropsBy[tunnel.DropUnknownPeer] == 1 })
	if err := a.tun.AddPeer(raw.LocalAddr().(*net.UDPAddr).AddrPort()); err != nil {
		t.Fatal(err)
	}
	noI := bytes.Clone(good)
	noI[0] = 0
	tooBig := make([]byte, 8, 9100)
	tunnel.EncodeVXLAN(tooBig, 42)
	tooBig = append(tooBig, rawFrame(vswitch.Broadcast, macN(5), 0, 1600)...)
	for _, b := range [][]byte{good[:10], {}, noI, tooBig} {
		send(b)
	}
	want := map[tunnel.DropReason]uint64{tunnel.DropTruncated: 2, tunnel.DropVNIFlag: 1, tunnel.DropTooBig: 1, tunnel.DropVNIMismatch: 1, tunnel.DropUnknownPeer: 1}
	waitFor(t, "the drops", func() bool { return a.tun.Stats().Drops == 6 })
	s := a.tun.Stats()
	for r, n := range want {
		if s.DropsBy[r] != n {
			t.Errorf("%s drops %d, want %d", r, s.DropsBy[r], n)
		}
	}
	send(good)
	waitFrames(t, a.local, 1)
	drain(t, a)
	if a.local.Written() != 1 {
		t.Fatalf("the switch received %d frames, want only the one good datagram", a.local.Written())
	}
}

// secureSender is a test socket that seals its own datagrams with the
// nodes' key, as a peer would, so that they can be replayed and damaged.
type secureSender struct {
	conn   *net.UDPConn
	sealer *tunnel.Sealer
}

func (s *secureSender) seal(tb testing.TB, frame []byte) []byte {
	return seal(tb, s.sealer, 42, frame)
}

// A replayed datagram and a damaged one are dropped, counted, and never
// reach the switch; so are datagrams under an unknown key, of another
// version or type, and our own reflected back.
func TestSecurePortRefusesReplayAndForgery(t *testing.T) {
	a := newNode(t, 1, tunnel.Config{Mode: tunnel.ModeSecure})
	s := &secureSender{conn: loopbackConn(t), sealer: mustSealer(t, testKey(9), testKeyID, 77, 1000)}
	defer s.conn.Close()
	if err := a.tun.AddPeer(s.conn.LocalAddr().(*net.UDPAddr).AddrPort()); err != nil {
		t.Fatal(err)
	}
	send := func(b []byte) {
		t.Helper()
		if _, err := s.conn.WriteToUDPAddrPort(b, a.tun.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	frame := rawFrame(vswitch.Broadcast, macN(5), 0, 200)
	d := s.seal(t, frame)
	captured := bytes.Clone(d)
	send(d)
	waitFrames(t, a.local, 1)
	if got := a.local.Take()[0].Data; !bytes.Equal(got, frame) {
		t.Fatal("the sealed frame arrived changed")
	}

	send(captured) // replay
	flipped := s.seal(t, frame)
	flipped[40] ^= 0x01 // a bit of the ciphertext
	send(flipped)
	hdrFlip := s.seal(t, frame)
	hdrFlip[3] ^= 0x80 // the key ID: an unknown key
	send(hdrFlip)
	badVersion := s.seal(t, frame)
	badVersion[0] = 2
	send(badVersion)
	badType := s.seal(t, frame)
	badType[1] = 9
	send(badType)
	reflected := seal(t, mustSealer(t, testKey(9), testKeyID, 1, 5000), 42, frame) // a's own sender ID
	send(reflected)
	plain := make([]byte, 8, 100)
	tunnel.EncodeVXLAN(plain, 42)
	send(append(plain, frame...))

	want := map[tunnel.DropReason]uint64{
		tunnel.DropReplay: 1, tunnel.DropAuth: 1, tunnel.DropUnknownKey: 1,
		tunnel.DropVersion: 2, tunnel.DropType: 1, tunnel.DropReflected: 1,
	}
	waitFor(t, "the drops", func() bool { return a.tun.Stats().Drops == 7 })
	st := a.tun.Stats()
	for r, n := range want {
		if st.DropsBy[r] != n {
			t.Errorf("%s drops %d, want %d", r, st.DropsBy[r], n)
		}
	}
	drain(t, a)
	if n := a.local.Written(); n != 1 {
		t.Fatalf("%d frames reached the switch, want only the first", n)
	}
	// A fresh datagram still goes through: the bad ones did not move the
	// replay window or break the port.
	send(s.seal(t, frame))
	waitFrames(t, a.local, 2)
}

// Secure and plain VXLAN do not understand each other: each side drops
// the other's datagrams by reason.
func TestSecureAndPlainDoNotMix(t *testing.T) {
	a := newNode(t, 1, tunnel.Config{Mode: tunnel.ModeSecure})
	b := newNode(t, 2, tunnel.Config{})
	mesh(t, a, b)
	a.local.Inject(rawFrame(vswitch.Broadcast, macN(1), 0, 60))
	b.local.Inject(rawFrame(vswitch.Broadcast, macN(2), 0, 60))
	waitFor(t, "b to drop a's datagram", func() bool { return b.tun.Stats().Drops == 1 })
	waitFor(t, "a to drop b's datagram", func() bool { return a.tun.Stats().Drops == 1 })
	if d := a.tun.Stats().DropsBy[tunnel.DropVersion]; d != 1 {
		t.Errorf("secure port: version drops %d, want 1", d)
	}
	if d := b.tun.Stats().DropsBy[tunnel.DropVNIFlag]; d != 1 {
		t.Errorf("plain port: VNI flag drops %d, want 1 (the secure version byte 0x01 has no I flag)", d)
	}
	if a.local.Written()+b.local.Written() != 0 {
		t.Error("a frame crossed between secure and plain ports")
	}
}

func TestPortPeersAtRunTime(t *testing.T) {
	a := newNode(t, 1, tunnel.Config{})
	b := newNode(t, 2, tunnel.Config{})
	if err := a.local.Inject(rawFrame(vswitch.Broadcast, macN(1), 0, 60)); err != nil {
		t.Fatal(err)
	}
	if d := a.tun.Stats().DropsBy[tunnel.DropNoPeer]; d != 1 {
		t.Fatalf("no-peer drops %d, want 1", d)
	}
	mesh(t, a, b)
	if err := a.tun.AddPeer(b.tun.LocalAddr()); err != nil {
		t.Fatalf("adding a peer twice: %v", err)
	}
	if n := len(a.tun.Peers()); n != 1 {
		t.Fatalf("%d peers after adding one twice", n)
	}
	b.local.Inject(rawFrame(vswitch.Broadcast, macN(2), 0, 60))
	waitFrames(t, a.local, 1)
	if !a.tun.RemovePeer(b.tun.LocalAddr()) {
		t.Fatal("RemovePeer of a peer reported false")
	}
	if a.tun.RemovePeer(b.tun.LocalAddr()) {
		t.Fatal("RemovePeer twice reported true")
	}
	if len(a.tun.Peers()) != 0 || len(a.tun.MACs()) != 0 {
		t.Fatalf("after RemovePeer: peers %v, MACs %v", a.tun.Peers(), a.tun.MACs())
	}
	b.local.Inject(rawFrame(vswitch.Broadcast, macN(2), 0, 60))
	waitFor(t, "an unknown-peer drop", func() bool { return a.tun.Stats().DropsBy[tunnel.DropUnknownPeer] == 1 })
	if a.local.Written() != 1 {
		t.Fatal("a frame from a removed peer reached the switch")
	}

	for _, bad := range []string{"0.0.0.0:4789", "224.0.0.1:4789", "[::]:4789"} {
		if err := a.tun.AddPeer(netip.MustParseAddrPort(bad)); err == nil {
			t.Errorf("AddPeer(%s) accepted", bad)
		}
	}
	if err := a.tun.AddPeer(netip.MustParseAddrPort("[fd00::1]:4789")); err == nil {
		t.Error("an IPv6 peer accepted on an IPv4 socket")
	}
	if err := a.tun.AddPeer(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.9"), 0)); err != nil {
		t.Fatal(err)
	}
	if got := a.tun.Peers()[0].Addr; got.Port() != tunnel.VXLANPort {
		t.Errorf("peer without a port got %v, want port %d", got, tunnel.VXLANPort)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  tunnel.Config
		want string
	}{
		{"vni", tunnel.Config{VNI: 1 << 24}, "VNI"},
		{"mode", tunnel.Config{Mode: 9}, "mode"},
		{"key", tunnel.Config{Mode: tunnel.ModeSecure, SenderID: 1}, "key"},
		{"sender", tunnel.Config{Mode: tunnel.ModeSecure, Key: testKey(1)}, "SenderID"},
		{"mtu", tunnel.Config{MTU: 20}, "MTU"},
		{"peer", tunnel.Config{Peers: []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:1")}}, "peer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Conn = loopbackConn(t)
			_, err := tunnel.New(tc.cfg)
			if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
				t.Fatalf("err %v, want one naming %q", err, tc.want)
			}
			// The socket was closed.
			if _, err := tc.cfg.Conn.WriteToUDPAddrPort([]byte{1}, netip.MustParseAddrPort("127.0.0.1:9")); !errors.Is(err, net.ErrClosed) {
				t.Errorf("socket still open after a failed New: %v", err)
			}
		})
	}
	c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tunnel.New(tunnel.Config{Conn: c}); err == nil {
		t.Error("a connected socket accepted")
	}
}

func TestPortInfoAndDefaults(t *testing.T) {
	for _, tc := range []struct {
		mode tunnel.Mode
		mtu  int
		port uint16
	}{{tunnel.ModeVXLAN, 1450, 4789}, {tunnel.ModeSecure, 1418, 4793}} {
		n := newNode(t, 1, tunnel.Config{Mode: tc.mode})
		info := n.tun.Info()
		if info.MTU != tc.mtu || info.Kind != "tunnel" || info.Offloads&vswitch.OffloadTSO4 == 0 {
			t.Errorf("%v: Info %+v, want MTU %d, kind tunnel, TSO", tc.mode, info, tc.mtu)
		}
		if tc.mode.DefaultPort() != tc.port {
			t.Errorf("%v: default port %d, want %d", tc.mode, tc.mode.DefaultPort(), tc.port)
		}
	}
	n := newNode(t, 1, tunnel.Config{Disable: tunnel.FeatureTSO})
	if n.tun.Info().Offloads != 0 {
		t.Error("TSO disabled but offloads advertised")
	}
	if names := fmt.Sprint(tunnel.DropReasons()); !bytes.Contains([]byte(names), []byte("unknown_peer")) {
		t.Errorf("drop reasons %s lack unknown_peer", names)
	}
}
