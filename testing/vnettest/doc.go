// Package vnettest builds whole virtual networks inside a Go test: hosts
// with real TCP/IP stacks on Switchyard's real switch, with impairable
// cables between them, all in the test's own process. No root, no TAP, no
// namespace and no socket of the machine is used: every frame stays in
// memory.
//
// # Five minutes
//
// A World belongs to one test and is closed with it:
//
//	w := vnettest.New(t)
//	lan := w.NewNetwork("lan", "10.0.0.0/24") // one switch
//	srv := lan.NewHost("server")               // 10.0.0.2
//	cli := lan.NewHost("client")               // 10.0.0.3
//
// Hosts speak the standard library. Listen, ListenPacket, Dial and
// DialContext behave as the net package's functions do and return
// net.Listener, net.PacketConn and net.Conn; DialContext fits
// http.Transport.DialContext, so net/http, crypto/tls, gRPC and anything
// else that takes a dialer run over the virtual network unmodified. Host
// names resolve to their addresses:
//
//	l, _ := srv.Listen("tcp", ":80")
//	go http.Serve(l, handler)
//	resp, err := cli.HTTPClient().Get("http://server/")
//
// Each host is joined to its network by a Wire. A wire carries frames in
// two directions, Up (host to network) and Down (network to host), each
// through a list of Stages that may drop, delay, duplicate, reorder,
// corrupt or cut frames, and that can be changed while the test runs:
//
//	cli.Wire().Impair(vnettest.Loss(0.05), vnettest.Delay(20*time.Millisecond, 5*time.Millisecond))
//	cli.Wire().SetStages(vnettest.Down, vnettest.RateLimit(10_000_000, 50*time.Millisecond))
//	cli.Wire().Cut()  // partition
//	cli.Wire().Heal()
//
// The impairments are Delay (with jitter), Loss, BurstLoss (Gilbert
// model), Duplicate, Reorder, Corrupt, Truncate, MTUBlackHole and
// RateLimit; Cut and Heal partition a host. Any code of your own that
// works on Ethernet frames — a filter, a NAT, a packet parser under test —
// becomes a stage by implementing Stage (or with StageFunc) and sits
// between hosts the same way.
//
// # Topologies
//
// Networks are joined the ways real ones are, from Switchyard's own parts:
//
//	inet := w.NewNetwork("inet", "203.0.113.0/24")  // "the internet"
//	gw := lan.NewGateway(vnettest.GatewayConfig{Uplink: inet})
//	gw.PublishTCP(8080, srv, 80)                     // like docker run -p 8080:80
//	gw.PublishUDP(5353, srv, 53)                     // -p 5353:53/udp
//	w.NewRouter("r", east, west)                     // plain IPv4 routing
//	w.NewNATBox("home", lan, inet, vnettest.NATConfig{
//		Mapping: vnettest.EndpointIndependent, Filtering: vnettest.AddressDependent})
//
// A Gateway is Switchyard's real gateway (package gateway): it answers
// ARP and pings, serves DNS with the network's host names (Host.Resolver
// asks it), leases addresses by DHCP if GatewayConfig.DHCP is set, and
// masquerades egress TCP and UDP onto its uplink network, whose hosts see
// the gateway's uplink address; pings to the outside go unanswered. A
// NATBox has the behaviours of RFC 4787 — endpoint-independent,
// address-dependent or address-and-port-dependent mapping and filtering,
// hairpinning on or off, port preservation, mappings that time out — for
// testing NAT traversal. Every router, NAT and gateway uplink leg is a
// Wire too, and can be impaired or cut.
//
// Two networks of one subnet become one L2 segment across a third, the
// underlay, through Switchyard's real tunnel (package tunnel), in VXLAN
// or sealed (ChaCha20-Poly1305) mode:
//
//	east := w.NewNetwork("east", "10.1.0.0/24")
//	west := w.NewNetwork("west", "10.1.0.0/24") // shares east's addresses
//	dc := w.NewNetwork("dc", "192.168.0.0/24")
//	tun := w.NewTunnel("t1", east, west, dc, vnettest.TunnelConfig{Mode: vnettest.Sealed})
//	a, _ := tun.Ends()                           // the tunnel's hosts on dc
//	a.Wire().Impair(vnettest.Loss(0.03))         // a lossy underlay
//
// Each tunnel port sends its datagrams from a UDP socket of a host on the
// underlay (tunnel.Config.PacketConn), so the underlay is impaired, cut
// and captured like any other network.
//
// # Fuzzing
//
// FuzzFrames is the body of a fuzz target: it cuts `go test -fuzz` input
// into frames, injects them from a host (through that host's stages, such
// as the code under test) and checks that the network survived: no panic,
// a broadcast still reaches every host, every wire's counters add up.
// Build the World once, with the *testing.F, outside f.Fuzz. Keep fuzz
// targets in a package whose tests link little else: `go test -fuzz`
// instruments every package of the test binary, and after each input the
// engine goes over all their coverage counters, which costs more than the
// World does (see testing/vnettest/internal/gwfuzz).
//
// # Time
//
// A World runs on the real clock unless made with the VirtualTime option:
//
//	w := vnettest.New(t, vnettest.VirtualTime(), vnettest.Seed(7))
//	…
//	ctx, cancel := w.WithTimeout(context.Background(), 30*time.Second)
//	go func() { defer close(done); c, err = cli.DialContext(ctx, "tcp", "server:80"); … }()
//	w.AdvanceUntil(time.Minute, func() bool { return isClosed(done) })
//
// Then the clock stands still (at 2000-01-01 UTC) until the test moves it
// with Advance or AdvanceUntil, which fire the timers that fall due one by
// one, in order, and let the world settle after each (until no frame
// moves, nothing touches the clock and the Go scheduler has had no
// goroutine to run at several readings in a row, the caller yielding
// between them). Thirty seconds of retransmissions over a lossy link take
// some ten milliseconds of wall time, and a run replays: the same seed
// gives the same frames at the same virtual times, byte for byte in the
// pcaps (see TestVirtualTimeReplaysFrames). On the virtual clock run:
// every host's, router's and gateway's TCP/IP stack (retransmission,
// delayed ACK, keepalive, TIME-WAIT, ARP and neighbour timers, TCP
// timestamps; their sequence numbers and ports are drawn from the seed),
// every stage's delay, jitter, reordering and rate limit,
// StageContext.Now, the pcap timestamps, Host.Ping's round-trip time,
// World.Now, the contexts of World.WithTimeout, and:
//
//   - the deadlines of the conns, packet conns and listeners hosts hand
//     out (SetDeadline, SetReadDeadline, SetWriteDeadline; a Listener's
//     SetDeadline bounds Accept). A deadline is read the way code that
//     knows nothing of the World writes it: time.Now().Add(d) (on the
//     real clock) runs d of virtual time from the call, rounded up to
//     the millisecond; a time of the World's clock, w.Now().Add(d), is
//     met exactly (any time before the World was made is taken as one).
//     A timed-out call returns a net.Error whose Timeout is true, as the
//     net package's do;
//   - the deadline of a context given to DialContext (made with
//     context.WithTimeout, say): what is left of it runs on the virtual
//     clock (the context's own real timer still runs, and ends the dial
//     if that much real time passes first);
//   - the gateway's own timeouts and sweeps (package gateway's
//     Config.Clock: the idle timeout of egress UDP flows, DHCP lease and
//     offer expiry), and the 90 s idle timeout of a PublishUDP flow;
//   - a NATBox's NATConfig.MappingTimeout.
//
// What cannot take the virtual clock, and keeps to the real one:
//
//   - anything the code under test times by itself: time.Sleep,
//     time.After, time.NewTimer, a context.WithTimeout context used
//     other than as DialContext's, http.Client.Timeout. Give such code
//     World.WithTimeout's contexts, or deadlines on its conns;
//   - a Tunnel's ports: their MAC aging and, in sealed mode, key
//     rotation (package tunnel keeps a coarse clock of its own);
//   - NewHost's low-level hosts, which belong to no World (their
//     listeners' Accept deadlines run on the real clock).
//
// Replays are exact while the code under test does not race the
// netstacks: when a host's application goroutine and its TCP/IP stack's
// goroutine both act at one virtual instant (a reader takes data just as
// the stack sends an ACK), which of them goes first is up to the Go
// scheduler, and a field such as an advertised window can differ between
// runs; the sequence of round trips and their times stay the same (see
// TestVirtualEchoTimeout). testing/synctest is no alternative: the
// netstacks' processor goroutines wait in a way the bubble does not count
// as durably blocked, so its clock never moves.
//
// # Seeds
//
// Every random choice a stage makes comes from StageContext.Rand, seeded
// from the World's seed and the wire's name and direction, so the same
// seed and the same frames give the same choices. The seed is taken from
// the Seed option, else from $VNETTEST_SEED, else from the clock. A failed
// test logs it; run again with VNETTEST_SEED set to replay.
//
// # When a test fails
//
// Every wire records what its host sent and received. When the test has
// failed, the World saves one pcap file per wire (readable by tcpdump and
// Wireshark) in t.ArtifactDir and logs the names: run
// `go test -artifacts` to keep the files after the test ends.
// Wire.Pcap gives the same bytes at any time, to compare two runs.
//
// # Bad input
//
// Constructors (New, NewNetwork, NewHost, NewGateway, NewRouter,
// NewNATBox) report bad input by failing the test with t.Fatalf, so call
// them from the test's own goroutine.
//
// A malformed subnet, a host address outside its network, two hosts with
// one name or one address fail the test at once with a message naming the
// part and what would be accepted. A stage given a loss rate outside
// [0,1] or a negative delay is refused by SetStages with such an error. A
// stage that panics drops the frame and fails the test, naming the wire
// and the stage; the network goes on. A test that forgets to close
// anything leaks no goroutine: the World closes all it made when the test
// ends.
//
// # The low-level form
//
// NewHost attaches a host to a vswitch.Switch of the caller's: Switchyard's
// own tests of the switch and the gateway use it. Such a host has no wire
// and resolves no names, and its caller closes it.
//
// # Compatibility
//
// The exported API of this package is kept backward compatible within a
// major version of the module, in the sense of the Go 1 promise: existing
// calls keep compiling and keep their meaning; new functions, methods,
// options and stages may be added. The API uses only standard library
// types and types of Switchyard's own vswitch package (MAC, Switch, Link)
// — never a gVisor type, so that users do not depend on the gVisor
// version Switchyard builds with; a test of this package enforces that.
// Two things are not promised: the exact frames a host's TCP/IP stack
// sends (timers, window sizes and retransmissions follow the stack's
// version), and therefore the exact sequence of random choices across
// Switchyard versions: a seed replays a run with the same version.
package vnettest
