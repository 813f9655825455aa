package gateway

import (
	"fmt"
	"net/netip"
	"sync"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/switch/stackport"
)

// The gateway's neighbours: which MAC each address of the network is at.
//
// Two tables hold them, and both must agree. The netstack's neighbour
// cache serves what the stack sends (published-port connections, DNS and
// ICMP replies); the gateway's own map serves what it writes onto the
// switch itself (hairpin NAT, ICMP errors). An endpoint's entry is pinned
// from its binding (PinNeighbor, called by the daemon from IPAM and DHCP
// leases): a static entry in the netstack, which ARP and NDP never change
// (gVisor ignores probes and advertisements for static entries), and a
// pinned entry in the map, which the source addresses of packets never
// change. Learning from traffic remains only for addresses nobody pinned
// (peers behind a tunnel), so one spoofed ARP request or IP packet cannot
// redirect an endpoint's published ports.

// maxLearnedNeighbors bounds the learned entries, so spoofed sources
// cannot grow the map without limit.
const maxLearnedNeighbors = 1 << 16

// Lock order: pinMu, then the netstack's locks, then mu. mu is never held
// while calling into the netstack: the netstack calls back into learn
// (neighbor's resolution callback) with its own locks held.
type neighborTable struct {
	pinMu sync.Mutex // serialises PinNeighbor and UnpinNeighbor

	mu      sync.RWMutex
	pinned  map[netip.Addr]vswitch.MAC // from bindings: never changed by traffic
	learned map[netip.Addr]vswitch.MAC // from traffic, for addresses not pinned
}

func newNeighbors() *neighborTable {
	return &neighborTable{pinned: map[netip.Addr]vswitch.MAC{}, learned: map[netip.Addr]vswitch.MAC{}}
}

// PinNeighbor makes mac the neighbour entry of addr, an endpoint's address
// of either family, in the netstack and for hairpin NAT, until
// UnpinNeighbor. Neither ARP, neighbour discovery nor the source address
// of a packet changes a pinned entry. Pinning an address again moves it
// to the new MAC.
func (g *Gateway) PinNeighbor(addr netip.Addr, mac vswitch.MAC) error {
	addr = addr.Unmap()
	if !addr.IsValid() || mac.IsZero() || mac.IsMulticast() {
		return fmt.Errorf("pin neighbour %v at %s: want an address and a unicast MAC", addr, mac)
	}
	t := g.neighbors
	t.pinMu.Lock()
	defer t.pinMu.Unlock()
	if err := g.stack.AddStaticNeighbor(NICID, stackport.Protocol(addr), stackport.Addr(addr), tcpip.LinkAddress(mac[:])); err != nil {
		return fmt.Errorf("pin neighbour %s at %s: %s", addr, mac, err)
	}
	t.mu.Lock()
	t.pinned[addr] = mac
	delete(t.learned, addr)
	t.mu.Unlock()
	return nil
}

// UnpinNeighbor forgets addr's pinned entry (an endpoint left, or its
// lease ended). Unpinning an address that is not pinned does nothing.
func (g *Gateway) UnpinNeighbor(addr netip.Addr) {
	addr = addr.Unmap()
	t := g.neighbors
	t.pinMu.Lock()
	defer t.pinMu.Unlock()
	t.mu.Lock()
	_, ok := t.pinned[addr]
	delete(t.pinned, addr)
	t.mu.Unlock()
	if !ok {
		return
	}
	_ = g.stack.RemoveNeighbor(NICID, stackport.Protocol(addr), stackport.Addr(addr)) // absent: nothing to do
}

// learn remembers which MAC an address of the network sent from, unless
// the address is pinned.
func (g *Gateway) learn(ip netip.Addr, mac vswitch.MAC) {
	if !g.inSubnet(ip) {
		return
	}
	t := g.neighbors
	t.mu.RLock()
	_, pinned := t.pinned[ip]
	known, ok := t.learned[ip]
	t.mu.RUnlock()
	if pinned || (ok && known == mac) {
		return
	}
	t.mu.Lock()
	if _, pinned := t.pinned[ip]; !pinned && len(t.learned) < maxLearnedNeighbors {
		t.learned[ip] = mac
	}
	t.mu.Unlock()
}

// neighbor returns the MAC of an address of the network. If it is neither
// pinned nor learned it starts resolving it (ARP, neighbor discovery)
// through the netstack and reports false; the answer is learned for next
// time.
func (g *Gateway) neighbor(ip netip.Addr) (vswitch.MAC, bool) {
	t := g.neighbors
	t.mu.RLock()
	mac, ok := t.pinned[ip]
	if !ok {
		mac, ok = t.learned[ip]
	}
	t.mu.RUnlock()
	if ok || !g.inSubnet(ip) {
		return mac, ok
	}
	g.stack.GetLinkAddress(NICID, stackport.Addr(ip), stackport.Addr(g.addrFor(ip)), stackport.Protocol(ip),
		func(r stack.LinkResolutionResult) {
			if r.Err == nil && len(r.LinkAddress) == 6 {
				g.learn(ip, vswitch.MAC([]byte(r.LinkAddress)))
			}
		})
	return vswitch.MAC{}, false
}
