// Package dhcp6 is the stateful DHCPv6 server of a Switchyard network
// (RFC 8415): it runs on the network's gateway and hands each client the
// IPv6 address the daemon's IPAM reserved for its MAC, chiefly for VMs on
// `--tap-only` TAPs, whose guests configure IPv6 with DHCPv6 when the
// gateway's Router Advertisements carry the M (managed) flag.
//
// Like the DHCPv4 server (package dhcp) it works on whole Ethernet
// frames: the gateway shows it every frame written to the gateway port,
// before the netstack, and it answers with frames it puts on the switch
// itself, from the gateway's link-local address.
//
//	switch ──► gateway intercept (switch's goroutine)
//	             │ HandleFrame(f)
//	             ├─ not IPv6 UDP to [ff02::1:2]:547 ─► false, nothing allocated
//	             └─ client message ─► true (consumed)
//	                  │ checks: lengths, UDP checksum, link-local source,
//	                  │ unicast source MAC
//	                  ▼
//	                parse (in place, linear in the message, no allocation)
//	                  │ identifiers present or absent as the type wants;
//	                  │ a Server Identifier must be ours
//	                  ▼
//	                Reservations.Reserved(frame's source MAC)
//	                  │
//	                  ▼  Server.mu for the lease table only
//	                reply (ADVERTISE or REPLY) ──► Config.Send ──► switch
//
// # Which address a client gets
//
// The client is known by the Ethernet source of its frames: the MAC that
// port security binds to the endpoint, so no other port can send from it.
// The MAC inside a DUID-LL or DUID-LLT is not used: a client may make its
// DUID from another of its interfaces (dhclient keeps one DUID for all),
// and anyone can write any MAC into a DUID.
//
// An endpoint's MAC (`connect --mac`, `--tap-only`) has a static
// reservation, its IPAM address; a MAC without one is answered
// NoAddrsAvail (to SOLICIT and REQUEST) or NoBinding, and what it claims
// to hold in RENEW and REBIND is withdrawn with lifetimes of 0: the server
// is authoritative for its link and hands out no dynamic addresses (hosts
// with no reservation use SLAAC, which the Router Advertisements still
// allow).
//
// # Protocol
//
// SOLICIT gets an ADVERTISE (preference 255: the client need not wait
// for other servers), or with Rapid Commit a REPLY that binds;
// REQUEST, RENEW and REBIND a REPLY with the reserved address in the
// client's IA_NA (one address per client: further IA_NAs get
// NoAddrsAvail; other addresses the client lists are withdrawn);
// CONFIRM a REPLY that says whether its addresses are on the link;
// RELEASE and DECLINE a REPLY with Success, and the lease leaves the
// table (the reservation stays: it is the endpoint's);
// INFORMATION-REQUEST a REPLY with the configuration only. Every
// ADVERTISE and REPLY that carries addresses or configuration carries the
// DNS servers (option 23) and the domain search list (option 24), asked
// for or not. Relayed messages are not served; IA_TA and IA_PD are
// ignored.
//
// # Untrusted input
//
// Every field comes from a container. The parser never panics (fuzzed
// with a seed corpus in testdata), refuses what overruns or repeats an
// identifier, and bounds its work by the message's length; it keeps at
// most MaxIAs IA_NAs with MaxIAAddrs addresses each, so a reply is
// bounded too. The lease table holds only MACs with a reservation.
//
// # Goroutines and locks
//
// The Server owns no goroutine. HandleFrame runs on the caller's
// goroutine and may run on several at once. Server.mu guards the lease
// table and is never held while Reservations or Config.Send is called.
// Expired leases are forgotten by Sweep, which the gateway's janitor
// calls.
package dhcp6
