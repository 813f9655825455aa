package dhcp_test

import (
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/switchyard-net/switchyard/gateway/dhcp"
	vswitch "github.com/switchyard-net/switchyard/switch"
)

func TestRelayedAndSpoofedDropped(t *testing.T) {
	h := newHarness(t)
	h.none(broadcastFrame(newMsg(dhcpv4.MessageTypeDiscover, macA, dhcpv4.WithGatewayIP(net.IP{10, 1, 2, 3})), macA))
	// chaddr A, sent from B's MAC.
	h.none(broadcastFrame(newMsg(dhcpv4.MessageTypeDiscover, macA), macB))
	// A group MAC, as chaddr and source.
	group := vswitch.MAC{0x03, 0, 10, 99, 0, 2}
	h.none(broadcastFrame(newMsg(dhcpv4.MessageTypeDiscover, group), group))
	if st := h.srv.Stats(); st.Relayed != 1 || st.Spoofed != 2 || st.Offers != 0 {
		t.Errorf("stats %+v, want 1 relayed, 2 spoofed, no offer", st)
	}
	if h.alloc.held() != 0 {
		t.Error("an address was allocated for a dropped message")
	}
}

func TestMalformedConsumedAndCounted(t *testing.T) {
	good := broadcastFrame(newMsg(dhcpv4.MessageTypeDiscover, macA), macA)
	cases := map[string]func([]byte) []byte{
		"bad IPv4 checksum": func(b []byte) []byte { b[24] ^= 0xff; return b },
		"bad UDP checksum":  func(b []byte) []byte { b[40] ^= 0xff; return b },
		"UDP length too long": func(b []byte) []byte {
			binary.BigEndian.PutUint16(b[38:], uint16(len(b)))
			zeroUDPChecksum(b)
			return b
		},
		"truncated DHCP message": func(b []byte) []byte {
			b = b[:14+20+8+100]
			binary.BigEndian.PutUint16(b[16:], 20+8+100)
			fixIPChecksum(b)
			binary.BigEndian.PutUint16(b[38:], 8+100)
			fixUDPChecksum(b)
			return b
		},
		"BOOTREPLY": func(b []byte) []byte { b[42] = 2; fixUDPChecksum(b); return b },
		"no message type": func(b []byte) []byte {
			m := newMsg(dhcpv4.MessageTypeDiscover, macA)
			m.Options = dhcpv4.Options{}
			return broadcastFrame(m, macA)
		},
		"first fragment": func(b []byte) []byte { b[20] |= 0x20; fixIPChecksum(b); return b },
	}
	for name, mangle := range cases {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t)
			h.none(mangle(slices.Clone(good)))
			if st := h.srv.Stats(); st.Malformed != 1 || st.Offers != 0 {
				t.Errorf("stats %+v, want 1 malformed and no offer", st)
			}
		})
	}
}

// zeroUDPChecksum clears the UDP checksum ("none", allowed over IPv4), so
// that only what else is wrong with a frame counts.
func zeroUDPChecksum(b []byte) {
	u := b[34:]
	binary.BigEndian.PutUint16(u[6:], 0)
}

func fixIPChecksum(b []byte) {
	binary.BigEndian.PutUint16(b[24:], 0)
	var sum uint32
	for i := 14; i < 34; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(b[24:], ^uint16(sum))
}

func TestChecksumOffloadAndZeroChecksum(t *testing.T) {
	// No UDP checksum (allowed over IPv4): served.
	h := newHarness(t)
	b := broadcastFrame(newMsg(dhcpv4.MessageTypeDiscover, macA), macA)
	b[40], b[41] = 0, 0
	h.one(b)
	// A partial checksum from a TAP with checksum offload: served.
	h = newHarness(t)
	b = broadcastFrame(newMsg(dhcpv4.MessageTypeDiscover, macA), macA)
	b[40], b[41] = 0x12, 0x34
	if !h.srv.HandleFrame(vswitch.Frame{Data: b, Offload: vswitch.Offload{Flags: vswitch.OffloadNeedsCsum, CsumStart: 34, CsumOffset: 6}}) {
		t.Fatal("offloaded DHCP frame not consumed")
	}
	if rs := h.take(); len(rs) != 1 {
		t.Fatalf("%d replies to an offloaded DISCOVER, want 1", len(rs))
	}
}

func TestEthernetPaddingIgnored(t *testing.T) {
	h := newHarness(t)
	b := broadcastFrame(newMsg(dhcpv4.MessageTypeDiscover, macA), macA)
	h.one(append(b, make([]byte, 20)...))
}

// notDHCP are frames the gateway sees that are not DHCP client messages
// for this server.
func notDHCP() map[string][]byte {
	disc := newMsg(dhcpv4.MessageTypeDiscover, macA).ToBytes()
	other := netip.MustParseAddr("10.99.0.7")
	frames := map[string][]byte{
		"short":                 {1, 2, 3},
		"UDP to port 68":        clientFrame(disc, macA, vswitch.Broadcast, zeroIP, bcastIP),
		"UDP 67 to another IP":  clientFrame(disc, macA, serverMAC, zeroIP, other),
		"UDP 67 to another MAC": clientFrame(disc, macA, vswitch.MAC{2, 0, 0, 0, 0, 7}, zeroIP, bcastIP),
		"DNS to the gateway":    clientFrame(disc, macA, serverMAC, other, router),
		"TCP to the gateway":    clientFrame(disc, macA, serverMAC, other, router),
		"later fragment":        clientFrame(disc, macA, vswitch.Broadcast, zeroIP, bcastIP),
		"ARP request": {
			0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0, 0x12, 0x34, 1, 0x08, 0x06,
			0, 1, 8, 0, 6, 4, 0, 1, 0x52, 0x54, 0, 0x12, 0x34, 1, 10, 99, 0, 7, 0, 0, 0, 0, 0, 0, 10, 99, 0, 1,
		},
		"IPv6": append([]byte{0x33, 0x33, 0, 0, 0, 1, 0x52, 0x54, 0, 0x12, 0x34, 1, 0x86, 0xdd}, make([]byte, 60)...),
	}
	// UDP to port 68 from a client: swap the ports.
	b := frames["UDP to port 68"]
	b[34], b[35], b[36], b[37] = 0, 67, 0, 68
	binary.BigEndian.PutUint16(frames["DNS to the gateway"][36:], 53)
	frames["TCP to the gateway"][23] = 6
	frames["later fragment"][21] = 1 // fragment offset 8
	return frames
}

func TestNonDHCPFramesLeftAlone(t *testing.T) {
	h := newHarness(t)
	for name, b := range notDHCP() {
		if h.srv.HandleFrame(vswitch.Frame{Data: b}) {
			t.Errorf("%s: consumed", name)
		}
	}
	if st := h.srv.Stats(); st != (dhcp.Stats{}) || len(h.take()) != 0 {
		t.Errorf("stats %+v after non-DHCP frames", st)
	}
}

func TestNonDHCPFramesDoNotAllocate(t *testing.T) {
	h := newHarness(t)
	for name, b := range notDHCP() {
		f := vswitch.Frame{Data: b}
		if n := testing.AllocsPerRun(200, func() { h.srv.HandleFrame(f) }); n != 0 {
			t.Errorf("%s: %.1f allocations per frame, want 0", name, n)
		}
	}
}
