package daemon

import (
	"net/netip"
	"testing"

	"github.com/switchyard-net/switchyard/daemon/ipam"
	vswitch "github.com/switchyard-net/switchyard/switch"
)

// The DHCP allocator: an endpoint's MAC gets the endpoint's address;
// another MAC the address it asks for if free, else the lowest free one,
// the same one while it holds it, and back to the pool on release.
func TestDHCPAllocator(t *testing.T) {
	p, err := ipam.New(ipam.Config{Subnet: netip.MustParsePrefix("10.9.0.0/29")})
	if err != nil {
		t.Fatal(err)
	}
	a := newAddrs(p)
	alloc := dhcpAllocator{addrs: a}
	ep := vswitch.MAC{2, 0x42, 10, 9, 0, 2}
	addr, _ := a.Allocate("web")
	a.Bind(ep, addr)

	if got, err := alloc.Lease(ep, "web", netip.MustParseAddr("10.9.0.6")); err != nil || got != addr {
		t.Errorf("endpoint MAC leased %v, %v; want its own %s", got, err, addr)
	}
	vm := vswitch.MAC{0x52, 0x54, 0, 0, 0, 1}
	got, err := alloc.Lease(vm, "", netip.Addr{})
	if err != nil || got != netip.MustParseAddr("10.9.0.3") {
		t.Fatalf("new MAC leased %v, %v; want 10.9.0.3", got, err)
	}
	if again, _ := alloc.Lease(vm, "", netip.MustParseAddr("10.9.0.5")); again != got {
		t.Errorf("same MAC leased %s then %s", got, again)
	}
	vm2 := vswitch.MAC{0x52, 0x54, 0, 0, 0, 2}
	if got, _ := alloc.Lease(vm2, "", netip.MustParseAddr("10.9.0.3")); got != netip.MustParseAddr("10.9.0.4") {
		t.Errorf("asking for a taken address gave %s, want the lowest free 10.9.0.4", got)
	}
	vm3 := vswitch.MAC{0x52, 0x54, 0, 0, 0, 3}
	if got, _ := alloc.Lease(vm3, "", netip.MustParseAddr("10.9.0.6")); got != netip.MustParseAddr("10.9.0.6") {
		t.Errorf("asking for a free address gave %s, want 10.9.0.6", got)
	}
	if _, err := alloc.Lease(vswitch.MAC{0x52, 0x54, 0, 0, 0, 4}, "", netip.Addr{}); err != nil {
		t.Fatalf("10.9.0.5 is still free: %v", err)
	}
	if _, err := alloc.Lease(vswitch.MAC{0x52, 0x54, 0, 0, 0, 5}, "", netip.Addr{}); err == nil {
		t.Error("a full pool leased an address")
	}

	// Release: an endpoint keeps its address; a dynamic lease frees it.
	alloc.Release(ep, addr)
	if owner, _ := p.Owner(addr); owner != "web" {
		t.Errorf("releasing the endpoint's lease took its address away (owner %q)", owner)
	}
	alloc.Release(vm, netip.MustParseAddr("10.9.0.4")) // not vm's: harmless
	if owner, _ := p.Owner(netip.MustParseAddr("10.9.0.4")); owner == "" {
		t.Error("releasing an address the MAC does not hold freed it")
	}
	alloc.Release(vm, got)
	if next, _ := a.Allocate("next"); next != got {
		t.Errorf("after release the pool gave %s, want %s back", next, got)
	}
}
