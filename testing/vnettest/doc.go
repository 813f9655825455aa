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
// failed, the World saves one pcap file per host (readable by tcpdump and
// Wireshark) in t.ArtifactDir and logs the names: run
// `go test -artifacts` to keep the files after the test ends.
//
// # Bad input
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
