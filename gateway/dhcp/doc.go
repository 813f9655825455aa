// Package dhcp is the DHCPv4 server of a Switchyard network: it runs on the
// network's gateway and hands addresses to VMs on TAPs (QEMU -netdev tap)
// and to anything else that configures itself with DHCP.
//
// It works on whole Ethernet frames, because its clients have no address
// yet and talk in broadcast: the gateway shows it every frame written to
// the gateway port, before the netstack, and it answers with frames it puts
// on the switch itself.
//
//	switch ──► gateway intercept (switch's goroutine)
//	             │ HandleFrame(f)
//	             ├─ not UDP to port 67 for the gateway ─► false, nothing allocated
//	             └─ DHCP client message ─► true (consumed)
//	                  │ checks: IPv4 + UDP checksums, BOOTREQUEST, Ethernet
//	                  │ chaddr = frame source, no relay (giaddr = 0)
//	                  ▼
//	                decode (insomniacslk/dhcp/dhcpv4)
//	                  │
//	                  ▼  Server.mu held
//	                lease table ◄──► Allocator (the network's IPAM)
//	                  │  Server.mu released
//	                  ▼
//	                reply frame (Ethernet/IPv4/UDP 67→68, checksums)
//	                  │
//	                  ▼
//	                Config.Send ──► switch, as the gateway
//
// # Protocol
//
// RFC 2131 as a server that is authoritative for its subnet: DISCOVER is
// answered with an OFFER whose address is reserved for OfferHold; REQUEST in
// each of the client's states (selecting, init-reboot, renewing, rebinding)
// with an ACK or a NAK; a REQUEST naming another server is ignored (the
// client chose that server) and frees what was offered; RELEASE returns the
// address; DECLINE puts the address aside for DeclineHold, so the client is
// given another one next time; INFORM gets an ACK with options only.
// Relayed messages (giaddr set) are not served: they are dropped and
// counted.
//
// # Goroutines and locks
//
// The Server owns no goroutine. HandleFrame runs on the caller's goroutine
// and may run on several at once. Server.mu guards the lease table; the
// Allocator is called with it held (lock order: Server.mu, then the
// Allocator's own locks), and it must not call back into the Server.
// Config.Send is never called with Server.mu held. Expired leases are
// returned by Sweep, which the gateway's janitor calls.
package dhcp
