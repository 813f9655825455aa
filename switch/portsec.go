package vswitch

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// Port security, in the manner of OpenStack/OVS port security and libvirt's
// clean-traffic filter: a port with a Binding may send only from its own
// MAC and addresses, and its ARP and neighbour discovery may speak only for
// them.
//
//	frame from a bound port
//	   │
//	   ├─ source MAC ≠ Binding.MAC (unless MACSpoofing) ────────► DropSpoofed
//	   ├─ EtherType not IPv4, ARP or IPv6 (VLAN tags included) ──► DropEtherType
//	   ├─ IPv4/IPv6 source not bound ────────────────────────────► DropSpoofedIP
//	   │     (0.0.0.0 only for DHCP client→server; :: only for
//	   │      DAD neighbour solicitations, MLD reports and router
//	   │      solicitations)
//	   ├─ ARP sender MAC ≠ frame source, sender IP not bound ────► DropSpoofedARP
//	   ├─ IPv6 header chain cut short: a first fragment ────────► DropRAGuard
//	   │     (RFC 7113), an unfragmented packet ─────────────────► DropMalformed
//	   ├─ NS/NA/RS link-layer option (source or target) ≠ frame
//	   │     source, NA target (or DAD target) not bound ─────────► DropSpoofedND
//	   └─ router advertisement or redirect, behind any number
//	         of extension headers ───────────────────────────────► DropRAGuard
//
// The binding is read through an atomic pointer: SetBinding publishes a new
// immutable snapshot, the forwarding path never locks. The checks read the
// headers in place (gVisor's header package) and never allocate.

// DefaultPortMACs is how many MACs a bound port may have in the forwarding
// table at once when AttachOptions.MaxMACs is zero. Without MACSpoofing a
// bound port sends from its one MAC only, which is a static entry and not
// counted; the limit matters for MACSpoofing ports.
const DefaultPortMACs = 8

// ErrDetached is returned by SetBinding on a detached link.
var ErrDetached = errors.New("port detached")

// Binding is what an endpoint port may send from. The zero Binding is not
// valid: MAC is required.
type Binding struct {
	// MAC is the endpoint's Ethernet address: the only source MAC
	// accepted from the port (unless MACSpoofing), and a static entry of
	// the forwarding table that is never aged out nor moved by frames from
	// another port.
	MAC MAC
	// Addrs are the endpoint's own addresses, of either family. The IPv6
	// link-local address derived from MAC (modified EUI-64, as the kernel
	// forms it) is allowed as well, as OpenStack allows it.
	Addrs []netip.Addr
	// Allowed are further source prefixes the endpoint may send from
	// (routers, VMs with several addresses).
	Allowed []netip.Prefix
	// MACSpoofing lets the port send from any unicast MAC, each learned up
	// to the port's limit (AttachOptions.MaxMACs). The IP, ARP and
	// neighbour discovery checks still apply, ARP and ND against the
	// frame's own source MAC.
	MACSpoofing bool
}

// binding is a Binding prepared for the forwarding path. It is immutable
// once published.
type binding struct {
	mac         MAC
	macSpoofing bool
	addrs       []netip.Addr // Addrs, unmapped, plus the EUI-64 link-local
	allowed     []netip.Prefix
	pub         Binding // as given, for Link.Binding
}

// compileBinding checks b and prepares it for the forwarding path.
func compileBinding(b Binding) (*binding, error) {
	if b.MAC.IsZero() || b.MAC.IsMulticast() {
		return nil, fmt.Errorf("binding MAC %s: want a unicast, non-zero MAC", b.MAC)
	}
	c := &binding{mac: b.MAC, macSpoofing: b.MACSpoofing}
	for _, a := range b.Addrs {
		if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() {
			return nil, fmt.Errorf("binding address %v: want a unicast address", a)
		}
		c.addrs = append(c.addrs, a.Unmap())
	}
	c.addrs = append(c.addrs, linkLocalEUI64(b.MAC))
	for _, p := range b.Allowed {
		if !p.IsValid() {
			return nil, fmt.Errorf("binding allowed prefix %v: want an address/length like 10.1.0.0/24", p)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		c.allowed = append(c.allowed, p.Masked())
	}
	c.pub = Binding{
		MAC: b.MAC, Addrs: slices.Clone(b.Addrs), Allowed: slices.Clone(b.Allowed), MACSpoofing: b.MACSpoofing,
	}
	return c, nil
}

// linkLocalEUI64 returns fe80::/64 with the modified EUI-64 interface
// identifier of mac (RFC 4291 appendix A).
func linkLocalEUI64(mac MAC) netip.Addr {
	return netip.AddrFrom16([16]byte{
		0xfe, 0x80, 0, 0, 0, 0, 0, 0,
		mac[0] ^ 0x02, mac[1], mac[2], 0xff, 0xfe, mac[3], mac[4], mac[5],
	})
}

// permits reports whether the endpoint may use ip as its own address.
func (b *binding) permits(ip netip.Addr) bool {
	for _, a := range b.addrs {
		if a == ip {
			return true
		}
	}
	for _, p := range b.allowed {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// SetBinding installs b as the port's binding, replacing any earlier one,
// and makes b.MAC a static entry of the forwarding table (the previous
// binding's MAC stops being one). A nil b removes the binding: the port may
// send anything again. It is safe to call while frames flow (on a DHCP
// lease, for instance); frames already being forwarded finish under the old
// binding.
func (l *Link) SetBinding(b *Binding) error {
	var c *binding
	if b != nil {
		var err error
		if c, err = compileBinding(*b); err != nil {
			return fmt.Errorf("port %s: %w", l.info.Name, err)
		}
	}
	l.bindMu.Lock()
	defer l.bindMu.Unlock()
	if l.detached.Load() {
		return fmt.Errorf("port %s: %w", l.info.Name, ErrDetached)
	}
	old := l.binding.Load()
	fdb := l.sw.fdb
	if c != nil && (old == nil || old.mac != c.mac) {
		if err := fdb.pin(c.mac, l, l.sw.now.Load()); err != nil {
			return fmt.Errorf("port %s: %w", l.info.Name, err)
		}
	}
	l.binding.Store(c)
	if old != nil && (c == nil || old.mac != c.mac) {
		fdb.unpin(old.mac, l)
	}
	return nil
}

// Binding returns a copy of the port's binding, or nil if it has none.
func (l *Link) Binding() *Binding {
	c := l.binding.Load()
	if c == nil {
		return nil
	}
	b := c.pub
	b.Addrs = slices.Clone(b.Addrs)
	b.Allowed = slices.Clone(b.Allowed)
	return &b
}
