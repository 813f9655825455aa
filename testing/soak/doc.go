// Package soak is the adversarial soak of issue 11's "Proof": one
// container attacks a network while another keeps working, and the test
// measures whether the victim notices. It is a load test, run on demand
// only: without SWITCHYARD_SOAK=1 its one test skips, saying how to run
// it (the only skip that is not the kernel's refusal, because a
// multi-minute load test has no place in `go test ./...`). Run it with
// benchmarks/soak.sh, as root.
//
//	host namespace (the daemon's, loopback only)
//	┌──────────────────────────────────────────────────────────┐
//	│ HTTP loop ─► 127.0.0.1:18080 ─► switchyard daemon         │
//	│              (published 80/tcp, 53/udp of the victim)     │
//	└──────────────────────────┬───────────────────────────────┘
//	                network "soak" (icc=true, then icc=false)
//	    ┌────────────────────────┴───────────────────────┐
//	victim: HTTP "victim" on :80,               attacker: HTTP "attacker" on :80,
//	UDP echo on :53, ping loop to the gateway   the victim's IP as a second address,
//	                                            raw-socket floods (attack_test.go)
//
// While the load lasts, the attacker floods random source MACs, sends
// spoofed ARP (who-has gateway tell <victim>, gratuitous ARP for the
// victim's address), IPv4 packets with the victim's source address,
// unsolicited neighbour advertisements and router advertisements, UDP from
// random source ports to the victim's published UDP port (through the
// gateway, hairpin) and bursts of 2,000 connections to its published TCP
// port, also through the gateway: they are bounded by the attacker's
// share of the gateway's NAT ports, which the UDP spray fills, so the
// spray waits for the first burst; on an icc=false network the hairpin
// between containers is dropped by design and the bursts time out. Every
// loop stops at the load's deadline or after a fixed number of frames or
// connections, whichever comes first. After the load: requests that show
// whether the poison lingers, and a newcomer container connected (once
// the MAC flood may have filled the switch's table) that pings the
// gateway.
//
// Figures (printed, and appended to SWITCHYARD_SOAK_REPORT as markdown):
// the victim's ping loss (goal ≤ 1 %), HTTP p50/p99 (goal p99 ≤ 50 ms),
// hijacks — answers that did not come from the victim's server (goal 0),
// the daemon's RSS before, at its peak and after (bound:
// SWITCHYARD_SOAK_RSS_MB, default 96 MiB, about four times an idle
// daemon's), its open files and goroutines before and after
// (goal: back to where they started, within the settle time). A missed
// goal fails the test; the figures are written either way.
//
// Knobs (environment): SWITCHYARD_SOAK_DURATION (load per network, default
// 60s), SWITCHYARD_SOAK_ICC ("true,false"), SWITCHYARD_SOAK_SETTLE (longest
// wait for the daemon to return to its start, default 100s),
// SWITCHYARD_SOAK_PPS (MAC flood frames per second, default 5000),
// SWITCHYARD_SOAK_CONNS (connections per burst, default 2000),
// SWITCHYARD_SOAK_ATTACK=0 (the control: the victim's loops with no
// attack, which must meet every goal). The whole
// run is refused if it could last more than 10 minutes.
//
// Traffic goes only to loopback inside the test's own namespace and to
// addresses inside the namespaces the test created; the daemon's
// namespace has no interface but loopback and the network's TAPs.
package soak
