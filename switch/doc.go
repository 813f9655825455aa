// Package vswitch is Switchyard's userspace Ethernet switch: one Switch per
// network, ports attached to it, a learning forwarding table, flooding,
// isolation and per-port counters. It knows nothing about TAP devices,
// netstacks or tunnels; those are Ports defined elsewhere.
//
// The folder is named switch, which is a Go keyword, so the package is
// vswitch and is always imported under that name.
//
// # Flow of a frame
//
//	port reader goroutine (owned by the Port)
//	   │  Ingress.Receive(Frame)         frame buffer owned by the port
//	   ▼
//	Link.Receive ── malformed / oversize / spoofed source ──► RX drop counter
//	   │              port security (portsec.go): MAC, IP, ARP, ND, RA
//	   │
//	   ├─ learn source MAC → FDB (port over its MAC limit: drop, counted;
//	   │                         table full: forwarded, not learned)
//	   │
//	   ├─ destination known ──► one egress Link ─┐
//	   └─ broadcast, multicast, unknown ──► every other Link (flood)
//	                                             │
//	   isolation (icc=false), egress MTU         │
//	   (too big: ICMP "fragmentation needed" to  │
//	   the sender, pmtu.go), offload fix-ups     │
//	   (checksum, segmentation)                 ◄┘
//	   │
//	   ▼
//	Port.Write(Frame)   synchronous; the port copies if it queues
//
// Forwarding runs on the goroutine of the ingress port's reader: there is no
// goroutine per frame and no queue inside the switch. A port whose Write
// would block (a netstack, a tunnel) queues internally and counts its own
// drops. The only goroutine the switch owns is the janitor, which once a
// second refreshes the coarse clock the forwarding path reads, publishes
// newly learned MACs and ages out old ones.
//
// # Buffer ownership
//
// A Frame is a view of a buffer. Whoever calls Receive or Write keeps
// ownership of the buffer; the callee must not retain Frame.Data after it
// returns. The switch may modify the bytes in place while it holds the frame
// (it completes partial checksums before handing a frame to a port that
// cannot take offloaded frames).
//
// # Locks
//
// The forwarding path takes no lock in the steady state (known source,
// known destination) and never allocates. The forwarding table (fdb.go) is
// an immutable map published through an atomic pointer: readers load it
// and look up without locking. MACs learned since the last publication wait
// in a small pending map under fdb.mu, which only writers and lookups of
// those new MACs take; the janitor folds them into a fresh snapshot within
// a tick, or sooner once there are enough of them. An entry's port and
// last-seen time are atomics, so a move or a refresh copies nothing. The
// set of attached links is likewise an immutable slice behind an atomic
// pointer, which flooding reads without a lock.
//
// Switch.mu serialises Attach, Detach and Close, which replace that slice.
// It is never held while fdb.mu is taken: Detach releases it before it
// flushes the detached port's MACs, so the two locks have no order to keep.
package vswitch
