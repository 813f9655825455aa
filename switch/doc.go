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
//	   isolation (icc=false), egress MTU,        │
//	   offload fix-ups (checksum, segmentation) ◄┘
//	   │
//	   ▼
//	Port.Write(Frame)   synchronous; the port copies if it queues
//
// Forwarding runs on the goroutine of the ingress port's reader: there is no
// goroutine per frame and no queue inside the switch. A port whose Write
// would block (a netstack, a tunnel) queues internally and counts its own
// drops. The only goroutine the switch owns is the janitor that ages the
// forwarding table.
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
// Switch.mu serialises Attach and Detach. The forwarding table has its own
// RWMutex (fdb.mu); it is taken after Switch.mu when both are held. The
// forwarding path takes only fdb.mu, for reading, and never allocates in the
// steady state (known source, known destination).
package vswitch
