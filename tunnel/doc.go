// Package tunnel is Switchyard's host-to-host tunnel: the wire format that
// wraps an Ethernet frame leaving one switch into a UDP payload and unwraps
// it on the other side, and Port, the vswitch.Port that owns the UDP socket
// and carries a network's frames to the other hosts, like flannel's vxlan
// backend.
//
// Two encapsulations are provided:
//
//   - VXLAN (RFC 7348, wire.go): an 8-byte header carrying a 24-bit VNI,
//     byte-compatible with the Linux kernel's vxlan device on UDP port 4789.
//     No confidentiality, no integrity; for trusted underlays.
//   - Secure (secure.go): the same VXLAN-tagged frame sealed with
//     ChaCha20-Poly1305 under a pre-shared key, behind a 16-byte header that
//     names the key and the sender and carries a counter. Not VXLAN on the
//     wire; both ends must be Switchyard. Replays are refused with a sliding
//     window per sender (replay.go). The wire layout, nonce and associated
//     data are drawn at the top of secure.go. Its default port is
//     SecurePort, 4793.
//
// # Key rotation
//
// A sealed Port replaces its key while it runs, without losing a frame
// (rotate.go). Hosts share keys, not sessions, so each host rotates on
// its own, at a moment of its own, with no handshake: Port.Rotate runs
// three phases on one host's clock, with W the rotation window:
//
//	t0         accept the new key as well as the old (phase 1)
//	t0 + W     seal under the new key (phase 2)
//	t0 + 2W    drop the old key: its datagrams count as DropUnknownKey (phase 3)
//
// Why nothing is lost: if every host starts within W of the first one
// (at t0 ≤ tᵢ ≤ t0+W), no host seals under the new key before tᵢ+W ≥
// t0+W, by which time every host accepts it; and every host stops
// sealing under the old key by t0+2W ≤ tⱼ+2W, before any host drops it.
// Between t0+W and the last host's 2W both keys are in the air, and each
// receiver takes both. So the operator's one rule is "run the rotation on
// every host within W of the first" (the daemon's default W is 60 s).
// A zero window switches and drops at once, losing what peers still seal
// under the old key: the choice for a key known to be stolen.
//
// Keys are named on the wire by a 16-bit key ID that every host derives
// from the key itself (KeyIDOf: the first two bytes of a SHA-256 of the
// key behind a label), so hosts agree on the new key's ID without talking.
// Rotate refuses a key whose ID is already taken (ErrKeyID), once in
// 65,536 keys. The Opener keeps one replay window per (key ID, sender
// ID), so a replay is refused under either key during the window, and
// counts the datagrams it accepted under each key (Port.Keys), which says
// whether peers still seal under the old one.
//
// A host that restarts during a rotation calls Rotate again with the
// rotation's original Start: it resumes in the phase the clock puts it
// in. Each phase is a swap of an immutable snapshot: the Sealer behind
// an atomic pointer, the Opener's key map copied on write, so the data
// path takes no lock and allocates nothing more. A timer, not a
// goroutine, runs phases 2 and 3.
//
// What rotation does not give: forward secrecy. The keys are pre-shared
// and long-lived; whoever holds a key can decrypt every datagram recorded
// under it, before and after. Rotation bounds how much traffic one stolen
// key opens. Never rotate back to a key used before: its replay windows
// were forgotten when it was dropped, so datagrams recorded under it could
// be replayed once more.
//
// # The Port
//
//	container TAPs ──► vswitch ──Write──► Port ──UDP──► peers (other hosts)
//	                      ▲                │
//	                      └──Receive───────┘ one reader goroutine
//
// A Port has static peers (Config.Peers, AddPeer, RemovePeer at run time;
// daemon/cluster finds them in etcd). It learns, from each frame it
// receives, which peer the frame's source MAC lives behind (with aging and
// a size cap), and sends a unicast frame to a learned MAC to that peer
// alone; broadcast, multicast and unknown unicast go to every peer
// (head-end replication: no multicast underlay needed). The switch never
// writes a frame back to the port it came from, so a frame from one peer
// never reaches another (split horizon), and full meshes do not loop.
//
// Peers are recognised by IP address: a datagram from an address that is
// no peer's is dropped before anything else is looked at, in both modes
// (DropUnknownPeer). Plain VXLAN has no other defence against injected
// frames; in secure mode the check comes before decryption, so a flood of
// forged datagrams from strangers costs no cryptography. The source port
// is not part of a peer's identity, because the Linux vxlan device sends
// from a port that varies per flow; a Port itself sends everything from
// its socket's one port (so the underlay cannot spread its flows over ECMP
// paths).
//
// # IPv6 underlays
//
// The underlay may be IPv6: a Port bound to an IPv6 address takes IPv6
// peers only, one bound to 0.0.0.0 IPv4 peers only (ErrPeerFamily
// otherwise), one bound to [::] (or the zero Listen) both. A link-local
// peer or listen address needs its zone, [fe80::2%eth0]:4789 (ErrZone
// without). Received datagrams' sources carry no zone, so peers are
// recognised by address without it. Whatever the underlay, the overlay
// carries IPv4 and IPv6 frames alike.
//
// The MTU a Port advertises to the switch is the underlay's minus the
// encapsulation: MTUFor(1500) = 1450 for VXLAN, SecureMTUFor(1500) = 1418
// sealed; 20 bytes less over IPv6 (MTUFor6 = 1430, SecureMTUFor6 = 1398,
// Mode.InnerMTU picks one), which is the default when the socket is
// bound to an IPv6 address or a first peer is one. A unicast frame bigger than that is not the Port's business: the
// switch drops it and, if it knows the network's router, answers the sender
// with ICMP "fragmentation needed" (see vswitch's pmtu.go). Datagrams leave
// with DF clear, as the Linux vxlan device's do by default.
//
// # Offloads
//
// The Port takes superframes (64 KiB TCP and UDP GSO frames from TAPs with
// offload) and frames with partial checksums. It cuts superframes itself
// with vswitch.SegmentFrameInto, building every segment in place behind its
// header in one buffer of datagrams, and hands runs of equal-size datagrams to the kernel in one sendmsg with
// UDP_SEGMENT (UDP GSO), or, without it, the batch in one sendmmsg. It
// receives with recvmmsg and UDP_GRO, so one message can hold dozens of
// datagrams from one peer, and merges consecutive TCP segments of a flow
// back into superframes (coalesce.go) that an offloading TAP takes in one
// write. Features lists these; Config.Disable turns them off one by one,
// and benchmarks/bench.sh `tunnel-features` measures what each buys.
//
// Received TCP and UDP checksums are verified in plain mode, and completed
// when the sender left them partial, as a Linux vxlan device on a veth
// underlay does (see csum.go). A Linux vxlan device on the same machine
// also hands its TSO packets to a UDP socket unsegmented: a datagram whose
// inner frame is a TCP superframe is forwarded as one.
//
// # Goroutines and buffers
//
// A Port runs one reader, one janitor (coarse clock, MAC aging) and, with
// FeaturePipeline, one sender that sends the segments of superframes while
// the writer reads and cuts the next; there is no goroutine per packet.
// Write copies the frame and never retains it. The data path allocates
// nothing per packet (TestWriteDoesNotAllocate, TestReceiveDoesNotAllocate):
// buffers come from pools or belong to the reader.
//
// Every dropped datagram or frame bumps one counter (Stats.DropsBy, by
// DropReason); nothing is logged per packet.
//
// # Wire buffers and headroom
//
// Nothing in the wire layer allocates per datagram. Encapsulation works in
// place in a buffer the caller owns: the caller copies the inner frame
// behind enough headroom for the headers and, for Seal, leaves TagLen bytes
// of capacity after it. Decapsulation returns a view into the datagram it
// was given.
//
//	VXLAN:   buf[0:8] header         buf[8:]   frame
//	         ▲ EncodeVXLAN(buf, vni) writes here; buf is the UDP payload
//
//	Secure:  buf[0:16] secure header  buf[16:24] VXLAN header  buf[24:n] frame  cap ≥ n+16
//	         ▲ Sealer.Seal(buf[:n], vni) writes both headers, encrypts buf[16:n]
//	           in place and returns buf[:n+16], the UDP payload
//
// # Receive path of the wire layer
//
//	UDP payload ──► Opener.Open (secure only) ──► DecodeVXLAN ──► vni, frame
//	                 │ decrypts in place            │
//	                 ▼                              ▼
//	          ErrTruncated, ErrVersion,       ErrTruncated, ErrVNIFlag
//	          ErrType, ErrUnknownKey,
//	          ErrReplay, ErrAuth, ErrReflected
//
// The data path returns these sentinel errors unwrapped, so that a flood of
// bad datagrams costs no allocation; a Port compares them and bumps one
// counter per sentinel instead of logging. Errors from configuration
// (keys, key files, buffer sizes) wrap a sentinel in a message that names
// the offending input.
package tunnel
