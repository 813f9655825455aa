package ipam_test

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/switchyard-net/switchyard/daemon/ipam"
)

func TestAllocateLowestFirst(t *testing.T) {
	tests := []struct {
		name string
		cfg  ipam.Config
		want []string
	}{
		{"after the default gateway", ipam.Config{Subnet: prefix("10.240.0.0/24")},
			[]string{"10.240.0.2", "10.240.0.3", "10.240.0.4"}},
		{"around an explicit gateway", ipam.Config{Subnet: prefix("10.240.0.0/24"), Gateway: addr("10.240.0.3")},
			[]string{"10.240.0.1", "10.240.0.2", "10.240.0.4", "10.240.0.5"}},
		{"IPv6", ipam.Config{Subnet: prefix("fd00:1::/64")},
			[]string{"fd00:1::2", "fd00:1::3", "fd00:1::4"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustNew(t, tt.cfg)
			for i, w := range tt.want {
				mustAllocate(t, p, fmt.Sprint("ep", i), w)
			}
		})
	}
}

func TestReleasedAddressReusedFirst(t *testing.T) {
	p := mustNew(t, ipam.Config{Subnet: prefix("10.240.0.0/24")})
	for i := 2; i <= 6; i++ {
		mustAllocate(t, p, fmt.Sprint("ep", i), fmt.Sprintf("10.240.0.%d", i))
	}
	for _, a := range []string{"10.240.0.4", "10.240.0.3", "10.240.0.6"} {
		if err := p.Release(addr(a)); err != nil {
			t.Fatalf("Release(%s): %v", a, err)
		}
	}
	// Lowest freed first, whatever the order of release, then the top.
	for _, w := range []string{"10.240.0.3", "10.240.0.4", "10.240.0.6", "10.240.0.7"} {
		mustAllocate(t, p, "again", w)
	}
	if p.InUse() != 6 || p.Free() != 253-6 {
		t.Errorf("InUse() = %d, Free() = %d, want 6 and %d", p.InUse(), p.Free(), 253-6)
	}
}

func TestIPRange(t *testing.T) {
	tests := []struct {
		name    string
		ipRange string
		want    []string // every address Allocate hands out, in order
	}{
		{"middle of the subnet", "10.240.0.64/30", []string{"10.240.0.64", "10.240.0.65", "10.240.0.66", "10.240.0.67"}},
		{"start: skips network and gateway", "10.240.0.0/30", []string{"10.240.0.2", "10.240.0.3"}},
		{"end: skips broadcast", "10.240.0.252/30", []string{"10.240.0.252", "10.240.0.253", "10.240.0.254"}},
		{"single address", "10.240.0.9/32", []string{"10.240.0.9"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustNew(t, ipam.Config{Subnet: prefix("10.240.0.0/24"), IPRange: prefix(tt.ipRange)})
			if p.Free() != uint64(len(tt.want)) {
				t.Errorf("Free() = %d, want %d", p.Free(), len(tt.want))
			}
			// --ip outside the range is allowed and does not use up the range.
			if err := p.Reserve(addr("10.240.0.200"), "pinned"); err != nil {
				t.Fatalf("Reserve outside the ip-range: %v", err)
			}
			if p.Free() != uint64(len(tt.want)) {
				t.Errorf("Free() = %d after a Reserve outside the range, want %d", p.Free(), len(tt.want))
			}
			for i, w := range tt.want {
				mustAllocate(t, p, fmt.Sprint("ep", i), w)
			}
			_, err := p.Allocate("one-too-many")
			checkErr(t, "Allocate past the range", err, ipam.ErrExhausted,
				"no free address in ip-range "+tt.ipRange+" of 10.240.0.0/24")
			if p.Free() != 0 || p.InUse() != len(tt.want)+1 {
				t.Errorf("Free() = %d, InUse() = %d, want 0 and %d", p.Free(), p.InUse(), len(tt.want)+1)
			}
			// A released address outside the range is not handed out.
			if err := p.Release(addr("10.240.0.200")); err != nil {
				t.Fatal(err)
			}
			if a, err := p.Allocate("x"); err == nil {
				t.Errorf("Allocate handed out %s, outside ip-range %s", a, tt.ipRange)
			}
		})
	}
}

func TestAuxNeverHandedOut(t *testing.T) {
	p := mustNew(t, ipam.Config{
		Subnet: prefix("10.240.0.0/29"),
		Aux:    map[string]netip.Addr{"router": addr("10.240.0.2"), "nas": addr("10.240.0.4")},
	})
	if p.Free() != 3 {
		t.Errorf("Free() = %d, want 3 (.3 .5 .6)", p.Free())
	}
	for _, w := range []string{"10.240.0.3", "10.240.0.5", "10.240.0.6"} {
		mustAllocate(t, p, "ep", w)
	}
	_, err := p.Allocate("ep")
	checkErr(t, "Allocate", err, ipam.ErrExhausted, "10.240.0.0/29")
	err = p.Reserve(addr("10.240.0.2"), "web")
	checkErr(t, "Reserve aux", err, ipam.ErrInUse, "10.240.0.2", `"web"`, `aux address "router"`)
	if o, ok := p.Owner(addr("10.240.0.2")); ok {
		t.Errorf("Owner(aux) = %q, want none", o)
	}
}

func TestExhaustedSlash29(t *testing.T) {
	p := mustNew(t, ipam.Config{Subnet: prefix("10.240.0.0/29")})
	// 8 addresses less network, broadcast and gateway.
	const fit = 5
	for i := range fit {
		if p.Free() != uint64(fit-i) {
			t.Errorf("Free() = %d before allocation %d, want %d", p.Free(), i, fit-i)
		}
		mustAllocate(t, p, fmt.Sprint("ep", i), fmt.Sprintf("10.240.0.%d", i+2))
	}
	_, err := p.Allocate("ep5")
	checkErr(t, "Allocate #6", err, ipam.ErrExhausted, `"ep5"`, "no free address in 10.240.0.0/29")
	if p.Free() != 0 || p.InUse() != fit {
		t.Errorf("Free() = %d, InUse() = %d, want 0 and %d", p.Free(), p.InUse(), fit)
	}
}

func TestTopOfAddressSpace(t *testing.T) {
	tests := []struct {
		subnet string
		want   []string
	}{
		{"255.255.255.248/29", []string{"255.255.255.250", "255.255.255.251", "255.255.255.252", "255.255.255.253", "255.255.255.254"}},
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffc/126", []string{
			"ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}},
	}
	for _, tt := range tests {
		t.Run(tt.subnet, func(t *testing.T) {
			p := mustNew(t, ipam.Config{Subnet: prefix(tt.subnet)})
			for _, w := range tt.want {
				mustAllocate(t, p, "ep", w)
			}
			_, err := p.Allocate("ep")
			checkErr(t, "Allocate", err, ipam.ErrExhausted, tt.subnet)
			last := addr(tt.want[len(tt.want)-1])
			if err := p.Release(last); err != nil {
				t.Fatal(err)
			}
			mustAllocate(t, p, "ep", last.String())
		})
	}
}

func TestReserve(t *testing.T) {
	cfg := ipam.Config{
		Subnet:  prefix("10.240.0.0/24"),
		IPRange: prefix("10.240.0.128/25"),
		Aux:     map[string]netip.Addr{"router": addr("10.240.0.10")},
	}
	tests := []struct {
		name string
		addr netip.Addr
		is   error // nil: Reserve must succeed
		subs []string
	}{
		{"inside the ip-range", addr("10.240.0.130"), nil, nil},
		{"outside the ip-range", addr("10.240.0.20"), nil, nil},
		{"taken", addr("10.240.0.50"), ipam.ErrInUse, []string{"10.240.0.50", `"web"`, `in use by "db"`}},
		{"gateway", addr("10.240.0.1"), ipam.ErrInUse, []string{"10.240.0.1", "gateway of 10.240.0.0/24"}},
		{"aux", addr("10.240.0.10"), ipam.ErrInUse, []string{"10.240.0.10", `aux address "router"`}},
		{"network address", addr("10.240.0.0"), ipam.ErrReserved, []string{"10.240.0.0", "network address"}},
		{"broadcast address", addr("10.240.0.255"), ipam.ErrReserved, []string{"10.240.0.255", "broadcast address"}},
		{"outside the subnet", addr("10.241.0.5"), ipam.ErrOutside, []string{"10.241.0.5", "10.240.0.0/24", "10.240.0.1 to 10.240.0.254"}},
		{"IPv6 in an IPv4 pool", addr("fd00::5"), ipam.ErrOutside, []string{"fd00::5", "10.240.0.0/24"}},
		{"IPv4-mapped", addr("::ffff:10.240.0.5"), ipam.ErrOutside, []string{"::ffff:10.240.0.5", "as 10.240.0.5"}},
		{"no address", netip.Addr{}, nil, []string{"no address"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustNew(t, cfg)
			if err := p.Reserve(addr("10.240.0.50"), "db"); err != nil {
				t.Fatal(err)
			}
			free := p.Free()
			err := p.Reserve(tt.addr, "web")
			if tt.is == nil && tt.subs == nil {
				if err != nil {
					t.Fatalf("Reserve(%s): %v", tt.addr, err)
				}
				if o, ok := p.Owner(tt.addr); !ok || o != "web" {
					t.Errorf("Owner(%s) = %q, %v, want web", tt.addr, o, ok)
				}
				if p.InUse() != 2 {
					t.Errorf("InUse() = %d, want 2", p.InUse())
				}
				return
			}
			checkErr(t, "Reserve", err, tt.is, tt.subs...)
			if p.InUse() != 1 || p.Free() != free {
				t.Errorf("failed Reserve changed the pool: InUse() = %d, Free() = %d (was %d)", p.InUse(), p.Free(), free)
			}
		})
	}
}

func TestReserveThenAllocateSkipsIt(t *testing.T) {
	p := mustNew(t, ipam.Config{Subnet: prefix("10.240.0.0/24")})
	if err := p.Reserve(addr("10.240.0.2"), "pinned"); err != nil {
		t.Fatal(err)
	}
	mustAllocate(t, p, "ep", "10.240.0.3")
}

func TestEmptyOwnerRefused(t *testing.T) {
	p := mustNew(t, ipam.Config{Subnet: prefix("10.240.0.0/24")})
	if a, err := p.Allocate(""); err == nil {
		t.Errorf("Allocate(\"\") = %s, want an error", a)
	}
	if err := p.Reserve(addr("10.240.0.9"), ""); err == nil {
		t.Error("Reserve with an empty owner succeeded")
	}
	if p.InUse() != 0 {
		t.Errorf("InUse() = %d, want 0", p.InUse())
	}
}

func TestRelease(t *testing.T) {
	tests := []struct {
		name string
		addr string
		is   error
		subs []string
	}{
		{"free address", "10.240.0.9", ipam.ErrNotAllocated, []string{"10.240.0.9", "10.240.0.0/24"}},
		{"gateway", "10.240.0.1", ipam.ErrNotAllocated, []string{"10.240.0.1", "gateway"}},
		{"aux", "10.240.0.3", ipam.ErrNotAllocated, []string{"10.240.0.3", `aux address "router"`}},
		{"network address", "10.240.0.0", ipam.ErrNotAllocated, []string{"10.240.0.0", "network address"}},
		{"outside the subnet", "10.1.0.9", ipam.ErrOutside, []string{"10.1.0.9", "10.240.0.0/24"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustNew(t, ipam.Config{Subnet: prefix("10.240.0.0/24"), Aux: map[string]netip.Addr{"router": addr("10.240.0.3")}})
			mustAllocate(t, p, "ep", "10.240.0.2")
			free := p.Free()
			checkErr(t, "Release", p.Release(addr(tt.addr)), tt.is, tt.subs...)
			if p.Free() != free || p.InUse() != 1 {
				t.Errorf("failed Release changed the pool: Free() = %d (was %d), InUse() = %d", p.Free(), free, p.InUse())
			}
		})
	}

	t.Run("twice", func(t *testing.T) {
		p := mustNew(t, ipam.Config{Subnet: prefix("10.240.0.0/24")})
		mustAllocate(t, p, "ep", "10.240.0.2")
		if err := p.Release(addr("10.240.0.2")); err != nil {
			t.Fatal(err)
		}
		checkErr(t, "second Release", p.Release(addr("10.240.0.2")), ipam.ErrNotAllocated, "10.240.0.2")
		if p.InUse() != 0 || p.Free() != 253 {
			t.Errorf("InUse() = %d, Free() = %d, want 0 and 253", p.InUse(), p.Free())
		}
	})
}

func TestOwner(t *testing.T) {
	p := mustNew(t, ipam.Config{Subnet: prefix("10.240.0.0/24")})
	mustAllocate(t, p, "web", "10.240.0.2")
	if err := p.Reserve(addr("10.240.0.77"), "db"); err != nil {
		t.Fatal(err)
	}
	for a, want := range map[string]string{"10.240.0.2": "web", "10.240.0.77": "db", "10.240.0.3": "", "10.240.0.1": ""} {
		got, ok := p.Owner(addr(a))
		if got != want || ok != (want != "") {
			t.Errorf("Owner(%s) = %q, %v, want %q", a, got, ok, want)
		}
	}
	if err := p.Release(addr("10.240.0.2")); err != nil {
		t.Fatal(err)
	}
	if o, ok := p.Owner(addr("10.240.0.2")); ok {
		t.Errorf("Owner after Release = %q", o)
	}
}

// TestIPv6Slash64 allocates and releases in a /64. A pool that kept state
// per address of the range could not even be created.
func TestIPv6Slash64(t *testing.T) {
	const n = 5000
	owners := make([]string, n)
	for i := range owners {
		owners[i] = fmt.Sprint("ep", i)
	}
	var p *ipam.Pool
	bytes := allocatedBytes(func() {
		p = mustNew(t, ipam.Config{Subnet: prefix("fd00:1::/64")})
		for _, o := range owners {
			if _, err := p.Allocate(o); err != nil {
				t.Fatal(err)
			}
		}
	})
	if p.Runs() != 1 {
		t.Errorf("%d runs after %d allocations in order, want 1 (anycast, gateway and endpoints are consecutive)", p.Runs(), n)
	}
	// The owners map dominates: about 50 bytes an endpoint, doubled by growth.
	if bytes > 1<<20 {
		t.Errorf("New and %d allocations in a /64 took %d bytes of heap, want under 1 MiB", n, bytes)
	}
	if want := uint64(1<<64-1) - (n + 2) + 1; p.Free() != want {
		t.Errorf("Free() = %d, want 2^64 - %d = %d", p.Free(), n+2, want)
	}

	// Free every other address, then allocate again: the holes fill lowest first.
	base := addr("fd00:1::2")
	a := base
	for i := 0; i < n; i += 2 {
		if err := p.Release(a); err != nil {
			t.Fatal(err)
		}
		a = a.Next().Next()
	}
	if p.InUse() != n/2 {
		t.Errorf("InUse() = %d, want %d", p.InUse(), n/2)
	}
	a = base
	for i := 0; i < n; i += 2 {
		mustAllocate(t, p, "again", a.String())
		a = a.Next().Next()
	}
	if p.Runs() != 1 {
		t.Errorf("%d runs after the holes were filled, want 1", p.Runs())
	}
	mustAllocate(t, p, "next", "fd00:1::138a") // 2 + 5000 = 0x138a
}

// TestBigIPv4 checks that a /8 costs no memory per address and counts its
// free addresses exactly.
func TestBigIPv4(t *testing.T) {
	var p *ipam.Pool
	bytes := allocatedBytes(func() {
		p = mustNew(t, ipam.Config{Subnet: prefix("10.0.0.0/8"), Aux: map[string]netip.Addr{"r": addr("10.200.0.1")}})
	})
	if bytes > 4<<10 {
		t.Errorf("New for a /8 took %d bytes of heap, want under 4 KiB", bytes)
	}
	if want := uint64(1<<24 - 4); p.Free() != want {
		t.Errorf("Free() = %d, want %d (2^24 less network, broadcast, gateway, aux)", p.Free(), want)
	}
	if err := p.Reserve(addr("10.255.255.254"), "top"); err != nil {
		t.Fatal(err)
	}
	mustAllocate(t, p, "ep", "10.0.0.2")
	if want := uint64(1<<24 - 6); p.Free() != want {
		t.Errorf("Free() = %d, want %d", p.Free(), want)
	}
}
