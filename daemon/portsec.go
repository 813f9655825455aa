package daemon

import (
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/daemon/store"
	"github.com/switchyard-net/switchyard/gateway"
	vswitch "github.com/switchyard-net/switchyard/switch"
)

// Port security (issue 11): the daemon knows every endpoint's MAC and
// addresses, and hands them to the switch (the port's binding: frames from
// any other source are dropped) and to the gateway (pinned neighbour
// entries, never learned from what a container says) at connect, at
// restore, and when the DHCP server leases an address to a client behind
// a MAC-spoofing endpoint.

// endpointBinding is what rec's port may send from. slaac, if valid, is
// the /64 the network's gateway advertises for SLAAC: the address the
// kernel forms in it from the endpoint's MAC (modified EUI-64, its
// default) is the endpoint's too.
func endpointBinding(rec store.Endpoint, slaac netip.Prefix) *vswitch.Binding {
	b := &vswitch.Binding{
		MAC:         rec.MAC,
		Addrs:       rec.Addrs(),
		Allowed:     slices.Clone(rec.AllowedAddresses),
		MACSpoofing: rec.MACSpoofing,
	}
	if slaac.IsValid() && slaac.Bits() == 64 {
		b.Addrs = append(b.Addrs, slaacAddr(slaac, rec.MAC))
	}
	return b
}

// slaacAddr is the address SLAAC forms in /64 prefix p for mac with a
// modified EUI-64 interface identifier (RFC 4291 appendix A).
func slaacAddr(p netip.Prefix, mac vswitch.MAC) netip.Addr {
	a := p.Masked().Addr().As16()
	copy(a[8:], []byte{mac[0] ^ 0x02, mac[1], mac[2], 0xff, 0xfe, mac[3], mac[4], mac[5]})
	return netip.AddrFrom16(a)
}

// parseAllowedAddresses parses EndpointCreate.AllowedAddresses: prefixes
// ("10.1.0.0/24", "fd00::/64") or single addresses. Every bad entry is
// named in the error.
func parseAllowedAddresses(in []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	var errs fieldErrs
	for _, s := range in {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil || a.Zone() != "" {
				errs.add("allowed_addresses", s, "not an address or prefix", "an address or prefix like 10.1.0.0/24 or fd00::/64")
				continue
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		out = append(out, p.Masked())
	}
	if err := api.Validate(api.EndpointCreate{}, errs); err != nil {
		return nil, err
	}
	return out, nil
}

// formatPrefixes is the API's view of prefixes.
func formatPrefixes(ps []netip.Prefix) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}

// leaseBinder extends the binding of a MAC-spoofing endpoint with the
// addresses the DHCP server leases to clients behind it (VMs with MACs of
// their own), and pins their neighbour entries, until the lease ends.
// Endpoints' own addresses are in their bindings from the start.
//
// It is made before the network's switch and gateway (the DHCP server is
// part of the gateway's configuration) and started once they are up.
type leaseBinder struct {
	log *zap.Logger
	on  atomic.Pointer[binderTargets]

	mu     sync.Mutex
	leases map[netip.Addr]*vswitch.Link // dynamic lease → the port it was added to
}

type binderTargets struct {
	sw *vswitch.Switch
	gw *gateway.Gateway
}

func newLeaseBinder(log *zap.Logger) *leaseBinder {
	return &leaseBinder{log: log, leases: map[netip.Addr]*vswitch.Link{}}
}

// start makes b act on the network's switch and gateway.
func (b *leaseBinder) start(sw *vswitch.Switch, gw *gateway.Gateway) {
	b.on.Store(&binderTargets{sw: sw, gw: gw})
}

// leased is called when mac holds a dynamic lease of addr. It runs on the
// DHCP server's goroutine, with no daemon lock held.
func (b *leaseBinder) leased(mac vswitch.MAC, addr netip.Addr) {
	on := b.on.Load()
	if on == nil {
		return
	}
	link := on.sw.LinkOf(mac)
	if link == nil {
		return
	}
	b.mu.Lock() // around the read, change and write of the binding
	defer b.mu.Unlock()
	bind := link.Binding()
	if bind == nil || !bind.MACSpoofing {
		return // not a port that may send from that MAC
	}
	if !slices.Contains(bind.Addrs, addr) {
		bind.Addrs = append(bind.Addrs, addr)
		if err := link.SetBinding(bind); err != nil {
			b.log.Warn("binding a leased address", zap.String("port", link.Name()), zap.Stringer("addr", addr), zap.Error(err))
			return
		}
	}
	b.leases[addr] = link
	if err := on.gw.PinNeighbor(addr, mac); err != nil {
		b.log.Warn("pinning a leased address", zap.Stringer("addr", addr), zap.Error(err))
	}
}

// released is called when the dynamic lease of addr ends.
func (b *leaseBinder) released(addr netip.Addr) {
	b.mu.Lock()
	defer b.mu.Unlock()
	link := b.leases[addr]
	if link == nil {
		return
	}
	delete(b.leases, addr)
	if bind := link.Binding(); bind != nil && !link.Detached() {
		bind.Addrs = slices.DeleteFunc(bind.Addrs, func(a netip.Addr) bool { return a == addr })
		if err := link.SetBinding(bind); err != nil {
			b.log.Warn("unbinding a released address", zap.String("port", link.Name()), zap.Error(err))
		}
	}
	if on := b.on.Load(); on != nil {
		on.gw.UnpinNeighbor(addr)
	}
}
