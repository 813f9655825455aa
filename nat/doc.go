// Package nat is the userspace netfilter of a network's gateway: the
// iptables rules Docker writes for one bridge network, held as data, and a
// connection-tracking table that applies them to packets.
//
// # Where it sits
//
//	switch ──► frame to the gateway MAC ──► gateway strips Ethernet
//	                                            │ IP packet (L3 slice)
//	                                            ▼
//	                                 Table.Process(pkt, now)
//	                   ┌────────────────────────┼────────────────────────┐
//	                   ▼                        ▼                        ▼
//	            Translated                    Pass                     Drop
//	   pkt rewritten in place:      not ours: on to the gateway's   filtered (icc=false),
//	   gateway re-emits it toward   netstack (ARP, ping, DNS,       table full, ports
//	   the new destination's MAC    egress flows on host sockets,   exhausted or over share, invalid
//	                                which asks AllowEgress first)   TCP flags: counted
//
// Inside Process:
//
//	parse IPv4/IPv6 + TCP/UDP/ICMP (header views, no copy)
//	   │ destination not the gateway or a host address ──► Pass (lock-free)
//	   ├─ ICMP error quoting a tracked flow (RELATED) ──► rewrite outer and quoted headers
//	   ├─ conntrack hit (ESTABLISHED) ──► TCP/UDP/ICMP state, timeout ──► rewrite
//	   └─ miss: DOCKER chain (published ports) ──► FORWARD filter (icc) ──►
//	            new entry: DNAT to the container, MASQUERADE to the gateway
//	            address with a source port from its responder's pool
//	            (Config.MasqPorts, a share per source) ──► rewrite
//
// The rules it models are Docker's for a network with the userland proxy
// off (hairpin NAT done by the kernel): a DNAT rule per published port in
// the DOCKER chain, the hairpin MASQUERADE, `-i net -o net -j DROP` for
// icc=false (which, as in Docker, also drops a container's flow to its own
// published port), and for --internal networks no DNAT at all and a rule that
// refuses egress. Rules renders them the way iptables-save prints them;
// Entries renders the connection table the way `conntrack -L` does.
//
// Hairpin NAT: container A connects to a published port (the gateway
// address or one of the host's addresses, port hostPort). The packet comes
// to the gateway MAC; Process rewrites its destination to the container B
// that publishes the port, and its source to the gateway address and a
// masquerade port, so that B's replies come back through the gateway too,
// where Process rewrites them back: A sees replies from the address it
// dialled. This works for A == B (a container reaching its own published
// port) and A != B. Docker masquerades only the A == B case in iptables and
// relies on docker-proxy or br_netfilter for the rest; here every hairpinned
// flow is masqueraded, and Rules says so.
//
// # Why not gVisor's stack.IPTables
//
// The gateway's netstack runs in promiscuous mode so that it terminates
// every flow addressed to a non-local address (that is how egress works:
// each flow is re-originated on a host socket). A packet DNATed inside that
// netstack would therefore be delivered locally, to the egress machinery,
// instead of being forwarded back onto the switch to the container. The
// translation has to happen in front of the netstack, on the raw packet,
// which is what this package does.
//
// # Packet logic only
//
// No sockets, no goroutines, no logging, no clock: the caller passes now (a
// nanosecond timestamp from any clock that does not jump backwards, the
// same one on every call) and calls Sweep from its janitor. Drops and
// translations are counted (Stats), never logged.
//
// # Buffers
//
// Process and ProcessPartial take one IP packet, starting at the IP header,
// in a buffer the caller owns. They read it in place and, only when they
// return Translated, rewrite addresses, ports, echo identifiers and
// checksums in place; the length never changes, bytes after the IP total
// length (Ethernet padding) are never touched, and the slice is not kept
// after the call returns. For every other verdict the packet is unchanged.
//
// Checksums are updated incrementally (RFC 1624): a packet whose checksums
// were valid before has valid checksums after, and a corrupt one stays
// corrupt. ProcessPartial is for packets whose transport checksum field
// holds only the pseudo-header sum (virtio-net NEEDS_CSUM, as TAP devices
// with checksum offload deliver them): only the address part is adjusted,
// and the packet may be a segmentation-offload superframe.
//
// # Locks
//
// A Table has one mutex, Table.mu, over the connection table, the eviction
// list, the expiry heap and each entry's state. It is held only for the map lookup and the
// state update; parsing and rewriting run outside it. The rule set (port
// mappings, host addresses) is an immutable value behind an atomic pointer,
// read without the lock to let foreign packets Pass early, and replaced
// only with Table.mu held, so that a new entry is always created against
// the rule set its removal would be judged by. There is no other lock, so
// there is no lock order to keep. Methods whose name ends in Locked expect
// Table.mu held.
//
// # Allocation
//
// A packet of an existing flow, and a packet that passes, allocates
// nothing (TestEstablishedDoesNotAllocate). Creating an entry allocates it,
// unless a removed one is kept for reuse: a flood of new flows that evict
// each other allocates nothing (TestMasqFloodDoesNotAllocate).
//
// # Masquerade ports
//
// Each responder (published port target) has its own pool of the range
// Config.MasqPorts: a two-level bitmap (portset.go), so that taking and
// freeing a port cost the same in an empty range and a full one
// (BenchmarkPortSet, BenchmarkMasqFlood). The open flows of one source
// address may hold at most Config.MasqPortsPerSource of a pool's ports
// (a quarter by default): a container that floods a published port with
// new flows leaves the rest to the others. The share is per address, so
// it holds against spoofed source addresses only where the switch's port
// security stops them. When a pool is full, a closed TCP connection, then
// the oldest flow not yet assured, gives its port up, in O(1) (per-pool
// lists, portalloc.go); refusals are counted by reason
// (Stats.PortsOverShare, Stats.PortsExhausted).
//
// # Expiry and eviction
//
// Entries expire after the idle timeout of their protocol and state
// (Linux's defaults, Config.Timeouts). Sweep, called by the gateway's
// janitor, removes expired entries at the cost of those that are due (an
// expiry heap, not a pass over the table); a packet that finds an expired
// entry removes it too. When the table is full (Config.MaxEntries), a new
// flow evicts the oldest entry that is not assured or whose TCP connection
// has closed, or is refused.
//
// # Limits
//
// Fragments are passed untranslated (Stats.Fragments): Linux reassembles
// before conntrack, and a gateway that wants hairpin NAT for fragmented
// datagrams must do the same in front of Process. IPv6 packets with a
// routing header are passed too. TCP tracking follows the states of
// Linux's nf_conntrack_proto_tcp but not its sequence-number window
// checks. TTL and hop limit are left to the gateway, which routes.
package nat
