// Package dns is the embedded DNS server of a Switchyard network: Docker's
// 127.0.0.11, served instead at the gateway address on the gateway's
// netstack, so containers use their gateway as their resolver.
//
//	container ── UDP/TCP to gateway:53 ──► gateway netstack (gonet listeners)
//	    UDP: one reader goroutine ──────────────┐
//	    TCP: one acceptor; one goroutine per     │
//	         connection (≤ MaxTCPConns, idle     │
//	         timeout, pipelined queries)         ▼
//	                         handle: parse ─► name table (SetNames; one atomic pointer)
//	                           │  a network name: answered at once, never forwarded
//	                           ▼  anything else
//	                  bounded queue (QueueLen) ──full──► SERVFAIL at once (Overflow)
//	                           ▼
//	                  Workers goroutines ─► upstreams in order, on host sockets (Dial)
//	                      UDP first; TC ─► the same query again over TCP;
//	                      TCP clients ─► TCP; Timeout per attempt, then the next;
//	                      all failed ─► SERVFAIL
//
// Names. SetNames installs the network's table (endpoint names and their
// aliases). A name resolves as given, with or without a trailing dot, and
// as NAME.Domain; case never matters. For a name in the table:
//
//   - A and AAAA are answered from the table with a TTL of LocalTTL. A name
//     with no address of the asked family gets NOERROR with no answers:
//     it exists, and in-network names must never reach the upstreams.
//   - Any other type (MX, TXT, SRV, …) gets NOERROR with no answers, for the
//     same reason (an empty MX answer is also RFC 5321's "implicit MX").
//   - PTR queries for the table's addresses are answered with every name
//     of the address, as NAME.Domain. (qualified) when there is a Domain.
//
// Everything else goes to the upstreams, and their answer is returned as is,
// with the client's query ID (each upstream attempt uses a fresh random ID
// on a fresh socket, and replies whose ID or question do not match are
// ignored). An answer larger than the client can take over UDP (512 bytes,
// or its EDNS0 size) is cut to fit with TC set, so the client retries over
// TCP. Without upstreams (an --internal network) such queries are REFUSED.
//
// No goroutine is started per query: the UDP reader answers local names
// inline and hands the rest to the workers; a full queue is answered
// SERVFAIL at once and counted. Messages that do not parse, and responses,
// are counted and dropped (UDP) or end their connection (TCP); a query
// that parses but has not exactly one question gets FORMERR, and an opcode
// other than QUERY gets NOTIMP. Counters, never log lines, describe the
// data path: see Stats.
package dns
